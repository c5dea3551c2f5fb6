"""The segmentation commands as a user meets them: train segmenter, evaluate segmenter, evaluate masks."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, save_png
from safetensors.torch import load_file

# A very small run: 6 synthetic videos of 2 frames at 32 px, two-level networks, 4 steps.
SMALL = [
    "--set", "data.synthetic.num_videos=6", "--set", "data.synthetic.frames_per_video=2",
    "--set", "data.synthetic.image_size=32", "--set", "data.image_size=32",
    "--set", "data.split.fractions=[0.6, 0.2, 0.2]",
    "--set", "segmentation.channels=[4, 8]", "--set", "segmentation.latent_levels=2",
    "--set", "segmentation.ensemble_size=2", "--set", "segmentation.batch_size=2",
    "--set", "segmentation.val_every=2", "--set", "segmentation.val_num_samples=2",
    "--set", "segmentation.test_num_samples=3", "--set", "segmentation.device=cpu",
]  # fmt: skip


def test_train_dry_run_prints_the_segmentation_slice(capsys, monkeypatch, tmp_path) -> None:
    args = ["train", "segmenter", "--out", str(tmp_path / "run"), "--model", "phiseg", "--aug", "--dry-run"]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "model: phiseg" in out and "ensemble_size: 4" in out
    assert "enabled: true" in out  # --aug switches the classic augmentation on
    assert not (tmp_path / "run").exists()


def test_image_size_that_the_levels_cannot_halve_is_refused(capsys, monkeypatch, tmp_path) -> None:
    args = ["train", "segmenter", "--out", str(tmp_path / "run"), "--set", "data.image_size=36", "--dry-run"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "data.image_size 36" in err and "multiple of 8" in err


def test_evaluate_a_run_without_checkpoint_names_the_missing_file(capsys, monkeypatch, tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    code, _, err = run_cli(["evaluate", "segmenter", "--run", str(run)], capsys, monkeypatch)
    assert code == 2 and "config.yaml not found" in err
    (run / "config.yaml").write_text("{}\n")
    code, _, err = run_cli(["evaluate", "segmenter", "--run", str(run)], capsys, monkeypatch)
    assert code == 2 and str(run / "best.safetensors") in err.replace(" ", "")  # rich may break a path


def test_resume_without_a_run_is_refused(capsys, monkeypatch, tmp_path) -> None:
    code, _, err = run_cli(["train", "segmenter", "--out", str(tmp_path), "--resume"], capsys, monkeypatch)
    assert code == 2 and "config.yaml not found" in err


def write_masks(folder: Path, masks: dict[str, np.ndarray]) -> None:
    for stem, mask in masks.items():
        save_png(folder / f"{stem}.png", mask.astype(np.uint8))


def test_evaluate_masks_prints_the_table_and_json(capsys, monkeypatch, tmp_path) -> None:
    truth = {"a": np.array([[0, 1], [1, 255]]), "b": np.array([[2, 2], [0, 0]])}
    write_masks(tmp_path / "gt", truth)
    write_masks(tmp_path / "pred", {"a": np.array([[0, 1], [1, 1]]), "b": np.array([[2, 0], [0, 0]])})
    (tmp_path / "classes.json").write_text(json.dumps(["bg", "organ", "tool", "never"]))
    args = ["evaluate", "masks", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    args += ["--classes", str(tmp_path / "classes.json")]
    code, out, _ = run_cli([*args, "--json"], capsys, monkeypatch)
    summary = json.loads(out)
    assert code == 0
    assert set(summary) >= {"per_class", "label_mean_iou", "sample_mean_iou", "sample_median_iou"}
    assert summary["per_class"]["organ"] == {"iou": 1.0, "dice": 1.0}
    assert summary["per_class"]["tool"]["iou"] == 0.5 and summary["per_class"]["never"]["iou"] is None
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "label mean" in out and "sample median" in out


def test_evaluate_masks_with_a_missing_prediction_names_the_file(capsys, monkeypatch, tmp_path) -> None:
    write_masks(tmp_path / "gt", {"a": np.zeros((2, 2)), "b": np.zeros((2, 2))})
    write_masks(tmp_path / "pred", {"a": np.zeros((2, 2))})
    (tmp_path / "classes.json").write_text(json.dumps(["bg"]))
    args = ["evaluate", "masks", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    code, _, err = run_cli([*args, "--classes", str(tmp_path / "classes.json")], capsys, monkeypatch)
    assert code == 2 and "b.png" in err and "missing" in err


def model_weights(run: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run / "last.safetensors")).items() if k.startswith("state.model.")}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ensemble", "phiseg"])
def test_train_resume_and_evaluate_end_to_end(model, capsys, monkeypatch, tmp_path) -> None:
    base = ["train", "segmenter", "--model", model, *SMALL]
    code, out, _ = run_cli(
        [*base, "--out", str(tmp_path / "whole"), "--set", "segmentation.steps=4"], capsys, monkeypatch
    )
    assert code == 0 and json.loads(out)["step"] == 4
    for name in ("best.safetensors", "last.safetensors", "config.yaml", "split.json", "metrics.csv"):
        assert (tmp_path / "whole" / name).is_file(), name

    # stopped at step 2, then resumed to step 4: the same weights as the uninterrupted run
    stopped = tmp_path / "stopped"
    code, _, _ = run_cli([*base, "--out", str(stopped), "--set", "segmentation.steps=2"], capsys, monkeypatch)
    args = ["train", "segmenter", "--out", str(stopped), "--resume", "--set", "segmentation.steps=4"]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and json.loads(out)["step"] == 4
    whole, resumed = model_weights(tmp_path / "whole"), model_weights(stopped)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)

    code, out, _ = run_cli(["evaluate", "segmenter", "--run", str(stopped), "--json"], capsys, monkeypatch)
    summary = json.loads(out)
    assert code == 0 and summary["split"] == "test" and summary["step"] in (2, 4)
    assert set(summary) >= {"per_class", "label_mean_iou", "sample_mean_iou", "sample_median_iou"}
    assert {"iou", "dice", "ap", "uncertainty"} <= set(summary["per_class"]["Background"])
    written = json.loads((stopped / "evaluation_test.json").read_text())
    assert written["label_mean_iou"] == summary["label_mean_iou"] and "frames" in written
