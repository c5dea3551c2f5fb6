"""The class condition as pure functions: drawing it for training, dropping it, and guidance (Eq. 5, 6).

A condition is a multi-hot vector over the dataset's classes (B, C). During training it is a random
non-empty subset of the classes present in the frame, so that conditioning on a set S at sampling time
means "a frame that contains S" (not "exactly S"). With probability ``p_uncond`` it is replaced by the
learned null condition, which trains the unconditional model that classifier-free guidance needs.
"""

from __future__ import annotations

import torch


def draw_condition(
    present: torch.Tensor, keep_probability: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random non-empty subset of each row's present classes.

    Each present class is kept with ``keep_probability``; a row that keeps none keeps one present class
    drawn uniformly. Rows without any present class stay empty (the caller gives them the null condition).

    Args:
        present: (B, C) multi-hot float of the classes in each frame.
        keep_probability: chance that each present class is part of the condition.
        generator: source of randomness.
    """
    present = present > 0
    u = torch.rand(present.shape, generator=generator, device=present.device)  # (B, C)
    keep = (u < keep_probability) & present
    # rows that kept nothing: the present class with the largest independent uniform score
    score = torch.rand(present.shape, generator=generator, device=present.device).masked_fill(~present, -1)
    fallback = torch.zeros_like(keep).scatter_(1, score.argmax(1, keepdim=True), True) & present
    empty = ~keep.any(1, keepdim=True)  # (B, 1)
    return torch.where(empty, fallback, keep).float()


def drop_condition(
    batch_size: int,
    p_uncond: float,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """(B,) bool: which rows get the null condition, each with probability ``p_uncond`` (Eq. 5)."""
    return torch.rand(batch_size, generator=generator, device=device) < p_uncond


def classifier_free_guidance(eps_null: torch.Tensor, eps_cond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Eq. 6 in the form eps_null + w * (eps_cond - eps_null).

    w = 1 gives the conditional prediction (no guidance), w = 0 the unconditional one, w > 1 pushes
    towards the condition. (The form (1 + w') eps_cond - w' eps_null is the same with w = 1 + w'.)
    """
    return eps_null + guidance * (eps_cond - eps_null)


def multi_hot(indices: list[int], num_classes: int) -> torch.Tensor:
    """(C,) float vector with ones at ``indices``."""
    vector = torch.zeros(num_classes)
    vector[indices] = 1.0
    return vector
