"""Uncertainty-based sampling of the real frames (Supp. 8.2 on images): each validation's class-wise
uncertainty UE_c becomes class weights, a frame's weight derives from the classes it holds, and a
weighted sampler draws the next batches. A scheme of its own (``uncertainty``), and GAUDA's real-frame
half (``scheme.real_sampling``)."""

from __future__ import annotations

import torch

from gauda.augmentation.adaptive import FrameWeighting
from gauda.augmentation.config import SchemeConfig
from gauda.augmentation.selection import class_weights_from_uncertainty
from gauda.segmentation.trainer import ValidationResults
from gauda.uncertainty.estimates import classwise_estimate


def scheme_uncertainty(results: ValidationResults, config: SchemeConfig) -> torch.Tensor:
    """(C,) UE_c of one validation as the scheme configures it (pooling, quantity, missed classes)."""
    if results.estimates is None:  # a trainer that computed only the literal Eq. 8
        return results.uncertainty
    return classwise_estimate(
        results.estimates, config.uncertainty_pooling, config.uncertainty_quantity, config.missed_ratio
    )


class UncertaintySampling(FrameWeighting):
    """Uncertainty sampling: frame weights from the class-wise uncertainty UE_c (``scheme_uncertainty``)."""

    name = "uncertainty sampling"

    def class_weights(self, results: ValidationResults) -> torch.Tensor:
        return class_weights_from_uncertainty(
            scheme_uncertainty(results, self.config), self.config.temperature
        )
