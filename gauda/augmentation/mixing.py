"""Replacing part of a real batch by synthetic pairs (paper Sec. 3.3): exactly round(fraction * B)
frames of each member's batch, at random positions drawn from a seeded generator; or appending the
pairs to the batch, so that no real frame is displaced."""

from __future__ import annotations

import math

import torch

from gauda.data.dataset import classes_present


def replaced_count(batch_size: int, fraction: float) -> int:
    """How many of ``batch_size`` frames a ``fraction`` replaces: round half up, at most the batch."""
    return min(batch_size, math.floor(fraction * batch_size + 0.5))


def replacement_positions(batch_size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct positions in a batch, drawn uniformly (sorted, for readable logs)."""
    return torch.randperm(batch_size, generator=generator)[:count].sort().values


def _synthetic_labels(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(k, H, W) masks -> (k, C) classes present."""
    return torch.stack([classes_present(mask, num_classes) for mask in masks])


def append_pairs(
    batch: dict, images: torch.Tensor, masks: torch.Tensor, names: list[list[str]], num_classes: int
) -> dict:
    """A member batch with each member's k synthetic pairs added after its B real frames (B + k).

    Args as ``mix_batch``: ``images`` (M, k, 3, H, W), ``masks`` (M, k, H, W), ``names`` per member.
    """
    num_members, count = masks.shape[:2]
    extra: dict[str, torch.Tensor] = {
        "image": images,
        "mask": masks,
        "classes": torch.stack([_synthetic_labels(masks[m], num_classes) for m in range(num_members)]),
        "index": torch.full((num_members, count), -1),  # no training frame
    }
    appended: dict = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            if key not in extra:
                raise ValueError(f"append_pairs: no synthetic values for the batch's {key!r}")
            appended[key] = torch.cat([value, extra[key].to(value.dtype)], dim=1)
        else:
            appended[key] = [list(v) + (names[m] if key == "name" else ["synthetic"] * count)
                             for m, v in enumerate(value)]  # fmt: skip
    return appended


def mix_batch(
    batch: dict,
    images: torch.Tensor,
    masks: torch.Tensor,
    names: list[list[str]],
    num_classes: int,
    generator: torch.Generator,
    protected: torch.Tensor | None = None,
) -> dict:
    """A copy of a member batch with ``k`` frames of each member replaced by synthetic pairs.

    Args:
        batch: "image" (M, B, 3, H, W), "mask" (M, B, H, W), "classes" (M, B, C), "index" (M, B) and
            lists per member ("name", ...), as collated by the segmentation trainer.
        images: (M, k, 3, H, W) synthetic images in [0, 1].
        masks: (M, k, H, W) synthetic masks.
        names: per member, the k names of the synthetic pairs.
        num_classes: C.
        generator: draws the positions; seed it with the step for a reproducible run.
        protected: optional bool (M, B): frames never replaced (e.g. real frames of the classes the
            pairs were generated for); a member with fewer than ``k`` others gets fewer pairs.
    """
    num_members, batch_size = batch["mask"].shape[:2]
    count = images.shape[1]
    mixed = {key: value.clone() if isinstance(value, torch.Tensor) else [list(v) for v in value]
             for key, value in batch.items()}  # fmt: skip
    for member in range(num_members):
        if protected is None:
            positions = replacement_positions(batch_size, count, generator)
        else:
            free = (~protected[member]).nonzero().flatten()
            positions = free[replacement_positions(len(free), min(count, len(free)), generator)]
        used = len(positions)
        mixed["image"][member, positions] = images[member, :used].to(mixed["image"].dtype)
        mixed["mask"][member, positions] = masks[member, :used].to(mixed["mask"].dtype)
        if "classes" in mixed and used:
            mixed["classes"][member, positions] = _synthetic_labels(masks[member, :used], num_classes).to(
                mixed["classes"].dtype
            )
        if "index" in mixed:
            mixed["index"][member, positions] = -1  # no training frame
        for key, value in mixed.items():
            if isinstance(value, list):
                for slot, position in enumerate(positions.tolist()):
                    value[member][position] = names[member][slot] if key == "name" else "synthetic"
    return mixed
