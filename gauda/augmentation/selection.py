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
