"""Every kind of bad dataset gives an error that names the file(s) and what was expected."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import label_grid, save_png, write_cadis, write_cholecseg8k, write_folder_dataset

from gauda.data.config import DataConfig
from gauda.data.dataset import load_splits, open_source
from gauda.data.errors import DataError, DatasetProblems
from gauda.data.inspection import inspect_dataset


def cadis(root: Path) -> DataConfig:
    return DataConfig(dataset="cadis", root=str(root), image_size=None)


def test_missing_root_names_the_folder_and_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cadis: root .*nowhere does not exist.*VideoNN/Images"):
        open_source(cadis(tmp_path / "nowhere"))


def test_empty_folder_says_what_layout_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DatasetProblems, match=r"no VideoNN folders; expected <root>/VideoNN/Images"):
        open_source(cadis(tmp_path))
    with pytest.raises(DatasetProblems, match=r"no videoNN folders"):
        open_source(DataConfig(dataset="cholecseg8k", root=str(tmp_path)))
    with pytest.raises(DatasetProblems, match=r"classes\.json: not found"):
        open_source(DataConfig(dataset="folder", root=str(tmp_path)))


def test_image_without_mask_and_mask_without_image_are_both_named(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {"Video01": [label_grid([0, 1])] * 3})
    (root / "Video01" / "Labels" / "Video01_frame001.png").unlink()
    save_png(root / "Video01" / "Labels" / "orphan.png", label_grid([0]))
    with pytest.raises(DatasetProblems) as caught:
        open_source(cadis(root))
    problems = caught.value.problems
    assert any(
        "Video01_frame001.png: no mask; expected" in p and "Labels/Video01_frame001.png" in p
        for p in problems
    )
    assert any("orphan.png: mask without an image" in p for p in problems)


def test_image_and_mask_of_different_sizes_name_both_files(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {"Video01": [label_grid([0, 1])]})
    save_png(root / "Video01" / "Labels" / "Video01_frame000.png", label_grid([0, 1], height=5, width=5))
    with pytest.raises(
        DataError,
        match=r"Images/Video01_frame000\.png is 8x6 but its mask .*Labels/Video01_frame000\.png is 5x5",
    ):
        open_source(cadis(root)).read(0)


def test_truncated_png_is_reported_as_unreadable(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {"Video01": [label_grid([0, 1], 32, 32)]})
    image = root / "Video01" / "Images" / "Video01_frame000.png"
    image.write_bytes(image.read_bytes()[:60])
    with pytest.raises(DataError, match=r"Video01_frame000\.png: unreadable image .*expected a valid PNG"):
        open_source(cadis(root)).read(0)


def test_unknown_label_values_name_the_file_the_values_and_the_expected_range(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {"Video01": [label_grid([0, 40, 41])]})
    with pytest.raises(
        DataError,
        match=r"Labels/Video01_frame000\.png: label values \[40, 41\] are not in the class map; "
        r"expected values in \{0-35\}",
    ):
        open_source(cadis(root)).read(0)


def test_cholecseg8k_unknown_gray_value_is_an_error_not_a_class(tmp_path: Path) -> None:
    root = write_cholecseg8k(tmp_path, {"video01_00080": [label_grid([21, 99])]})
    with pytest.raises(DataError, match=r"watershed_mask\.png: label values \[99\]"):
        open_source(DataConfig(dataset="cholecseg8k", root=str(root))).read(0)


def test_folder_mask_value_beyond_the_classes_is_an_error(tmp_path: Path) -> None:
    root = write_folder_dataset(tmp_path, ["a", "b"], {"f": ("v", label_grid([0, 1, 2]))})
    with pytest.raises(DataError, match=r"masks/f\.png: label values \[2\].*expected values in \{0-1, 255\}"):
        open_source(DataConfig(dataset="folder", root=str(root))).read(0)


def test_folder_with_malformed_classes_json_is_reported(tmp_path: Path) -> None:
    root = write_folder_dataset(tmp_path, ["a"], {"f": ("v", label_grid([0]))})
    (root / "classes.json").write_text(json.dumps({"a": 0}))
    with pytest.raises(
        DatasetProblems, match=r"classes\.json: expected a non-empty JSON list of class names"
    ):
        open_source(DataConfig(dataset="folder", root=str(root)))


def test_inspect_collects_every_problem_instead_of_stopping_at_the_first(tmp_path: Path) -> None:
    good = [label_grid([0])] * 2
    root = write_cadis(tmp_path, {"Video01": [label_grid([0, 1])] * 3, "Video02": good, "Video03": good})
    (root / "Video01" / "Labels" / "Video01_frame002.png").unlink()  # structural problem
    save_png(root / "Video01" / "Labels" / "Video01_frame000.png", label_grid([50]))  # unknown value
    save_png(root / "Video02" / "Labels" / "Video02_frame001.png", label_grid([0], 3, 3))  # size mismatch
    report = inspect_dataset(cadis(root), progress=False)
    assert len(report.problems) == 3
    assert any("no mask" in p for p in report.problems)
    assert any("label values [50]" in p for p in report.problems)
    assert any("expected the same size" in p for p in report.problems)
    assert report.num_frames == 6  # frame002 has no mask so is not a frame; the others are counted


def test_a_bad_frame_stops_loading_before_any_cache_is_kept(tmp_path: Path, isolated_cache: Path) -> None:
    frames = [label_grid([0, 1])] * 2
    root = write_cadis(tmp_path / "d", {"Video01": frames, "Video02": frames, "Video03": frames})
    save_png(root / "Video03" / "Labels" / "Video03_frame001.png", label_grid([77]))
    with pytest.raises(DataError, match="label values \\[77\\]"):
        load_splits(DataConfig(dataset="cadis", root=str(root), image_size=8), progress=False)
    assert not [p for p in isolated_cache.iterdir() if not p.name.startswith(".")]


def test_write_folder_refuses_to_replace_an_existing_dataset(tmp_path: Path) -> None:
    from gauda.data.folder import write_folder

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with (
        pytest.raises(DataError, match=r"out: folder exists and is not empty; .*--overwrite"),
        write_folder(out, ["a"]),
    ):
        pass
    assert (out / "keep.txt").read_text() == "precious"


def test_failed_export_leaves_the_previous_dataset_intact(tmp_path: Path) -> None:
    from gauda.data.folder import write_folder

    out = tmp_path / "out"
    with write_folder(out, ["a"]) as writer:
        writer.add("f", "v", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8))
    with (
        pytest.raises(DataError, match="are not class ids"),
        write_folder(out, ["a"], overwrite=True) as writer,
    ):
        writer.add("g", "v", np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 3, np.uint8))
    assert sorted(p.name for p in (out / "images").iterdir()) == ["f.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind
