"""A split scored at every validation, for curves of IoU over training (``test/iou/<class>`` rows in the
run's ``metrics.csv``).

Only for looking at: the checkpoint choice and every training scheme read the validation split, never
this one, so a test curve does not leak the test split into training. The trainer's random draws are
untouched (the evaluation seeds its own generator), so a run with the curve reaches the same weights as
one without.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gauda.data.config import DataConfig
from gauda.data.dataset import load_splits
from gauda.segmentation.evaluate import evaluate_split
from gauda.segmentation.trainer import SegmentationTrainer, TrainingHook, ValidationResults, metric_name


class SplitCurve(TrainingHook):
    """Score ``split`` of ``data`` (classic augmentation off) at every validation and log per-class IoU
    and the label mean as ``<split>/iou/<class>`` and ``<split>/label_mean_iou``."""

    def __init__(self, data: DataConfig, split: str = "test") -> None:
        self.data = replace(data, augment=replace(data.augment, enabled=False))
        self.split = split
        self.trainer: SegmentationTrainer | None = None
        self.frames: Any = None

    def on_train_start(self, trainer: SegmentationTrainer) -> None:
        self.trainer = trainer
        if trainer.ddp.is_main:
            self.frames = getattr(load_splits(self.data, progress=False), self.split)

    def on_validation(self, step: int, results: ValidationResults) -> None:
        trainer = self.trainer
        if trainer is None or self.frames is None or trainer.metrics_log is None:
            return
        config = trainer.config
        evaluation = evaluate_split(trainer.segmenter, self.frames, trainer.class_names,
                                    config.num_samples("test"), config.eval_batch_size, trainer.device,
                                    seed=config.seed, num_workers=config.num_workers)  # fmt: skip
        table = evaluation.table
        values = {f"{self.split}/label_mean_iou": table.label_mean_iou}
        for c, name in enumerate(trainer.class_names):
            values[f"{self.split}/iou/{metric_name(name)}"] = float(table.iou[c])
        trainer.metrics_log.log(step, values)
