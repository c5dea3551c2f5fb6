"""Uncertainty-based sampling of the real frames (Supp. 8.2 on images): each validation's class-wise
uncertainty UE_c becomes class weights, a frame's weight derives from the classes it holds, and a
weighted sampler draws the next batches. A scheme of its own (``uncertainty``), and GAUDA's real-frame
half (``scheme.real_sampling``)."""

from __future__ import annotations

import logging

import torch

from gauda.augmentation.adaptive import frame_weights, training_frame_classes
from gauda.augmentation.config import SchemeConfig
from gauda.augmentation.selection import class_weights_from_uncertainty
from gauda.segmentation.trainer import SegmentationTrainer, TrainingHook, ValidationResults
from gauda.uncertainty.estimates import classwise_estimate

logger = logging.getLogger(__name__)


def scheme_uncertainty(results: ValidationResults, config: SchemeConfig) -> torch.Tensor:
    """(C,) UE_c of one validation as the scheme configures it (pooling, quantity, missed classes)."""
    if results.estimates is None:  # a trainer that computed only the literal Eq. 8
        return results.uncertainty
    return classwise_estimate(
        results.estimates, config.uncertainty_pooling, config.uncertainty_quantity, config.missed_ratio
    )


def set_uncertainty_weights(
    trainer: SegmentationTrainer, frame_classes: torch.Tensor, uncertainty: torch.Tensor, config: SchemeConfig
) -> torch.Tensor:
    """Give the trainer's sampler frame weights from UE_c; returns the class weights (C,)."""
    class_weights = class_weights_from_uncertainty(uncertainty, config.temperature)
    trainer.sampler.set_weights(frame_weights(frame_classes, class_weights, config.frame_weight))
    return class_weights


class UncertaintySampling(TrainingHook):
    """At each validation, set the trainer's sampling weights from the class-wise uncertainty.

    The weights travel in the trainer's checkpoints (its sampler's state), so the hook keeps none.
    """

    def __init__(self, config: SchemeConfig, frame_classes: torch.Tensor | None = None) -> None:
        self.config = config
        self.frame_classes = frame_classes
        self.trainer: SegmentationTrainer | None = None

    def on_train_start(self, trainer: SegmentationTrainer) -> None:
        self.trainer = trainer
        if self.frame_classes is None:
            self.frame_classes = training_frame_classes(trainer.train, progress=trainer.progress)

    def on_validation(self, step: int, results: ValidationResults) -> None:
        assert self.trainer is not None and self.frame_classes is not None
        uncertainty = scheme_uncertainty(results, self.config)
        class_weights = set_uncertainty_weights(self.trainer, self.frame_classes, uncertainty, self.config)
        top = int(class_weights.argmax())
        logger.info(
            "step %d: uncertainty sampling weights set (largest: %s, %.3f)",
            step,
            self.trainer.class_names[top],
            class_weights[top],
        )
