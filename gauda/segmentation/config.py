"""Configuration of the segmentation stage: which Bayesian model, its sizes, and how it trains."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gauda.config import check
from gauda.device import PRECISIONS

ModelName = Literal["ensemble", "phiseg"]
MODEL_NAMES: tuple[str, ...] = ("ensemble", "phiseg")


@dataclass(frozen=True)
class SegmentationConfig:
    """The Bayesian segmentation model (UNet ensemble or PHiSeg) and its training.

    Both models share the resolution levels: ``channels`` has one entry per level, each level halving
    the resolution of the one before, so frames must be divisible by 2 ** (len(channels) - 1).
    """

    model: ModelName = "ensemble"
    channels: tuple[int, ...] = (32, 64, 128, 192, 192, 192, 192)  # paper: 7 levels, both models
    blocks_per_level: int = 1  # residual blocks (two 3x3 convolutions each) per level and path
    # UNet ensemble (paper: 10 members), each with its own initialisation and batch order
    ensemble_size: int = 10
    # PHiSeg (paper: 5 latent levels of 2 channels, on the coarsest resolution levels)
    latent_levels: int = 5
    latent_channels: int = 2
    kl_weight_base: float = 4.0  # the KL of latent level l (0 = finest) is weighted kl_weight_base ** l
    kl_weight: float = 1.0  # overall weight of the KL terms against the residual cross-entropies
    # Training (paper: Adam, constant learning rate, batch 100, validation every 200 steps;
    # 50,000 steps for PHiSeg, 15,000 for the ensemble: --set segmentation.steps=15000)
    learning_rate: float = 1e-3
    batch_size: int = 100  # frames per member and step
    steps: int = 50_000
    val_every: int = 200
    # Posterior samples N of PHiSeg (Eq. 7); an ensemble always uses its members
    val_num_samples: int = 16
    test_num_samples: int = 50
    eval_batch_size: int = 16
    seed: int = 0
    num_workers: int = 0  # data-loading processes; 0 loads in the training process
    device: str = "auto"  # auto (cuda when available), cpu, cuda, cuda:N or mps
    precision: str = "fp32"  # fp32, or bf16: mixed precision (autocast) for the forward passes

    def __post_init__(self) -> None:
        check(self.model in MODEL_NAMES, "model", "one of " + ", ".join(MODEL_NAMES), self.model)
        check(len(self.channels) >= 2, "channels", "at least 2 levels", list(self.channels))
        check(all(c >= 1 for c in self.channels), "channels", "positive integers", list(self.channels))
        check(self.blocks_per_level >= 1, "blocks_per_level", "an integer >= 1", self.blocks_per_level)
        check(self.ensemble_size >= 2, "ensemble_size", "an integer >= 2 (a variance needs two)",
              self.ensemble_size)  # fmt: skip
        check(
            1 <= self.latent_levels <= len(self.channels),
            "latent_levels",
            f"an integer in [1, {len(self.channels)}] (at most one per resolution level)",
            self.latent_levels,
        )
        check(self.latent_channels >= 1, "latent_channels", "an integer >= 1", self.latent_channels)
        check(self.kl_weight_base > 0, "kl_weight_base", "a number > 0", self.kl_weight_base)
        check(self.kl_weight >= 0, "kl_weight", "a number >= 0", self.kl_weight)
        check(self.learning_rate > 0, "learning_rate", "a number > 0", self.learning_rate)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        check(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        check(self.val_every >= 1, "val_every", "an integer >= 1", self.val_every)
        check(self.val_num_samples >= 2, "val_num_samples", "an integer >= 2", self.val_num_samples)
        check(self.test_num_samples >= 2, "test_num_samples", "an integer >= 2", self.test_num_samples)
        check(self.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1", self.eval_batch_size)
        check(self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers)
        check(self.precision in PRECISIONS, "precision", "fp32 or bf16", self.precision)
        check(
            re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device) is not None,
            "device",
            "auto, cpu, cuda, cuda:N or mps",
            self.device,
        )

    @property
    def min_size_multiple(self) -> int:
        """Frames must be divisible by this (every level halves the resolution)."""
        return 2 ** (len(self.channels) - 1)

    def num_samples(self, split: str) -> int | None:
        """Posterior samples for ``val`` or ``test``: PHiSeg's N; None (all members) for an ensemble."""
        if self.model == "ensemble":
            return None
        return self.val_num_samples if split == "val" else self.test_num_samples


# The slices of the configuration a segmenter run reads: resume and reuse compare only these, so that a
# value of another stage (a demo or toy option of another gauda version) never refuses a segmenter run.
SEGMENTER_SLICES: tuple[str, ...] = ("data", "segmentation", "scheme")

SEGMENTATION_PRESETS: dict[str, SegmentationConfig] = {
    # 64 px synthetic frames on a 2-core CPU: 4 small UNets (or a small PHiSeg), a few hundred steps.
    "tiny": SegmentationConfig(
        channels=(16, 32, 48, 64),
        ensemble_size=4,
        latent_levels=3,
        latent_channels=2,
        batch_size=8,
        steps=400,
        val_every=100,
        val_num_samples=8,
        test_num_samples=16,
        eval_batch_size=16,
    ),
    "paper": SegmentationConfig(),
}
