"""The toy data: 2D points of two imbalanced classes that differ by their distance from the origin.

The generative process is known, so "generating" points of a class (the role the diffusion model plays
in GAUDA) is exact: ``sample_class`` draws from the very distribution the training data came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gauda.toy.config import ToyConfig

NUM_CLASSES = 2
MINORITY_CLASS = 1
CLASS_NAMES: tuple[str, ...] = ("majority", "minority")


@dataclass(frozen=True)
class Points:
    """Labelled points: ``points`` (N, 2) float32 and ``labels`` (N,) int64 class ids."""

    points: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __add__(self, other: Points) -> Points:
        return Points(torch.cat([self.points, other.points]), torch.cat([self.labels, other.labels]))

    def share(self, class_id: int) -> float:
        """The fraction of points of class ``class_id``."""
        return float((self.labels == class_id).float().mean())


@dataclass(frozen=True)
class ToyData:
    train: Points
    val: Points
    test: Points


def class_radius(config: ToyConfig, class_id: int) -> float:
    return config.minority_radius if class_id == MINORITY_CLASS else config.majority_radius


def sample_class(config: ToyConfig, class_id: int, count: int, generator: torch.Generator) -> Points:
    """``count`` points of class ``class_id``: radius ``r_c + noise * N(0, 1)``, angle uniform.

    Args:
        config: the toy configuration (class radii and radial noise).
        class_id: 0 (majority) or 1 (minority).
        count: number of points.
        generator: the random stream to draw from.
    """
    if class_id not in range(NUM_CLASSES):
        raise ValueError(f"class_id: expected 0 or 1, got {class_id!r}")
    radius = class_radius(config, class_id) + config.noise * torch.randn(count, generator=generator)
    angle = 2 * math.pi * torch.rand(count, generator=generator)
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)  # (count, 2)
    return Points(points, torch.full((count,), class_id, dtype=torch.int64))


def class_counts(config: ToyConfig, count: int) -> tuple[int, int]:
    """(majority, minority) counts of a split of ``count`` points: exactly the configured share."""
    minority = round(count * config.minority_share)
    return count - minority, minority


def sample_points(config: ToyConfig, count: int, generator: torch.Generator) -> Points:
    """``count`` points with the configured class balance, in random order."""
    majority, minority = class_counts(config, count)
    drawn = sample_class(config, 0, majority, generator) + sample_class(config, 1, minority, generator)
    order = torch.randperm(count, generator=generator)
    return Points(drawn.points[order], drawn.labels[order])


def generate(config: ToyConfig, classes: Sequence[int], count: int, generator: torch.Generator) -> Points:
    """``count`` new points of the requested classes, split as evenly as possible (earlier classes first)."""
    if not classes:
        raise ValueError("classes: expected at least one class to generate, got none")
    parts = [count // len(classes) + (i < count % len(classes)) for i in range(len(classes))]
    drawn = [sample_class(config, c, n, generator) for c, n in zip(classes, parts, strict=True)]
    result = drawn[0]
    for more in drawn[1:]:
        result = result + more
    return result


def make_data(config: ToyConfig, generator: torch.Generator) -> ToyData:
    """Train, validation and test splits, all with the configured imbalance."""
    return ToyData(
        train=sample_points(config, config.num_train, generator),
        val=sample_points(config, config.num_val, generator),
        test=sample_points(config, config.num_test, generator),
    )
