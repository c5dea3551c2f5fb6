"""Offline GAUDA (``gauda augment``), generated pairs as an nnU-Net dataset, and the Python API's
documented examples, on the tiny generator and segmenter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from test_nnunet import check_folds, check_nnunet_rules
from tiny_runs import tiny_overrides

import gauda
from gauda.config import ConfigError
from gauda.data.config import DataConfig, SplitConfig
from gauda.data.dataset import load_splits

DOCS = Path(__file__).resolve().parents[1] / "docs" / "nnunet.md"


def test_sample_writes_an_nnunet_dataset(tiny_generator, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "Dataset502_Generated"
    args = [
        "sample",
        "--run",
        str(tiny_generator.diffusion),
        "--out",
        str(out),
        "--num",
        "6",
        "--format",
        "nnunet",
    ]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert check_nnunet_rules(out)["numTraining"] == 6
    assert len(check_folds(out)) == 5  # every pair its own video: five folds of pairs


@pytest.mark.parametrize("draw", ["uncertainty", "data"])
def test_augment_adds_generated_pairs_to_train_and_says_why(
    draw, tiny_generator, segmenter_run, tmp_path, capsys, monkeypatch
) -> None:
    out = tmp_path / "augmented"
    args = ["augment", "--segmenter", str(segmenter_run), "--generator", str(tiny_generator.diffusion),
            "--num", "5", "--draw", draw, "--out", str(out), "--set", "scheme.top_k=2",
            "--set", "scheme.presence_pixels=0"]  # fmt: skip
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    record = json.loads((out / "augment.json").read_text())
    assert record["num_pairs"] == 5 and record["draw"] == draw
    names = list(record["uncertainty"])
    if draw == "uncertainty":
        # the two classes of largest uncertainty ("inf": labelled but missed), most uncertain first
        value = {
            n: (float("inf") if v == "inf" else -1.0 if v is None else v)
            for n, v in record["uncertainty"].items()
        }
        ranked = sorted(names, key=lambda n: (-value[n], names.index(n)))
        assert record["classes"] == ranked[:2]
    else:
        assert record["classes"] == []
    # the real split is kept, and the pairs train: split.method=dataset reads it back
    real = load_splits(tiny_generator.config().data, progress=False).summary["videos"]
    folder = DataConfig(dataset="folder", root=str(out), image_size=16, split=SplitConfig(method="dataset"))
    videos = load_splits(folder, progress=False).summary["videos"]
    assert videos["val"] == real["val"] and videos["test"] == real["test"]
    assert set(videos["train"]) == set(real["train"]) | {f"generated_{i:05d}" for i in range(5)}


def test_augment_nnunet_keeps_generated_pairs_out_of_every_validation_fold(
    tiny_generator, segmenter_run, tmp_path, capsys, monkeypatch
) -> None:
    out = tmp_path / "Dataset503_Augmented"
    args = ["augment", "--segmenter", str(segmenter_run), "--generator", str(tiny_generator.diffusion),
            "--num", "3", "--format", "nnunet", "--out", str(out),
            "--set", "scheme.presence_pixels=0"]  # fmt: skip
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    check_nnunet_rules(out)
    for fold in check_folds(out):
        assert not [case for case in fold["val"] if case.startswith("generated_")]
    code, _, err = run_cli([*args[:-2], "--draw", "nothing"], capsys, monkeypatch)
    assert code == 2 and "--draw 'nothing'" in err


def test_augment_reads_only_the_slices_of_a_segmenter_run(
    tiny_generator, segmenter_run, tmp_path, capsys, monkeypatch
) -> None:
    """A run whose config.yaml holds a key of another gauda version in a slice augment never reads."""
    import shutil

    run = tmp_path / "older-run"
    shutil.copytree(segmenter_run, run)
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "demo:\n  autoencoder_scale: 0.5\n")
    args = ["augment", "--segmenter", str(run), "--generator", str(tiny_generator.diffusion), "--num", "2",
            "--out", str(tmp_path / "o"), "--set", "scheme.presence_pixels=0"]  # fmt: skip
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "scheme:\n  top_kk: 2\n")
    code, _, err = run_cli([*args[:-4], "--out", str(tmp_path / "p")], capsys, monkeypatch)
    assert code == 2 and "top_kk" in err  # a slice it reads is still checked


def test_augment_names_a_segmenter_that_is_not_a_run(tiny_generator, tmp_path, capsys, monkeypatch) -> None:
    run = tmp_path / "not-a-segmenter"
    run.mkdir()
    code, _, err = run_cli(["augment", "--segmenter", str(run), "--generator", str(tiny_generator.diffusion),
                            "--num", "2", "--out", str(tmp_path / "o")], capsys, monkeypatch)  # fmt: skip
    assert code == 2 and "--segmenter" in err and "expected a run folder of gauda train segmenter" in err


def doc_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_the_documented_api_examples_run(tiny_generator, tmp_path, monkeypatch, capsys) -> None:
    examples = doc_examples()
    assert len(examples) == 3
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "diffusion").symlink_to(tiny_generator.diffusion)
    monkeypatch.chdir(tmp_path)
    documented = 'overrides=["segmentation.steps=400"]'
    assert documented in examples[1]
    tiny = [
        o for o in tiny_overrides(tiny_generator.cache) if o.startswith(("data.", "segmentation.", "scheme."))
    ]
    examples[1] = examples[1].replace(documented, f"overrides={tiny!r}, progress=False")
    for example in examples:
        exec(compile(example, str(DOCS), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert "torch.Size([4, 3, 16, 16]) torch.Size([4, 16, 16])" in printed[0]
    assert 0 <= float(printed[1]) <= 1
    assert (tmp_path / "runs" / "seg-gauda" / "best.safetensors").is_file()


def test_sample_is_seeded_and_conditioned(tiny_generator) -> None:
    generator = gauda.load_generator(tiny_generator.diffusion)
    first = gauda.sample(generator, classes="Liver", num=3, seed=5, batch_size=2)
    again = gauda.sample(tiny_generator.diffusion, classes=["Liver"], num=3, seed=5, batch_size=2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    with pytest.raises(ConfigError, match="unknown class 'Spleen'"):
        gauda.sample(generator, classes=["Spleen"], num=1)


def test_evaluate_masks_scores_and_refuses_bad_values() -> None:
    truth = torch.tensor([[[0, 1], [1, 255]]])
    table = gauda.evaluate_masks(torch.tensor([[[0, 1], [0, 0]]]), truth, ["A", "B"])
    assert table.iou.tolist() == [0.5, 0.5] and table.label_mean_iou == 0.5
    with pytest.raises(ConfigError, match="values"):
        gauda.evaluate_masks(torch.tensor([[[0, 7], [0, 0]]]), truth, ["A", "B"])
    with pytest.raises(ConfigError, match="one shape"):
        gauda.evaluate_masks(torch.zeros(1, 2, 3), truth, ["A", "B"])
