"""Training on several processes (GPUs, nodes) with PyTorch's own engine: ``torchrun`` and DDP.

Every training command runs unchanged under ``torchrun``::

    torchrun --nproc-per-node 4 -m gauda train diffusion --out RUN ...

Each process (rank) gets a contiguous share of every global batch (``Distributed.shard``), so the global
batch is ``batch_size`` whatever the number of processes; DistributedDataParallel averages the
gradients, which for a mean loss over equal shares is the gradient of the single-process run. Random
draws of a step are made for the whole global batch and sharded the same way, so a two-process run
reproduces a one-process run up to the order of floating-point sums. Only rank 0 writes files (the
``is_main`` checks in the trainers); the others wait at barriers. The backend is NCCL on GPUs and gloo
on the CPU. Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) nothing here does anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from gauda.config import ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")
WAIT_LIMIT = timedelta(hours=2)  # how long a rank waits for the others at a collective call


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_divides(self, batch_size: int, option: str) -> None:
        """Every rank must get the same share of a global batch (equal shares: exact mean gradients)."""
        if batch_size % self.world_size:
            raise ConfigError(
                f"{option} {batch_size}: expected a multiple of the {self.world_size} processes of this "
                f"torchrun job (each process takes an equal share of every batch)"
            )

    def shard(self, items: Sequence[T] | torch.Tensor, dim: int = 0) -> Any:
        """This rank's contiguous share of a global batch (a sequence or a tensor along ``dim``)."""
        if not self.active:
            return items
        size = items.shape[dim] if isinstance(items, torch.Tensor) else len(items)
        if size % self.world_size:
            raise ValueError(f"a batch of {size} does not split into {self.world_size} equal shares")
        share = size // self.world_size
        if isinstance(items, torch.Tensor):
            return items.narrow(dim, self.rank * share, share)
        return items[self.rank * share : (self.rank + 1) * share]

    def wrap(self, module: nn.Module, **options: Any) -> nn.Module:
        """``module`` in DistributedDataParallel when several processes train it; as it is otherwise."""
        if not self.active:
            return module
        device = next(module.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, **options)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of ``value`` over the ranks (a copy; ``value`` itself is left alone)."""
        if not self.active:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    def mean_values(self, values: dict[str, float]) -> dict[str, float]:
        """Logged values averaged over the ranks, in one collective call (as they are on one process)."""
        if not self.active:
            return values
        names = sorted(values)
        means = self.mean(torch.tensor([float(values[name]) for name in names], dtype=torch.float64))
        return dict(zip(names, means.tolist(), strict=True))

    def log_share(self, local: int, total: int, unit: str) -> None:
        """Log the part of every global batch this rank trains on (under torchrun only)."""
        if self.active:
            logger.info("rank %d of %d: %d of the %d %s of every batch", self.rank, self.world_size, local,
                        total, unit)  # fmt: skip

    def sum_(self, value: torch.Tensor) -> torch.Tensor:
        """Sum ``value`` over the ranks, in place."""
        if self.active:
            dist.all_reduce(value)
        return value

    def gather(self, value: torch.Tensor) -> torch.Tensor:
        """The ranks' tensors (same shape) concatenated along dim 0 in rank order: the global batch."""
        if not self.active:
            return value
        parts = [torch.empty_like(value) for _ in range(self.world_size)]
        dist.all_gather(parts, value.contiguous())
        return torch.cat(parts)

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (pickled between the job's own processes, never from a file)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def is_main_process() -> bool:
    """True outside ``torchrun`` and on its rank 0 (what prints a command's result)."""
    return int(os.environ.get("RANK", "0")) == 0


def setup_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the ``torchrun`` job of this process, if any; returns its place and the device it trains on.

    On GPUs each process takes the GPU of its local rank. Called once per process (later calls reuse
    the process group).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # long: the other ranks wait while rank 0 encodes the latent cache or validates (minutes at the
        # paper's sizes, beyond NCCL's default of 10)
        # GPUs: NCCL for CUDA tensors, gloo for the few CPU ones (logged values, broadcast objects)
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=WAIT_LIMIT)
        logger.info("rank %d of %d on %s", rank, world_size, device)
    return Distributed(rank, world_size, local_rank), device


def teardown_distributed() -> None:
    """Leave the process group (the end of a ``torchrun`` command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
