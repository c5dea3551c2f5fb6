"""Which classes GAUDA asks the generator for (paper Sec. 3.3): the k most uncertain by Eq. 8, and the
multi-hot conditions of the pairs generated for them."""

from __future__ import annotations

from typing import Literal

import torch


def top_k_uncertain(uncertainty: torch.Tensor, k: int) -> list[int]:
    """The ids of the ``k`` classes of largest UE_c (Eq. 8), most uncertain first.

    Classes without an estimate (NaN: never predicted on the validation split) are skipped, so fewer
    than ``k`` ids come back when fewer classes have one; ties go to the smaller id.
    """
    values = uncertainty.to(torch.float64)
    known = [c for c in range(len(values)) if not torch.isnan(values[c])]
    return sorted(known, key=lambda c: (-float(values[c]), c))[:k]


def pair_conditions(
    classes: list[int], num_pairs: int, num_classes: int, mode: Literal["each", "joint"] = "each"
) -> torch.Tensor:
    """(num_pairs, C) multi-hot conditions for the pairs of one request.

    ``each``: pair i asks for classes[i mod k] alone (round robin, so every chosen class gets its share
    and the generator is never asked for a combination it has rarely seen); ``joint``: every pair asks
    for all chosen classes at once ("a frame that contains all of them", Sec. 3.1).
    """
    if not classes:
        raise ValueError("pair_conditions: no classes to condition on")
    conditions = torch.zeros(num_pairs, num_classes)
    if mode == "each":
        conditions[torch.arange(num_pairs), torch.tensor(classes).repeat(num_pairs)[:num_pairs]] = 1
    elif mode == "joint":
        conditions[:, classes] = 1
    else:
        raise ValueError(f"condition {mode!r}: expected each or joint")
    return conditions


def random_classes(num_classes: int, k: int, generator: torch.Generator) -> list[int]:
    """``k`` distinct class ids drawn uniformly: the control that tells the signal's gain from the
    generated pairs' own."""
    return torch.randperm(num_classes, generator=generator)[:k].tolist()


def class_weights_from_uncertainty(uncertainty: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Class sampling weights (C,) summing to 1 that grow with UE_c (Supp. 8.2's uncertainty-based
    weights, on images): softmax(d_c / T) with d_c = UE_c / max_c' UE_c' in [0, 1].

    A missed class (+inf) gets d = 1, the largest; a class without an estimate (NaN) gets the mean d of
    the others, neither favoured nor starved. The same form as Adaptive Sampling's softmax over
    1 - IoU_c, so that the two schemes differ in their signal only.
    """
    values = uncertainty.to(torch.float64)
    finite = torch.isfinite(values)
    scale = values[finite].max() if finite.any() else torch.tensor(1.0, dtype=torch.float64)
    difficulty = torch.where(finite, values / scale.clamp(min=1e-12), values)
    difficulty = torch.where(torch.isinf(difficulty), 1.0, difficulty)
    known = ~torch.isnan(difficulty)
    fill = difficulty[known].mean() if known.any() else torch.tensor(0.0, dtype=torch.float64)
    return torch.softmax(torch.where(known, difficulty, fill) / temperature, dim=0)
