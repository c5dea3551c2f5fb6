"""nnU-Net v2 datasets: the export follows nnU-Net's documented rules (checked here as its
``verify_dataset_integrity`` checks them, without installing it), the import reads them back, and the
split that a dataset records is the split gauda trains with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import label_grid, run_cli, save_png, write_cadis, write_cholecseg8k
from PIL import Image

from gauda.config import ConfigError
from gauda.data.config import DataConfig, SplitConfig
from gauda.data.dataset import load_splits, open_source
from gauda.data.errors import DataError, DatasetProblems
from gauda.data.export import export_dataset
from gauda.data.nnunet import nnunet_labels, nnunet_source, video_folds

TINY = DataConfig(image_size=16, split=SplitConfig(fractions=(0.6, 0.2, 0.2), seed=3))


def check_nnunet_rules(folder: Path) -> dict:
    """What nnU-Net v2's integrity check asserts of a 2D PNG dataset; returns its dataset.json."""
    dataset = json.loads((folder / "dataset.json").read_text())
    assert {"labels", "channel_names", "numTraining", "file_ending"} <= set(dataset)
    assert dataset["file_ending"] == ".png" and dataset["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    labels = dataset["labels"]
    assert labels["background"] == 0
    values = sorted(v for name, v in labels.items() if name != "ignore")
    assert values == list(range(len(values)))  # consecutive from 0
    if "ignore" in labels:
        assert labels["ignore"] == max(values) + 1  # the highest value
    cases = sorted(p.name[: -len("_0000.png")] for p in (folder / "imagesTr").glob("*.png"))
    assert all(p.name.endswith("_0000.png") for p in (folder / "imagesTr").glob("*.png"))
    assert len(cases) == dataset["numTraining"]
    allowed = set(labels.values())
    for case in cases:
        image = Image.open(folder / "imagesTr" / f"{case}_0000.png")
        label = Image.open(folder / "labelsTr" / f"{case}.png")
        assert image.mode == "RGB" and label.mode == "L" and image.size == label.size
        assert set(np.unique(np.asarray(label)).tolist()) <= allowed
    return dataset


def check_folds(folder: Path) -> list[dict]:
    """splits_final.json: every fold partitions the training cases, and no video is on both sides."""
    folds = json.loads((folder / "splits_final.json").read_text())
    videos = json.loads((folder / "gauda.json").read_text())["videos"]
    training = {p.name[: -len("_0000.png")] for p in (folder / "imagesTr").glob("*.png")}
    for fold in folds:
        assert set(fold["train"]) | set(fold["val"]) == training
        assert not {videos[c] for c in fold["train"]} & {videos[c] for c in fold["val"]}
    always = set(json.loads((folder / "gauda.json").read_text())["always_train"])
    assert set().union(*(set(f["val"]) for f in folds)) == training - always  # each case validated once
    return folds


def test_labels_keep_a_background_class_0_and_shift_the_others() -> None:
    kept = nnunet_labels(["Background", "Liver", "Grasper"])
    assert not kept.shifted and kept.labels_json(True) == {
        "background": 0,
        "Liver": 1,
        "Grasper": 2,
        "ignore": 3,
    }
    shifted = nnunet_labels(["Pupil", "Iris"])
    assert shifted.shifted and shifted.labels_json(False) == {"background": 0, "Pupil": 1, "Iris": 2}
    mask = np.array([[0, 1, 255]], dtype=np.uint8)
    assert shifted.encode(mask).tolist() == [[1, 2, 3]]
    assert kept.encode(mask).tolist() == [[0, 1, 3]]
    with pytest.raises(DataError, match="reserves"):
        nnunet_labels(["Pupil", "ignore"])


def test_folds_keep_videos_whole_and_generated_pairs_in_training() -> None:
    cases = {f"v{v}_f{f}": f"v{v}" for v in range(7) for f in range(v + 1)} | {
        "gen_0": "gen_0",
        "gen_1": "gen_1",
    }
    folds = video_folds(cases, num_folds=5, seed=0, always_train={"gen_0", "gen_1"})
    assert len(folds) == 5
    for fold in folds:
        assert {"gen_0", "gen_1"} <= set(fold["train"]) and not {"gen_0", "gen_1"} & set(fold["val"])
        assert not {cases[c] for c in fold["train"]} & {cases[c] for c in fold["val"]}
    sizes = sorted(len(f["val"]) for f in folds)
    assert sizes[-1] - sizes[0] <= 7  # largest video first into the smallest fold
    assert video_folds({"a": "v", "b": "v"}) == []  # one video: no folds to make


def test_synthetic_export_follows_nnunet_rules_and_reads_back_the_same(tmp_path: Path) -> None:
    out = tmp_path / "Dataset501_Synthetic"
    export_dataset(TINY, out, progress=False, format="nnunet")
    dataset = check_nnunet_rules(out)
    assert "ignore" not in dataset["labels"]  # the synthetic masks ignore nothing
    check_folds(out)
    record = json.loads((out / "gauda.json").read_text())
    test_videos = set(record["split"]["videos"]["test"])
    assert test_videos and {record["videos"][c] for c in record["test_cases"]} == test_videos
    assert all((out / "imagesTs" / f"{c}_0000.png").is_file() for c in record["test_cases"])

    source = open_source(TINY)
    imported = nnunet_source(out)
    assert imported.class_names == source.class_names and len(imported) == len(source)
    frames = {r.name: i for i, r in enumerate(source.records)}
    from gauda.data.cache import cached_frames

    resized = cached_frames(source, 16, None, progress=False)
    for i, record_ in enumerate(imported.records):
        image, mask = imported.read(i)
        expected_image, expected_mask = resized.read(frames[record_.name])
        assert np.array_equal(mask, expected_mask) and np.array_equal(image, expected_image)
        assert record_.video == source.records[frames[record_.name]].video

    # the recorded split is the split gauda made: train on the import with split.method=dataset
    own = load_splits(TINY, progress=False)
    again = load_splits(DataConfig(dataset="nnunet", root=str(out), image_size=16,
                                   split=SplitConfig(method="dataset")), progress=False)  # fmt: skip
    assert again.summary["videos"] == own.summary["videos"]


def test_cadis_export_adds_a_background_and_an_ignore_label(tmp_path: Path, capsys, monkeypatch) -> None:
    masks = {f"Video0{v}": [label_grid([0, 4, 25]), label_grid([7, 19])] for v in range(1, 6)}
    root = write_cadis(tmp_path / "cadis", masks)
    out = tmp_path / "Dataset511_Cadis"
    code, _, err = run_cli(["data", "export", "--dataset", "cadis", "--root", str(root), "--format", "nnunet",
                            "--size", "0", "--out", str(out)], capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    dataset = check_nnunet_rules(out)
    assert dataset["labels"]["Pupil"] == 1 and dataset["labels"]["ignore"] == 18  # 17 classes + background
    check_folds(out)
    # export, import, inspect: the per-class pixel counts of the original
    counts = []
    for args in (["--dataset", "cadis", "--root", str(root)], ["--dataset", "nnunet", "--root", str(out)]):
        code, text, err = run_cli(["data", "inspect", *args, "--json", "--grid", str(tmp_path / "g.png")],
                                  capsys, monkeypatch)  # fmt: skip
        assert code == 0, err
        report = json.loads(text)
        counts.append(([(c["name"], c["pixels"]) for c in report["classes"]], report["ignored_pixels"]))
    assert counts[0] == counts[1] and counts[0][1] > 0


def test_cholecseg8k_black_background_is_nnunets_background(tmp_path: Path) -> None:
    clips = {f"video0{v}_00000": [label_grid([50, 21, 31, 255])] for v in range(1, 4)}
    root = write_cholecseg8k(tmp_path / "chole", clips)
    out = tmp_path / "Dataset512_Cholec"
    config = DataConfig(dataset="cholecseg8k", root=str(root), image_size=None,
                        split=SplitConfig(fractions=(0.4, 0.3, 0.3)))  # fmt: skip
    export_dataset(config, out, progress=False, format="nnunet")
    dataset = check_nnunet_rules(out)
    assert dataset["labels"]["background"] == 0 and "Black Background" not in dataset["labels"]
    assert dataset["labels"]["ignore"] == 13
    assert nnunet_source(out).class_names == open_source(config).class_names


def write_plain_nnunet(root: Path, cases: list[str], labels: dict, ending: str = ".png") -> Path:
    """An nnU-Net dataset as another tool writes it: no gauda.json."""
    for case in cases:
        save_png(root / "imagesTr" / f"{case}_0000.png", np.full((4, 4, 3), 9, np.uint8))
        save_png(root / "labelsTr" / f"{case}.png", np.array([[0, 1, 2, 3]] * 4, np.uint8))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": labels, "numTraining": len(cases),
        "file_ending": ending}))  # fmt: skip
    return root


def test_import_groups_cases_into_videos_by_pattern(tmp_path: Path, caplog) -> None:
    labels = {"background": 0, "Liver": 1, "Tool": 2, "ignore": 3}
    root = write_plain_nnunet(tmp_path / "Dataset600_X", ["vidA_001", "vidA_002", "vidB_001"], labels)
    source = nnunet_source(root, video_pattern=r"^(vid[A-Z])_")
    assert source.class_names == ("background", "Liver", "Tool") and not source.problems
    assert source.videos() == {"vidA": [0, 1], "vidB": [2]}
    _, mask = source.read(0)
    assert mask[0].tolist() == [0, 1, 2, 255]  # the ignore label becomes gauda's 255
    per_case = nnunet_source(root)
    assert len(per_case.videos()) == 3 and "every case is its own video" in caplog.text
    (root / "videos.json").write_text(json.dumps({"vidA_001": "p1", "vidA_002": "p2", "vidB_001": "p1"}))
    assert nnunet_source(root).videos() == {"p1": [0, 2], "p2": [1]}


def test_import_lists_every_problem(tmp_path: Path) -> None:
    root = write_plain_nnunet(tmp_path / "bad", ["a", "b"], {"background": 0, "Liver": 2}, ending=".nii.gz")
    save_png(root / "imagesTr" / "a_0001.png", np.zeros((4, 4, 3), np.uint8))
    (root / "labelsTr" / "b.png").unlink()
    problems = nnunet_source(root).problems
    text = "\n".join(problems)
    assert "file_ending '.nii.gz'" in text and "consecutive" in text
    assert "2 channel files" in text and "b_0000.png: no label" in text
    with pytest.raises(DatasetProblems):
        open_source(DataConfig(dataset="nnunet", root=str(root)))


def test_split_method_dataset_needs_a_recorded_split(tmp_path: Path) -> None:
    root = write_plain_nnunet(
        tmp_path / "Dataset601_Y", ["a", "b", "c"], {"background": 0, "A": 1, "B": 2, "C": 3}
    )
    with pytest.raises(DataError, match="records no split"):
        load_splits(DataConfig(dataset="nnunet", root=str(root), image_size=None,
                               split=SplitConfig(method="dataset")), progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match=r"split\.method"):
        DataConfig(split=SplitConfig(method="dataset"))  # synthetic records none
    with pytest.raises(ConfigError, match="video_pattern"):
        DataConfig(dataset="nnunet", root="x", video_pattern="no group")


def test_folder_export_records_its_split(tmp_path: Path) -> None:
    out = tmp_path / "exported"
    export_dataset(TINY, out, progress=False)
    folder = DataConfig(dataset="folder", root=str(out), image_size=16, split=SplitConfig(method="dataset"))
    assert (
        load_splits(folder, progress=False).summary["videos"]
        == load_splits(TINY, progress=False).summary["videos"]
    )


def test_overwrite_replaces_an_nnunet_dataset_but_not_a_run(tmp_path: Path) -> None:
    out = tmp_path / "Dataset502_Z"
    export_dataset(TINY, out, progress=False, format="nnunet")
    export_dataset(TINY, out, progress=False, format="nnunet", overwrite=True)  # a dataset.json: replaced
    (out / "last.safetensors").write_bytes(b"")
    with pytest.raises(DataError, match="training run"):
        export_dataset(TINY, out, progress=False, format="nnunet", overwrite=True)
    with pytest.raises(ConfigError, match="--format"):
        export_dataset(TINY, tmp_path / "other", progress=False, format="nifti")  # type: ignore[arg-type]
