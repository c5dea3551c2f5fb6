"""Optional curation of synthetic pairs (the paper's future work for its failure cases): keep a pair only
when the current segmenter, run on the generated image, agrees with the generated mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gauda.data.classes import IGNORE_INDEX
from gauda.metrics.segmentation import frame_counts, frame_mean, iou_from_counts
from gauda.segmentation.bayesian import BayesianSegmenter, predict


def mask_agreement(prediction: torch.Tensor, masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B,) frame IoU of predicted against generated masks: the mean over the classes in either."""
    return frame_mean(iou_from_counts(frame_counts(prediction, masks, num_classes))).nan_to_num(0.0)


@torch.no_grad()
def curate(
    model: BayesianSegmenter,
    images: torch.Tensor,
    masks: torch.Tensor,
    threshold: float,
    num_samples: int | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's agreement (B,) with each generated pair, and the keep mask (B,) of agreement >= threshold.

    Args:
        model: the segmenter being trained (put in eval mode for the prediction, then restored).
        images: (B, 3, H, W) generated images on the model's device; masks (B, H, W) generated masks.
        threshold: the lowest frame IoU kept.
        num_samples: posterior samples of the mean prediction (Eq. 7); None: the model's own.
        generator: seeds the posterior draws.
    """
    was_training = model.training
    model.eval()
    try:
        _, y_bar = predict(model, images.contiguous(), num_samples, generator)  # (B, C, H, W)
    finally:
        model.train(was_training)
    agreement = mask_agreement(y_bar.argmax(dim=1), masks, y_bar.shape[1])
    return agreement, agreement >= threshold


def presence_keep(masks: torch.Tensor, conditions: torch.Tensor, min_pixels: int) -> torch.Tensor:
    """(B,) bool: the pairs whose mask (B, H, W) holds every class of its condition row (B, C) on at
    least ``min_pixels`` pixels. Unlike ``curate`` it asks nothing of the current model, so it keeps the
    rare-class pairs that the model misses (the ones worth generating)."""
    num_classes = conditions.shape[1]
    pixels = torch.stack([torch.bincount(m.flatten(), minlength=256)[:num_classes] for m in masks.long()])
    return ((pixels >= min_pixels) | (conditions <= 0)).all(dim=1)


def requested_labels(masks: torch.Tensor, conditions: torch.Tensor, margin: int) -> torch.Tensor:
    """Masks (B, H, W) whose pixels farther than ``margin`` (Chebyshev distance) from every pixel of a
    class in the pair's condition row (B, C) are ``IGNORE_INDEX``: a generated pair then teaches the
    classes it was asked for and their borders, not the frequent organs that the real frames teach better
    (and that a generator weighted towards the rare classes renders less faithfully). A pair without any
    requested pixel is ignored whole."""
    num_classes = conditions.shape[1]
    valid = masks < num_classes
    requested = conditions.bool().gather(1, torch.where(valid, masks, 0).long().flatten(1)).view_as(masks)
    near = F.max_pool2d((requested & valid).float()[:, None], 2 * margin + 1, stride=1, padding=margin)[:, 0]
    return torch.where(near > 0, masks, torch.full_like(masks, IGNORE_INDEX))
