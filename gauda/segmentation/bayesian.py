"""The one interface of gauda's Bayesian segmenters, and the model a configuration names.

A Bayesian segmenter gives N posterior samples of class probabilities per image (N ensemble members
or N latent draws of PHiSeg); everything downstream (Eq. 7's mean prediction, Eq. 8's class-wise
uncertainty, the pixel-wise maps, the result tables) is computed from those samples alone.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from gauda.segmentation.config import SegmentationConfig
from gauda.segmentation.ensemble import UNetEnsemble
from gauda.segmentation.phiseg import PHiSeg
from gauda.uncertainty.classwise import mean_prediction


@runtime_checkable
class BayesianSegmenter(Protocol):
    """What the trainer, the evaluation and GAUDA's uncertainty guide need of a segmentation model."""

    num_classes: int

    @property
    def num_members(self) -> int:
        """How many batches one training step takes: K for an ensemble (each member its own), else 1."""
        ...

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise and the values to log.

        Args:
            images: (M, B, 3, H, W) with M = ``num_members``.
            masks: (M, B, H, W) class ids, ``IGNORE_INDEX`` where no class applies.
            generator: random stream of the model's own sampling (PHiSeg's latents).
        """
        ...

    def sample_posterior(
        self, images: torch.Tensor, num_samples: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Class probabilities of N posterior samples, (N, B, C, H, W), for images (B, 3, H, W).

        Args:
            num_samples: N; None for the model's own (all members of an ensemble).
            generator: random stream for the draws, for reproducible validation.
        """
        ...


def build_segmenter(config: SegmentationConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The model ``config.model`` names, freshly initialised from ``config.seed``.

    Args:
        config: the segmentation slice of the configuration.
        in_channels: image channels (3).
        num_classes: C.
    """
    if config.model == "ensemble":
        return UNetEnsemble(
            config.ensemble_size,
            in_channels,
            num_classes,
            config.channels,
            config.blocks_per_level,
            config.seed,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return PHiSeg(
            in_channels,
            num_classes,
            config.channels,
            config.latent_levels,
            config.latent_channels,
            config.blocks_per_level,
            config.kl_weight_base,
            config.kl_weight,
        )


@torch.no_grad()
def predict(
    model: BayesianSegmenter,
    images: torch.Tensor,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior samples (N, B, C, H, W) and their mean prediction (B, C, H, W) (Eq. 7)."""
    samples = model.sample_posterior(images, num_samples, generator)
    return samples, mean_prediction(samples)
