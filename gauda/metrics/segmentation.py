"""Segmentation scores as pure functions of masks and counts, and the paper's result table.

Conventions (docs/segmentation.md states them for users):
- Pixels whose ground truth is ``IGNORE_INDEX`` are left out of every count, predicted or true.
- Per-class scores are pooled over the dataset: IoU_c = sum_f I_fc / sum_f U_fc (f: frames).
- A frame's IoU is the mean over the classes present in its prediction or its ground truth
  (U_fc > 0). A class absent from both is excluded from that frame's mean: it does not count as 1.
- Label mean: the mean of the per-class IoU over classes with a non-empty pooled union; a class that
  no frame predicts or contains has no score (NaN, reported as missing) and is not averaged.
- Sample mean / median: the mean / median over frames of the frame IoU.
- Average precision (AP) of class c ranks every valid pixel by its predicted probability of c,
  with the scores binned at ``num_thresholds`` evenly spaced thresholds in [0, 1] (as torchmetrics'
  binned ``MulticlassAveragePrecision``), so that it pools over a dataset in constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

IGNORE_INDEX = 255  # the ignore label of every mask (gauda.data.classes re-exports it)


class FrameCounts(NamedTuple):
    """Per frame and class: |P ∩ T|, |P| and |T| over the valid pixels, each int64 (F, C)."""

    intersection: torch.Tensor
    predicted: torch.Tensor
    target: torch.Tensor


def frame_counts(
    prediction: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> FrameCounts:
    """Intersection, predicted and true area of every class in every frame.

    Args:
        prediction: (B, H, W) predicted class ids; ``ignore_index`` there means "no class" (the pixel
            then counts only against the true class).
        target: (B, H, W) true class ids, ``ignore_index`` for pixels left out of every count.
        num_classes: C.
        ignore_index: the label of ignored pixels.

    Returns:
        ``FrameCounts`` of int64 (B, C) tensors.
    """
    if prediction.shape != target.shape or prediction.dim() != 3:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)}: "
            "expected the same shape (B, H, W)"
        )
    for name, mask in (("prediction", prediction), ("target", target)):
        bad = (mask < 0) | ((mask >= num_classes) & (mask != ignore_index))
        if bad.any():
            values = torch.unique(mask[bad]).tolist()
            expected = f"class ids 0..{num_classes - 1} or {ignore_index}"
            raise ValueError(f"{name}: values {values}; expected {expected}")
    batch = target.shape[0]
    valid = target != ignore_index  # (B, H, W)
    offset = (torch.arange(batch, device=target.device) * num_classes).view(batch, 1, 1)  # frame f -> f * C

    def per_frame(labels: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount((labels + offset)[where], minlength=batch * num_classes)
        return counts.view(batch, num_classes)

    predicted = valid & (prediction != ignore_index)
    return FrameCounts(
        intersection=per_frame(target, valid & (prediction == target)),
        predicted=per_frame(prediction, predicted),
        target=per_frame(target, valid),
    )


def iou_from_counts(counts: FrameCounts) -> torch.Tensor:
    """IoU = |P ∩ T| / |P ∪ T| (float64) per entry of the counts; NaN where the union is empty."""
    union = counts.predicted + counts.target - counts.intersection
    return torch.where(union > 0, counts.intersection.double() / union.clamp(min=1), torch.nan)


def dice_from_counts(counts: FrameCounts) -> torch.Tensor:
    """Dice = 2 |P ∩ T| / (|P| + |T|) per entry of the counts; NaN where both are empty."""
    total = counts.predicted + counts.target
    return torch.where(total > 0, 2 * counts.intersection.double() / total.clamp(min=1), torch.nan)


def pooled(counts: FrameCounts) -> FrameCounts:
    """Counts summed over frames: (F, C) -> (C,), for dataset-level per-class scores."""
    return FrameCounts(*(c.sum(dim=0) for c in counts))


def frame_mean(scores: torch.Tensor) -> torch.Tensor:
    """(F, C) -> (F,): each frame's mean over its classes that have a score (NaN entries excluded)."""
    return torch.nanmean(scores.double(), dim=1)


def score_histograms(
    probs: torch.Tensor, target: torch.Tensor, num_thresholds: int = 200, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Counts of positive and negative pixels per class and score bin, for AP pooled over a dataset.

    Bin k holds the scores s with t_k <= s < t_{k+1}, thresholds t = linspace(0, 1, num_thresholds).

    Args:
        probs: (B, C, H, W) predicted class probabilities.
        target: (B, H, W) true class ids; ``ignore_index`` pixels are left out.
        num_thresholds: T, the number of thresholds.

    Returns:
        int64 (C, 2, T): [c, 1, k] positives (true class c) and [c, 0, k] negatives in bin k.
    """
    num_classes = probs.shape[1]
    thresholds = torch.linspace(0, 1, num_thresholds, device=probs.device)
    valid = target != ignore_index  # (B, H, W)
    scores = probs.movedim(1, -1)[valid]  # (P, C) over the valid pixels
    positive = torch.nn.functional.one_hot(target[valid], num_classes).bool()  # (P, C)
    bins = (torch.bucketize(scores.contiguous(), thresholds, right=True) - 1).clamp(0, num_thresholds - 1)
    classes = torch.arange(num_classes, device=probs.device).expand_as(bins)
    index = (classes * 2 + positive.long()) * num_thresholds + bins  # flat index into (C, 2, T)
    counts = torch.bincount(index.flatten(), minlength=num_classes * 2 * num_thresholds)
    return counts.view(num_classes, 2, num_thresholds)


def average_precision(histograms: torch.Tensor) -> torch.Tensor:
    """AP per class from ``score_histograms``: (C, 2, T) -> (C,); NaN for a class with no positive pixel.

    AP = -sum_k (R_{k+1} - R_k) P_k over the thresholds, with precision P_k = TP_k / (TP_k + FP_k)
    (1 where nothing is predicted) and recall R_k = TP_k / (TP + FN), closed by (R, P) = (0, 1).
    """
    # TP_k, FP_k: pixels scored >= t_k, i.e. in bins k and above (reverse cumulative sum)
    above = histograms.flip(-1).cumsum(-1).flip(-1).double()  # (C, 2, T)
    true_positives, false_positives = above[:, 1], above[:, 0]  # (C, T)
    positives = histograms[:, 1].sum(-1, keepdim=True).double()  # (C, 1)
    predicted = true_positives + false_positives
    precision = torch.where(predicted > 0, true_positives / predicted.clamp(min=1), 1.0)
    recall = true_positives / positives.clamp(min=1)
    ones, zeros = torch.ones_like(precision[:, :1]), torch.zeros_like(recall[:, :1])
    precision, recall = torch.cat([precision, ones], 1), torch.cat([recall, zeros], 1)
    ap = -((recall[:, 1:] - recall[:, :-1]) * precision[:, :-1]).sum(-1)
    return torch.where(positives.squeeze(1) > 0, ap, torch.nan)


def _number(value: float | torch.Tensor) -> float | None:
    """A JSON-ready float: NaN (no estimate) becomes None (null)."""
    value = float(value)
    return None if math.isnan(value) else value


def _nanmean(values: torch.Tensor) -> float:
    return float(torch.nanmean(values.double())) if values.numel() else math.nan


def _nanmedian(values: torch.Tensor) -> float:
    """Median with the mean of the two middle values for an even count (NumPy's), NaN entries excluded."""
    kept = values[~values.isnan()].double()
    return float(torch.quantile(kept, 0.5)) if kept.numel() else math.nan


@dataclass(frozen=True)
class SegmentationTable:
    """The paper's result table of one model on one split: per-class IoU, Dice, AP and the means."""

    class_names: tuple[str, ...]
    iou: torch.Tensor  # (C,) pooled per-class IoU, NaN for a class absent from predictions and truth
    dice: torch.Tensor  # (C,) pooled per-class Dice
    ap: torch.Tensor | None  # (C,) per-class AP; None without probabilities (e.g. mask folders)
    frame_iou: torch.Tensor  # (F,) each frame's mean IoU over its present classes
    frame_dice: torch.Tensor  # (F,)
    frame_names: tuple[str, ...]

    @property
    def label_mean_iou(self) -> float:
        return _nanmean(self.iou)

    @property
    def sample_mean_iou(self) -> float:
        return _nanmean(self.frame_iou)

    @property
    def sample_median_iou(self) -> float:
        return _nanmedian(self.frame_iou)

    def to_json(self, frames: bool = False) -> dict[str, Any]:
        """Keys ``per_class`` (name -> iou, dice, ap where available; null = no estimate),
        ``label_mean_iou``, ``sample_mean_iou``, ``sample_median_iou`` and the Dice/AP means; with
        ``frames``, also each frame's IoU and Dice."""
        per_class: dict[str, dict[str, float | None]] = {}
        for c, name in enumerate(self.class_names):
            per_class[name] = {"iou": _number(self.iou[c]), "dice": _number(self.dice[c])}
            if self.ap is not None:
                per_class[name]["ap"] = _number(self.ap[c])
        summary: dict[str, Any] = {
            "per_class": per_class,
            "label_mean_iou": _number(self.label_mean_iou),
            "sample_mean_iou": _number(self.sample_mean_iou),
            "sample_median_iou": _number(self.sample_median_iou),
            "label_mean_dice": _number(_nanmean(self.dice)),
            "sample_mean_dice": _number(_nanmean(self.frame_dice)),
            "sample_median_dice": _number(_nanmedian(self.frame_dice)),
            "label_mean_ap": _number(_nanmean(self.ap)) if self.ap is not None else None,
            "num_frames": len(self.frame_names),
        }
        if frames:
            summary["frames"] = {
                name: {"iou": _number(iou), "dice": _number(dice)}
                for name, iou, dice in zip(self.frame_names, self.frame_iou, self.frame_dice, strict=True)
            }
        return summary


def segmentation_table(
    counts: FrameCounts,
    class_names: Sequence[str],
    frame_names: Sequence[str],
    histograms: torch.Tensor | None = None,
) -> SegmentationTable:
    """Assemble the table from per-frame counts (F, C) and, optionally, AP score histograms (C, 2, T)."""
    if len(frame_names) != counts.target.shape[0]:
        raise ValueError(f"{len(frame_names)} frame names for {counts.target.shape[0]} frames of counts")
    return SegmentationTable(
        class_names=tuple(class_names),
        iou=iou_from_counts(pooled(counts)),
        dice=dice_from_counts(pooled(counts)),
        ap=average_precision(histograms) if histograms is not None else None,
        frame_iou=frame_mean(iou_from_counts(counts)),
        frame_dice=frame_mean(dice_from_counts(counts)),
        frame_names=tuple(frame_names),
    )


class SegmentationScores:
    """Accumulates per-frame counts (and AP histograms when probabilities are given) over a dataset.

    Args:
        class_names: names of the class ids 0..C-1.
        num_thresholds: score bins of the average precision.
    """

    def __init__(self, class_names: Sequence[str], num_thresholds: int = 200) -> None:
        self.class_names = tuple(class_names)
        self.num_thresholds = num_thresholds
        self._counts: list[FrameCounts] = []
        self._names: list[str] = []
        self._histograms: torch.Tensor | None = None
        self._with_probs: bool | None = None

    def update(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        names: Sequence[str],
        probs: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: prediction and target (B, H, W), frame names, optional probabilities (B, C, H, W)."""
        if self._with_probs is not None and self._with_probs != (probs is not None):
            raise ValueError("SegmentationScores.update: pass probabilities with every batch or with none")
        self._with_probs = probs is not None
        counts = frame_counts(prediction, target, len(self.class_names))
        self._counts.append(FrameCounts(*(c.cpu() for c in counts)))
        self._names.extend(names)
        if probs is not None:
            histograms = score_histograms(probs, target, self.num_thresholds).cpu()
            self._histograms = histograms if self._histograms is None else self._histograms + histograms

    def compute(self) -> SegmentationTable:
        if not self._counts:
            raise ValueError("SegmentationScores.compute: no frames were added")
        counts = FrameCounts(*(torch.cat(parts) for parts in zip(*self._counts, strict=True)))
        return segmentation_table(counts, self.class_names, self._names, self._histograms)
