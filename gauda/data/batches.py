"""Seeded, resumable batch order: batch ``step`` is the same whether a run is fresh or resumed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def rare_class_frame_weights(frame_classes: torch.Tensor) -> torch.Tensor:
    """Sampling weight of each frame: 1/sqrt(frame frequency) of the rarest class it contains.

    ``frame_classes`` is (N, C): each frame's pixels of each class, or its multi-hot class vector (only
    > 0 matters). A class in a fraction f of the frames makes the frames holding it f^-1/2 times as
    likely to be drawn as a frame of classes that are everywhere: a class in a few frames is seen several
    times as often, without those few frames filling every batch (which 1/f would do). Frames without
    any class get weight 0.
    """
    present = frame_classes > 0  # (N, C)
    frequency = present.double().mean(0)  # (C,)
    per_class = torch.where(present, frequency.clamp_min(1e-12).rsqrt(), torch.zeros_like(frequency))
    return per_class.max(1).values.float()


class StepBatchSampler(Sampler[list[int]], ABC):
    """A batch sampler whose batch ``step`` is a pure function of (seed, step): iteration starts at
    ``start_step`` and never ends, so the training loop decides when to stop."""

    start_step: int

    @property
    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Steps per epoch (for schedules that decay per epoch)."""

    @abstractmethod
    def batch(self, step: int) -> list[int]:
        """The indices of global step ``step``."""

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class EpochBatchSampler(StepBatchSampler):
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


class WeightedBatchSampler(StepBatchSampler):
    """Batches drawn with probability proportional to ``weights`` (without replacement within a batch):
    batch ``step`` is seeded by (seed, step), so a resumed run draws what a fresh one would. An "epoch"
    (for schedules that decay per epoch) is ``len(weights) // batch_size`` steps, as for
    ``EpochBatchSampler``.

    Args:
        weights: (N,) non-negative sampling weight of each sample, at least ``batch_size`` of them > 0.
        batch_size: samples per batch.
        seed: seed of the draws.
        start_step: the first global step to yield (for resuming).
    """

    def __init__(self, weights: torch.Tensor, batch_size: int, seed: int, start_step: int = 0) -> None:
        weights = weights.double().flatten()
        if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
            raise ValueError("weights: expected finite numbers >= 0")
        if not 1 <= batch_size <= int((weights > 0).sum()):
            raise ValueError(
                f"batch_size {batch_size}: expected 1..{int((weights > 0).sum())} "
                "(the samples of positive weight)"
            )
        self.weights, self.batch_size, self.seed, self.start_step = weights, batch_size, seed, start_step

    @property
    def steps_per_epoch(self) -> int:
        return len(self.weights) // self.batch_size

    def batch(self, step: int) -> list[int]:
        """The indices of global step ``step``."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + step)
        return torch.multinomial(self.weights, self.batch_size, generator=generator).tolist()
