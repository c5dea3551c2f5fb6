"""``gauda sample``: class names, the sample job's outputs and report, determinism, and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import DATA, DIFFUSION, tiny_config
from typer.testing import CliRunner

from gauda.autoencoders.trainer import train_autoencoder
from gauda.cli import app, main
from gauda.config import ConfigError
from gauda.data.dataset import PairedDataset
from gauda.data.errors import DataError
from gauda.data.folder import folder_source
from gauda.generation.sample import class_hit_rates, parse_classes, sample_pairs

NAMES = ("Background", "Abdominal wall", "Grasper")


@pytest.fixture(scope="module")
def diffusion_run(tiny_generator) -> Path:
    """A diffusion run trained for three steps on two autoencoders trained for two."""
    return tiny_generator.diffusion


def test_class_names_parse_to_sorted_ids_ignoring_case_and_blanks() -> None:
    assert parse_classes("Grasper, background", NAMES) == [0, 2]
    assert parse_classes("", NAMES) == [] and parse_classes(None, NAMES) == []
    assert parse_classes(" , Abdominal wall", NAMES) == [1]


def test_an_unknown_class_name_is_an_error_listing_the_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown class 'Scalpel'; .*Background, Abdominal wall, Grasper"):
        parse_classes("Grasper,Scalpel", NAMES)


def test_hit_rate_counts_masks_with_at_least_one_pixel_of_the_class() -> None:
    masks = torch.zeros(4, 2, 2, dtype=torch.long)
    masks[0, 0, 0] = 2
    masks[1] = 2
    assert class_hit_rates(masks, [0, 2, 1]) == [0.75, 0.5, 0.0]


def test_gauda_sample_with_an_unknown_class_exits_with_a_clear_error(
    diffusion_run, tmp_path, monkeypatch, capsys
) -> None:
    argv = [
        "gauda",
        "sample",
        "--run",
        str(diffusion_run),
        "--classes",
        "Grasper,Scalpel",
        "--out",
        str(tmp_path / "o"),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "unknown class 'Scalpel'" in error and "Clip applier" in error
    assert not (tmp_path / "o").exists()


def test_sampling_writes_a_folder_dataset_with_grid_and_report(diffusion_run, tmp_path) -> None:
    report = sample_pairs(diffusion_run, tmp_path / "out", "Grasper,Liver", 3, "ddim", 4, 2.0, batch_size=2,
                          progress=False)  # fmt: skip
    source = folder_source(tmp_path / "out")
    source.raise_problems()
    assert len(source.records) == 3 and source.class_names[6] == "Grasper"
    dataset = PairedDataset(source, source, list(range(3)))
    assert dataset[0]["image"].shape == (3, 16, 16) and dataset[0]["mask"].shape == (16, 16)
    assert (tmp_path / "out" / "grid.png").is_file()
    saved = json.loads((tmp_path / "out" / "sample_report.json").read_text())
    assert saved == report
    assert report["requested_classes"] == ["Liver", "Grasper"]
    assert [row["class"] for row in report["classes"]] == ["Liver", "Grasper"]
    assert all(0 <= row["generated_fraction"] <= 1 and 0 <= row["training_frame_frequency"] <= 1
               for row in report["classes"])  # fmt: skip
    assert 0 <= report["all_requested_fraction"] <= 1


def test_a_fixed_seed_gives_identical_pairs_and_another_seed_different_ones(diffusion_run, tmp_path) -> None:
    def pairs(seed: int, name: str) -> np.ndarray:
        sample_pairs(diffusion_run, tmp_path / name, None, 2, "dpmpp", 3, seed=seed, progress=False)
        source = folder_source(tmp_path / name)
        return np.stack([source.read(i)[0] for i in range(2)])

    assert np.array_equal(pairs(1, "a"), pairs(1, "b"))
    assert not np.array_equal(pairs(1, "a2"), pairs(2, "c"))


def test_unconditional_sampling_reports_every_class(diffusion_run, tmp_path) -> None:
    report = sample_pairs(diffusion_run, tmp_path / "out", "", 2, "ddpm", 3, progress=False)
    assert report["requested_classes"] == [] and len(report["classes"]) == 9
    assert "all_requested_fraction" not in report


@pytest.mark.slow
def test_train_and_sample_from_the_command_line_and_read_the_pairs_back(tmp_path) -> None:
    runner = CliRunner()
    config = tiny_config(tmp_path / "cache", steps=4)
    for modality in ("image", "mask"):
        train_autoencoder(config, modality, tmp_path / modality, progress=False)
    settings = [*DATA, f"data.cache_dir={tmp_path / 'cache'}", "diffusion.steps=4"]
    settings += [f"diffusion.{key}={value}" for key, value in DIFFUSION.items()]
    overrides = [part for setting in settings for part in ("--set", setting)]
    train = ["train", "diffusion", "--image-autoencoder", str(tmp_path / "image"),
             "--mask-autoencoder", str(tmp_path / "mask"), "--out", str(tmp_path / "diffusion")]  # fmt: skip
    train += overrides
    result = runner.invoke(app, [*train, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "diffusion:" in result.output and "p_uncond: 0.1" in result.output
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["steps"] == 4
    sample = ["sample", "--run", str(tmp_path / "diffusion"), "--classes", "Grasper,Blood", "--num", "3",
              "--sampler", "dpmpp", "--steps", "5", "--guidance", "3", "--report",
              "--out", str(tmp_path / "pairs")]  # fmt: skip
    result = runner.invoke(app, sample)
    assert result.exit_code == 0, result.output
    assert "Grasper" in result.output and "Blood" in result.output and "training frames" in result.output
    inspect = ["data", "inspect", "--dataset", "folder", "--root", str(tmp_path / "pairs"), "--json",
               "--grid", str(tmp_path / "inspect.png")]  # fmt: skip
    result = runner.invoke(app, inspect)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["num_frames"] == 3 and report["num_videos"] == 3 and not report["problems"], report


def test_bad_steps_and_an_occupied_output_folder_fail_before_sampling(diffusion_run, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"--steps 5000: expected 1\.\.1000"):
        sample_pairs(diffusion_run, tmp_path / "a", None, 1, "ddim", 5000, progress=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        sample_pairs(diffusion_run, tmp_path / "b", None, 1, "ddim", 2, progress=False)
