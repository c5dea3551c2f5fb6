"""Which training frames each member sees at each step: a pure function of (seed, member, step, weights).

Because a batch depends on nothing but these, a resumed run draws exactly the batches the uninterrupted
run would have drawn, with no sampler state to restore beyond the weights. Every key is a pair
(frame index, epoch); the epoch seeds the classic augmentation of that frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from gauda.training.seeds import keyed_generator

_POSITIONS = 1  # stream tag of the per-step draws (the epoch orders have none)


class MemberBatchSampler:
    """Per member and step, ``batch_size`` keys (frame index, epoch).

    Without weights (the default scheme, no resampling) member k walks through its own random
    permutation of the frames in each epoch, so every member has its own batch order. With weights
    (set by a training scheme, e.g. Adaptive Sampling) each batch is drawn with replacement with
    probability proportional to the frame's weight.

    Args:
        num_frames: training frames.
        num_members: members that each draw their own batch (1 for a single model).
        batch_size: frames per member and step.
        seed: the run's seed.
    """

    def __init__(self, num_frames: int, num_members: int, batch_size: int, seed: int) -> None:
        if num_frames < 1:
            raise ValueError("MemberBatchSampler: the training split has no frames")
        self.num_frames, self.num_members = num_frames, num_members
        self.batch_size, self.seed = batch_size, seed
        self.weights: torch.Tensor | None = None
        self._permutations: dict[tuple[int, int], torch.Tensor] = {}

    def set_weights(self, weights: torch.Tensor | None) -> None:
        """Per-frame sampling weights (num_frames,), non-negative, positive sum; None: uniform epochs."""
        if weights is not None:
            weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
            if len(weights) != self.num_frames or (weights < 0).any() or not weights.sum() > 0:
                raise ValueError(
                    f"sampling weights: expected {self.num_frames} non-negative values with a positive sum, "
                    f"got {len(weights)} values summing to {float(weights.sum())}"
                )
        self.weights = weights

    def _permutation(self, member: int, epoch: int) -> torch.Tensor:
        key = (member, epoch)
        if key not in self._permutations:
            if len(self._permutations) > 4 * self.num_members:  # keep the current epochs only
                self._permutations.clear()
            self._permutations[key] = torch.randperm(
                self.num_frames, generator=keyed_generator(self.seed, member, epoch)
            )
        return self._permutations[key]

    def member_batch(self, member: int, step: int) -> list[tuple[int, int]]:
        """Keys (frame index, epoch) of ``member``'s batch at ``step`` (0 = the first step)."""
        first = step * self.batch_size  # position in the member's endless stream of frames
        if self.weights is not None:
            draw = torch.multinomial(
                self.weights,
                self.batch_size,
                replacement=True,
                generator=keyed_generator(self.seed, member, step, _POSITIONS),
            )
            return [(int(index), first // self.num_frames) for index in draw]
        keys = []
        for position in range(first, first + self.batch_size):
            epoch, offset = divmod(position, self.num_frames)
            keys.append((int(self._permutation(member, epoch)[offset]), epoch))
        return keys

    def batch(self, step: int) -> list[tuple[int, int]]:
        """The keys of all members at ``step``, member after member: num_members * batch_size keys."""
        return [key for member in range(self.num_members) for key in self.member_batch(member, step)]

    def steps(self, first: int, last: int) -> Iterator[list[tuple[int, int]]]:
        """Batches of steps first .. last - 1 (a ``batch_sampler`` for a DataLoader)."""
        for step in range(first, last):
            yield self.batch(step)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_weights(state["weights"])
