"""Seeded, resumable batch order: batch ``step`` is the same whether a run is fresh or resumed."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices: epoch ``e`` is a permutation seeded by (seed, e); the last partial
    batch of an epoch is dropped. Iteration starts at global step ``start_step`` and never ends, so the
    training loop decides when to stop.

    Args:
        size: number of samples in the dataset.
        batch_size: samples per batch (at most ``size``).
        seed: seed of the order.
        start_step: the first global step to yield (for resuming).
    """

    def __init__(self, size: int, batch_size: int, seed: int, start_step: int = 0) -> None:
        if not 1 <= batch_size <= size:
            raise ValueError(f"batch_size {batch_size}: expected 1..{size} (the dataset has {size} samples)")
        self.size, self.batch_size, self.seed, self.start_step = size, batch_size, seed, start_step

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.batch_size

    def batch(self, step: int) -> list[int]:
        """The indices of global step ``step``."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        order = torch.randperm(
            self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        )
        return order[offset * self.batch_size : (offset + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
