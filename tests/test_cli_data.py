"""The command line as a user meets it: ``gauda data inspect``, ``gauda data export``, ``gauda demo``."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import label_grid, run_cli, write_cadis


def export_args(root: Path, out: Path, size: int) -> list[str]:
    return [
        "data",
        "export",
        "--dataset",
        "cadis",
        "--root",
        str(root),
        "--out",
        str(out),
        "--size",
        str(size),
    ]


@pytest.fixture
def cadis_root(tmp_path: Path) -> Path:
    masks = {
        "Video01": [label_grid([0, 4]), label_grid([0, 7, 25])],  # 25 is ignored in setting II
        "Video02": [label_grid([0, 4, 19])],
        "Video03": [label_grid([5])],
    }
    return write_cadis(tmp_path / "cadis", masks)


def test_help_lists_every_command_and_option(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["--help"], capsys, monkeypatch)
    assert code == 0 and "data" in out and "demo" in out
    code, out, _ = run_cli(["data", "export", "--help"], capsys, monkeypatch)
    for option in (
        "--out",
        "--dataset",
        "--root",
        "--setting",
        "--size",
        "--overwrite",
        "--preset",
        "--set",
        "--dry-run",
    ):
        assert option in out


def test_inspect_json_has_the_documented_keys_and_counts(cadis_root, tmp_path, capsys, monkeypatch) -> None:
    grid = tmp_path / "grid.png"
    args = ["data", "inspect", "--dataset", "cadis", "--root", str(cadis_root), "--json", "--grid", str(grid)]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0
    report = json.loads(out)
    assert report["num_frames"] == 4 and report["num_videos"] == 3
    assert report["splits"] == {"train": 2, "val": 1, "test": 1} or sum(report["splits"].values()) == 4
    classes = {c["name"]: c for c in report["classes"]}
    assert len(classes) == 17
    assert classes["Pupil"]["frames"] == 3 and classes["Iris"]["frames"] == 2
    assert classes["Cannula"]["frames"] == 1 and classes["Capsulorhexis Forceps"]["frames"] == 1
    assert classes["Skin"]["pixels"] == 48  # one whole 6x8 frame
    assert report["ignored_pixels"] == 16  # a third of one frame held label 25
    assert grid.is_file() and report["grid"] == str(grid)


def test_inspect_size_counts_at_the_resized_resolution(cadis_root, tmp_path, capsys, monkeypatch) -> None:
    args = ["data", "inspect", "--dataset", "cadis", "--root", str(cadis_root), "--json", "--size", "4"]
    _, out, _ = run_cli([*args, "--grid", str(tmp_path / "g.png")], capsys, monkeypatch)
    report = json.loads(out)
    assert report["resolution"] == "4x4"
    assert sum(c["pixels"] for c in report["classes"]) + report["ignored_pixels"] == 4 * 16


def test_inspect_exits_1_and_lists_problems(cadis_root, tmp_path, capsys, monkeypatch) -> None:
    (cadis_root / "Video01" / "Labels" / "Video01_frame001.png").unlink()
    args = [
        "data",
        "inspect",
        "--dataset",
        "cadis",
        "--root",
        str(cadis_root),
        "--grid",
        str(tmp_path / "g.png"),
    ]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 1
    assert "1 problem(s)" in out and "Video01_frame001.png: no mask" in out


def test_dry_run_prints_the_resolved_configuration_and_does_nothing(tmp_path, capsys, monkeypatch) -> None:
    args = [
        "data",
        "export",
        "--out",
        str(tmp_path / "x"),
        "--set",
        "data.split.seed=9",
        "--size",
        "48",
        "--dry-run",
    ]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    config = yaml.safe_load(out)
    assert code == 0 and config["data"]["split"]["seed"] == 9 and config["data"]["image_size"] == 48
    assert not (tmp_path / "x").exists()


def test_bad_configuration_value_exits_2_with_a_one_line_error(capsys, monkeypatch) -> None:
    code, _, err = run_cli(["data", "inspect", "--set", "data.image_size=-3"], capsys, monkeypatch)
    assert code == 2 and "data.image_size: expected an integer >= 8 or null, got -3" in err
    code, _, err = run_cli(
        ["data", "inspect", "--dataset", "cadis", "--root", "/no/such/dir"], capsys, monkeypatch
    )
    assert code == 2 and "root /no/such/dir does not exist" in err


def test_export_writes_a_folder_dataset_that_reads_back_identically(
    cadis_root, tmp_path, capsys, monkeypatch
) -> None:
    out = tmp_path / "exported"
    args = export_args(cadis_root, out, 0)
    code, _, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "images",
        "masks",
        "classes.json",
        "videos.json",
        "split.json",
        "config.yaml",
    }
    assert len(json.loads((out / "classes.json").read_text())) == 17
    assert set(json.loads((out / "videos.json").read_text()).values()) == {"Video01", "Video02", "Video03"}
    grids = [tmp_path / "a.png", tmp_path / "b.png"]
    reports = []
    for args, grid in (
        (["--dataset", "cadis", "--root", str(cadis_root)], grids[0]),
        (["--dataset", "folder", "--root", str(out)], grids[1]),
    ):
        _, text, _ = run_cli(["data", "inspect", "--json", "--grid", str(grid), *args], capsys, monkeypatch)
        reports.append(json.loads(text))
    for key in ("num_frames", "num_videos", "splits", "ignored_pixels"):
        assert reports[0][key] == reports[1][key], key
    assert [(c["name"], c["frames"], c["pixels"]) for c in reports[0]["classes"]] == [
        (c["name"], c["frames"], c["pixels"]) for c in reports[1]["classes"]
    ]


def test_export_resizes_and_refuses_to_overwrite(cadis_root, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "small"
    args = export_args(cadis_root, out, 16)
    assert run_cli(args, capsys, monkeypatch)[0] == 0
    from PIL import Image

    first = sorted((out / "masks").iterdir())[0]
    assert np.asarray(Image.open(first)).shape == (16, 16)
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "folder exists and is not empty" in err
    assert run_cli([*args, "--overwrite"], capsys, monkeypatch)[0] == 0


@pytest.mark.slow
def test_synthetic_dataset_has_8_classes_and_a_rare_instrument(tmp_path, capsys, monkeypatch) -> None:
    args = [
        "data",
        "inspect",
        "--dataset",
        "synthetic",
        "--json",
        "--grid",
        str(tmp_path / "g.png"),
        "--size",
        "64",
    ]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    report = json.loads(out)
    fractions = [c["frames"] / report["num_frames"] for c in report["classes"]]
    assert code == 0 and len(fractions) >= 8
    assert 0 < min(fractions) <= 0.05
    assert not report["problems"] and report["ignored_pixels"] == 0
