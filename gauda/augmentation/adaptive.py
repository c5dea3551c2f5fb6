"""Adaptive Sampling (paper Sec. 2.1, after Gopal 2016): validation IoU per class becomes class weights,
a frame's weight derives from the classes it contains, and a weighted sampler draws the next batches."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from tqdm.auto import tqdm

from gauda.augmentation.config import SchemeConfig
from gauda.data.dataset import PairedDataset, classes_present
from gauda.segmentation.trainer import SegmentationTrainer, TrainingHook, ValidationResults

logger = logging.getLogger(__name__)


def class_weights_from_iou(
    iou: torch.Tensor,
    rule: Literal["softmax", "linear"] = "softmax",
    temperature: float = 0.2,
    floor: float = 0.05,
) -> torch.Tensor:
    """Class weights (C,) summing to 1 that grow as a class's validation IoU falls.

    ``softmax``: w_c = softmax((1 - IoU_c) / T); ``linear``: w_c proportional to 1 - IoU_c + floor.
    A class without an IoU (NaN: absent from the validation split and never predicted) gets the mean
    IoU of the others, so that it is neither favoured nor starved.
    """
    iou = iou.to(torch.float64)
    known = ~torch.isnan(iou)
    fill = iou[known].mean() if known.any() else torch.tensor(0.0, dtype=torch.float64)
    difficulty = 1 - torch.where(known, iou, fill)  # (C,)
    if rule == "softmax":
        return torch.softmax(difficulty / temperature, dim=0)
    if rule == "linear":
        weights = difficulty.clamp(min=0) + floor
        return weights / weights.sum()
    raise ValueError(f"weight_rule {rule!r}: expected softmax or linear")


def frame_weights(
    frame_classes: torch.Tensor, class_weights: torch.Tensor, reduction: Literal["max", "mean"] = "max"
) -> torch.Tensor:
    """Frame weights (N,) from the multi-hot classes of each frame (N, C) and the class weights (C,).

    ``max``: a frame is as important as its rarest-scoring class; ``mean``: the average over its classes.
    A frame without any labelled class gets the smallest class weight.
    """
    present = frame_classes.to(torch.bool)
    weights = class_weights.to(torch.float64).expand(present.shape)  # (N, C)
    if reduction == "max":
        chosen = torch.where(present, weights, torch.full_like(weights, -1.0)).amax(dim=1)
    elif reduction == "mean":
        counts = present.sum(dim=1)
        chosen = torch.where(present, weights, torch.zeros_like(weights)).sum(dim=1) / counts.clamp(min=1)
        chosen = torch.where(counts > 0, chosen, torch.full_like(chosen, -1.0))
    else:
        raise ValueError(f"frame_weight {reduction!r}: expected max or mean")
    return torch.where(chosen < 0, class_weights.min().to(torch.float64), chosen)


def training_frame_classes(dataset: PairedDataset, progress: bool = False) -> torch.Tensor:
    """(N, C) multi-hot classes of every training frame, read once without augmentation."""
    rows = []
    for index in tqdm(dataset.indices, desc="classes per frame", disable=not progress, leave=False):
        _, mask = dataset.frames.read(index)
        rows.append(classes_present(torch.from_numpy(mask.astype("int64")), dataset.num_classes))
    return torch.stack(rows)


def set_frame_weights(
    trainer: SegmentationTrainer,
    frame_classes: torch.Tensor,
    class_weights: torch.Tensor,
    config: SchemeConfig,
) -> None:
    """Give the trainer's sampler each training frame's weight (N,) from the class weights (C,)."""
    trainer.sampler.set_weights(frame_weights(frame_classes, class_weights, config.frame_weight))


def iou_class_weights(results: ValidationResults, config: SchemeConfig) -> torch.Tensor:
    """Adaptive Sampling's class weights (C,) from one validation's per-class IoU."""
    return class_weights_from_iou(
        results.table.iou, config.weight_rule, config.temperature, config.linear_floor
    )


class FrameWeighting(TrainingHook):
    """At each validation, set the trainer's sampling weights from class weights of the validation
    (``class_weights``, which a scheme defines). The weights travel in the trainer's checkpoints (its
    sampler's state), so the hook keeps none."""

    name = "frame weighting"

    def __init__(self, config: SchemeConfig, frame_classes: torch.Tensor | None = None) -> None:
        self.config = config
        self.frame_classes = frame_classes
        self.trainer: SegmentationTrainer | None = None

    def class_weights(self, results: ValidationResults) -> torch.Tensor:
        raise NotImplementedError

    def on_train_start(self, trainer: SegmentationTrainer) -> None:
        self.trainer = trainer
        if self.frame_classes is None:
            self.frame_classes = training_frame_classes(trainer.train, progress=trainer.progress)

    def on_validation(self, step: int, results: ValidationResults) -> None:
        assert self.trainer is not None and self.frame_classes is not None
        class_weights = self.class_weights(results)
        set_frame_weights(self.trainer, self.frame_classes, class_weights, self.config)
        top = class_weights.argmax().item()
        logger.info(
            "step %d: %s weights set (largest: %s, %.3f)",
            step,
            self.name,
            self.trainer.class_names[top],
            class_weights[top],
        )


class AdaptiveSampling(FrameWeighting):
    """Adaptive Sampling: frame weights from the per-class validation IoU."""

    name = "adaptive sampling"

    def class_weights(self, results: ValidationResults) -> torch.Tensor:
        return iou_class_weights(results, self.config)
