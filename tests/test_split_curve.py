"""The test split scored at every validation: rows for the curves, and the same weights as without."""

from __future__ import annotations

import csv

import torch
from tiny_runs import tiny_config

from gauda.augmentation.training import train_segmenter
from gauda.checkpoint import load_checkpoint
from gauda.segmentation.curves import SplitCurve


def test_a_test_curve_logs_every_validation_and_leaves_training_unchanged(tmp_path) -> None:
    config = tiny_config(tmp_path / "cache", extra=("segmentation.device=cpu",))
    train_segmenter(config, tmp_path / "plain", progress=False)
    train_segmenter(config, tmp_path / "curve", progress=False, extra_hooks=[SplitCurve(config.data, "test")])
    plain = load_checkpoint(tmp_path / "plain" / "last.safetensors")["model"]
    curve = load_checkpoint(tmp_path / "curve" / "last.safetensors")["model"]
    assert plain.keys() == curve.keys() and all(torch.equal(plain[k], curve[k]) for k in plain)
    with (tmp_path / "curve" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    steps = sorted({int(r["step"]) for r in rows if r["name"] == "test/label_mean_iou"})
    assert steps == sorted({int(r["step"]) for r in rows if r["name"] == "val/label_mean_iou"}) == [2, 4]
    assert {r["name"] for r in rows if r["name"].startswith("test/iou/")} >= {
        "test/iou/Blood",
        "test/iou/L-hook",
    }
