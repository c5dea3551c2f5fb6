"""Class-wise uncertainty beyond the literal Eq. 8: which pixels a class's estimate pools over, which
quantity it pools, and what a class the model misses entirely counts as.

Eq. 8 pools the posterior variance of class c over P_c, the pixels whose mean prediction is c. A class
the model never predicts then has no estimate, and a scheme that skips it never asks for the classes it
misses entirely (DESIGN.md, the note on Eq. 8). The validation split has labels, so P_c may also be the
pixels labelled c (``ground_truth``) or either (``union``); and a class present in the labels but hardly
predicted can count as the most uncertain of all (``missed_ratio``). Mutual information (BALD: the
entropy of the mean prediction minus the mean entropy of the samples) is the alternative quantity to the
variance.

Shapes: ``probs`` (N, B, C, *spatial) class probabilities of N posterior samples; ``target`` (B, *spatial)
class ids; ``valid`` bool (B, *spatial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from gauda.uncertainty.classwise import mean_prediction

Pooling = Literal["predicted", "ground_truth", "union"]
Quantity = Literal["variance", "mutual_information"]
POOLINGS: tuple[str, ...] = ("predicted", "ground_truth", "union")
QUANTITIES: tuple[str, ...] = ("variance", "mutual_information")


def class_variance(probs: torch.Tensor) -> torch.Tensor:
    """(N, B, C, *S) -> (B, C, *S): (1/N) sum_n (y_{n,c} - y_bar_c)^2, the summand of Eq. 8."""
    return ((probs - mean_prediction(probs)) ** 2).mean(dim=0)


def mutual_information(probs: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(N, B, C, *S) -> (B, *S): H(y_bar) - (1/N) sum_n H(y_n), the epistemic part of the entropy."""

    def entropy(p: torch.Tensor, dim: int) -> torch.Tensor:
        return -(p * (p + eps).log()).sum(dim)

    return (entropy(mean_prediction(probs), 1) - entropy(probs, 2).mean(0)).clamp(min=0)


def pixel_sets(
    y_bar: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The P_c of each pooling as bool (B, C, *S) memberships: predicted c, labelled c, or either."""
    num_classes = y_bar.shape[1]
    valid = torch.ones_like(target, dtype=torch.bool) if valid is None else valid
    predicted = F.one_hot(y_bar.argmax(1), num_classes).movedim(-1, 1).bool()  # (B, C, *S)
    labelled = F.one_hot(torch.where(valid, target, 0), num_classes).movedim(-1, 1).bool()
    inside = valid.unsqueeze(1)
    predicted, labelled = predicted & inside, labelled & inside
    return {"predicted": predicted, "ground_truth": labelled, "union": predicted | labelled}


@dataclass
class UncertaintySums:
    """Pooled numerators and |P_c| of every (pooling, quantity), and each class's predicted and
    labelled pixel counts: everything the estimates need, summable over batches."""

    sums: dict[tuple[str, str], torch.Tensor]  # (pooling, quantity) -> (C,) float64
    counts: dict[str, torch.Tensor]  # pooling -> (C,) |P_c|

    @property
    def predicted(self) -> torch.Tensor:
        """(C,) pixels predicted as c."""
        return self.counts["predicted"]

    @property
    def labelled(self) -> torch.Tensor:
        """(C,) pixels labelled c."""
        return self.counts["ground_truth"]

    def __add__(self, other: UncertaintySums) -> UncertaintySums:
        return UncertaintySums(
            {key: value + other.sums[key] for key, value in self.sums.items()},
            {key: value + other.counts[key] for key, value in self.counts.items()},
        )


def uncertainty_sums(
    probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> UncertaintySums:
    """One batch's ``UncertaintySums`` (on the CPU, float64)."""
    y_bar = mean_prediction(probs)  # (B, C, *S)
    sets = pixel_sets(y_bar, target, valid)
    spatial = [0, *range(2, y_bar.dim())]  # every dimension but the class one
    per_pixel = {
        "variance": class_variance(probs),  # (B, C, *S): class c's own variance
        "mutual_information": mutual_information(probs).unsqueeze(1),  # (B, 1, *S): one per pixel
    }
    sums = {
        (pooling, quantity): (values.double() * member).sum(spatial).cpu()
        for pooling, member in sets.items()
        for quantity, values in per_pixel.items()
    }
    counts = {pooling: member.sum(spatial).double().cpu() for pooling, member in sets.items()}
    return UncertaintySums(sums, counts)


def missed_classes(sums: UncertaintySums, missed_ratio: float) -> torch.Tensor:
    """(C,) bool: classes labelled somewhere but predicted on fewer than ``missed_ratio`` times as many
    pixels as carry their label (0: never predicted at all)."""
    present = sums.labelled > 0
    return present & (sums.predicted <= missed_ratio * sums.labelled)


def classwise_estimate(
    sums: UncertaintySums,
    pooling: Pooling = "predicted",
    quantity: Quantity = "variance",
    missed_ratio: float | None = None,
) -> torch.Tensor:
    """(C,) UE_c: the mean ``quantity`` over P_c of ``pooling``; NaN where P_c is empty.

    With ``missed_ratio`` (e.g. 0.1), a class present in the labels but predicted on at most that share
    of its labelled pixels is +inf, the most uncertain of all. ``predicted``, ``variance`` and no
    ``missed_ratio`` is the paper's literal Eq. 8.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity {quantity!r}: expected one of {', '.join(QUANTITIES)}")
    total, count = sums.sums[(pooling, quantity)], sums.counts[pooling]
    estimate = torch.where(count > 0, total / count.clamp(min=1), torch.nan)
    if missed_ratio is not None:
        estimate = torch.where(missed_classes(sums, missed_ratio), torch.inf, estimate)
    return estimate


class ClasswiseEstimates:
    """``UncertaintySums`` pooled over a whole validation set: ``update`` per batch, then ``compute``."""

    def __init__(self) -> None:
        self.total: UncertaintySums | None = None

    def update(self, probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        part = uncertainty_sums(probs, target, valid)
        self.total = part if self.total is None else self.total + part

    def compute(self) -> UncertaintySums:
        if self.total is None:
            raise ValueError("ClasswiseEstimates.compute: no batches were added")
        return self.total
