"""``gauda evaluate generator`` as a user meets it: the tiny generator and a tiny segmenter, end to end."""

from __future__ import annotations

import json

import pytest
from test_segmentation_cli import run_cli

from gauda.evaluation.generator_eval import (
    AUTOENCODER_ONLY_RUN,
    FIGURE_FILE,
    RESULT_FILE,
    SYNTHETIC_ONLY_RUN,
)
from gauda.evaluation.inception import WEIGHTS_ENV, WEIGHTS_URL

KEYS = {"fid", "kid_mean", "kid_std", "feature_extractor", "ro_iou", "so_iou", "hit_rate", "sweep"}
SWEEP_KEYS = {"guidance", "fid", "kid_mean", "kid_std", "ro_iou", "ro_dice", "hit_rate", "mean_hit_rate"}


@pytest.mark.slow
def test_evaluate_generator_writes_every_key(
    tiny_generator, segmenter_run, capsys, caplog, monkeypatch, tmp_path
) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    out = tmp_path / "evaluation"
    args = [
        "evaluate",
        "generator",
        "--run",
        str(tiny_generator.diffusion),
        "--segmenter",
        str(segmenter_run),
    ]
    args += ["--num", "10", "--guidance", "2", "--guidance", "1", "--batch-size", "5", "--device", "cpu"]
    args += ["--ae-only"]
    code, out_text, err = run_cli([*args, "--json", "--out", str(out)], capsys, monkeypatch)
    assert code == 0, err
    result = json.loads(out_text)
    assert set(result) >= KEYS
    assert result["feature_extractor"] == "segmenter-encoder (in-domain, not standard FID)"
    assert "NOT the standard FID" in caplog.text  # the logged warning
    assert result["guidance"] == 2.0 and [entry["guidance"] for entry in result["sweep"]] == [2.0, 1.0]
    assert all(set(entry) >= SWEEP_KEYS for entry in result["sweep"])
    assert result["fid"] == result["sweep"][0]["fid"] and result["fid"] >= 0 and result["kid_std"] >= 0
    class_names = list(result["ro_evaluation"]["per_class"])
    assert list(result["hit_rate"]) == class_names  # --num 10 >= 9 classes: every class has pairs
    assert all(0 <= rate <= 1 for rate in result["hit_rate"].values())
    assert result["so_iou"] is None or 0 <= result["so_iou"] <= 1
    assert (out / SYNTHETIC_ONLY_RUN / "last.safetensors").is_file()
    assert (out / AUTOENCODER_ONLY_RUN / "last.safetensors").is_file()
    assert 0 <= result["ae_only_iou"] <= 1 and 0 <= result["real_iou"] <= 1
    assert list(result["real_evaluation"]["per_class"]) == class_names
    written = json.loads((out / RESULT_FILE).read_text())
    assert written["sweep"] == result["sweep"] and (out / FIGURE_FILE).stat().st_size > 0


def test_a_missing_inception_weight_file_is_a_clean_error(
    tiny_generator, segmenter_run, capsys, monkeypatch, tmp_path
) -> None:
    args = [
        "evaluate",
        "generator",
        "--run",
        str(tiny_generator.diffusion),
        "--segmenter",
        str(segmenter_run),
    ]
    args += ["--inception-weights", str(tmp_path / "pt_inception.pth"), "--out", str(tmp_path / "out")]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "--inception-weights" in err and WEIGHTS_URL in err.replace(" ", "")
    assert not (tmp_path / "out").exists()  # refused before anything was generated


def test_the_per_class_tables_show_iou_and_the_thresholdless_average_precision() -> None:
    from rich.console import Console

    from gauda.cli.evaluate_generator import print_per_class

    def evaluation(iou: float, ap: float) -> dict:
        return {"per_class": {"Blood": {"iou": iou, "ap": ap}}, "label_mean_iou": iou, "label_mean_ap": ap}

    result = {"real_evaluation": evaluation(0.0, 0.505), "ro_evaluation": evaluation(0.0, 0.114),
              "so_evaluation": evaluation(0.0, 0.539)}  # fmt: skip
    console = Console(record=True, width=120)
    print_per_class(result, console, "iou")
    print_per_class(result, console, "ap")
    text = console.export_text()
    assert "IoU per class" in text and "average precision per class" in text
    assert "SO (test)" in text and "0.539" in text and "0.505" in text
