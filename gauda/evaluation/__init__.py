"""Evaluation: per-class IoU / Dice / AP and the paper's result tables (label mean, sample mean / median)."""

from gauda.evaluation.masks import evaluate_mask_folders, read_class_names
from gauda.metrics.segmentation import (
    FrameCounts,
    SegmentationScores,
    SegmentationTable,
    average_precision,
    dice_from_counts,
    frame_counts,
    iou_from_counts,
    score_histograms,
    segmentation_table,
)

__all__ = [
    "FrameCounts",
    "SegmentationScores",
    "SegmentationTable",
    "average_precision",
    "dice_from_counts",
    "evaluate_mask_folders",
    "frame_counts",
    "iou_from_counts",
    "read_class_names",
    "score_histograms",
    "segmentation_table",
]
