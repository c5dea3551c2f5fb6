from pathlib import Path

import numpy as np
import pytest
from conftest import label_grid, write_cadis, write_cholecseg8k, write_folder_dataset

from gauda.data.classes import CHOLECSEG8K_CLASSES, IGNORE_INDEX, cadis_label_map
from gauda.data.config import DataConfig
from gauda.data.dataset import open_source
from gauda.data.sources import cadis_source, cholecseg8k_source

ALL_CADIS_IDS = list(range(36))


def _mapped(source, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(stored, mapped) label values of frame ``index``, pixel by pixel."""
    _, mapped = source.read(index)
    stored = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(source.records[index].mask))
    stored = stored[..., 0] if stored.ndim == 3 else stored
    return stored, mapped


def test_cadis_setting_ii_merges_instruments_and_ignores_rare_ones(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {"Video01": [label_grid(ALL_CADIS_IDS)]})
    source = cadis_source(root, "II")
    assert source.num_classes == 17
    assert source.class_names[7] == "Cannula" and source.class_names[16] == "Capsulorhexis Forceps"
    stored, mapped = _mapped(source)
    expected = {
        **{i: i for i in range(7)},
        **dict.fromkeys((7, 8, 10, 20, 27, 32), 7),
        **dict.fromkeys((9, 22), 8),
        **dict.fromkeys((11, 33), 9),
        **dict.fromkeys((12, 28), 10),
        **dict.fromkeys((13, 21), 11),
        **dict.fromkeys((14, 24), 12),
        **dict.fromkeys((15, 18), 13),
        **dict.fromkeys((16, 23), 14),
        17: 15,
        19: 16,
        **dict.fromkeys((25, 26, 29, 30, 31, 34, 35), IGNORE_INDEX),
    }
    assert sorted(expected) == ALL_CADIS_IDS
    for raw, target in expected.items():
        assert (mapped[stored == raw] == target).all(), f"CaDIS id {raw} should map to {target}"


def test_cadis_setting_i_merges_every_instrument_into_one_class(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {"Video01": [label_grid(ALL_CADIS_IDS)]})
    stored, mapped = _mapped(cadis_source(root, "I"))
    assert (mapped[stored < 7] == stored[stored < 7]).all()
    assert (mapped[stored >= 7] == 7).all()
    assert cadis_label_map("I").class_names[-1] == "Instrument"


def test_cadis_setting_iii_keeps_25_classes_and_ignores_the_rest(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {"Video01": [label_grid(ALL_CADIS_IDS)]})
    source = cadis_source(root, "III")
    stored, mapped = _mapped(source)
    assert source.num_classes == 25
    assert (mapped[stored < 25] == stored[stored < 25]).all()
    assert (mapped[stored >= 25] == IGNORE_INDEX).all()


def test_cadis_frames_are_grouped_by_video(tmp_path: Path) -> None:
    mask = label_grid([0, 4])
    root = write_cadis(tmp_path, {"Video01": [mask, mask], "Video02": [mask]})
    source = cadis_source(root)
    assert {v: len(i) for v, i in source.videos().items()} == {"Video01": 2, "Video02": 1}


def test_cholecseg8k_gray_values_map_to_classes_in_order(tmp_path: Path) -> None:
    grays = [gray for _, gray in CHOLECSEG8K_CLASSES]
    root = write_cholecseg8k(tmp_path, {"video01_00080": [label_grid(grays)]})
    source = cholecseg8k_source(root)
    assert source.class_names[0] == "Black Background" and source.num_classes == 13
    stored, mapped = _mapped(source)
    for class_id, gray in enumerate(grays):
        assert (mapped[stored == gray] == class_id).all(), f"gray {gray} should be class {class_id}"


def test_cholecseg8k_edges_unlabelled_and_stray_values_are_ignored_never_a_class(tmp_path: Path) -> None:
    mask = label_grid([21, 255, 0, 35, 36, 50])
    mask[0, :] = 255  # the 1-pixel white edge
    root = write_cholecseg8k(tmp_path, {"video12_00100": [mask]})
    stored, mapped = _mapped(cholecseg8k_source(root))
    for raw in (0, 255, 35, 36):
        assert (mapped[stored == raw] == IGNORE_INDEX).all(), f"value {raw} must be ignored"
    assert (mapped[stored == 21] == 2).all() and (mapped[stored == 50] == 0).all()


def test_cholecseg8k_reads_single_channel_masks_too_and_groups_clips_by_video(tmp_path: Path) -> None:
    mask = label_grid([21, 50])
    root = write_cholecseg8k(tmp_path, {"video01_00080": [mask, mask], "video01_00160": [mask]}, rgb=False)
    source = cholecseg8k_source(root)
    assert len(source) == 3 and list(source.videos()) == ["video01"]
    assert source.read(0)[1].max() == 2


def test_folder_dataset_uses_pixel_value_as_class_and_255_as_ignore(tmp_path: Path) -> None:
    mask = label_grid([0, 1, 2, 255])
    root = write_folder_dataset(tmp_path, ["a", "b", "c"], {"f1": ("v1", mask), "f2": ("v2", mask)})
    source = open_source(DataConfig(dataset="folder", root=str(root)))
    assert source.class_names == ("a", "b", "c")
    assert np.array_equal(source.read(0)[1], mask)
    assert {r.name: r.video for r in source.records} == {"f1": "v1", "f2": "v2"}


def test_folder_dataset_without_videos_json_treats_each_frame_as_a_video(tmp_path: Path) -> None:
    root = write_folder_dataset(tmp_path, ["a"], {"f1": ("v", label_grid([0])), "f2": ("v", label_grid([0]))})
    (root / "videos.json").unlink()
    assert len(open_source(DataConfig(dataset="folder", root=str(root))).videos()) == 2


def test_synthetic_source_is_deterministic_and_has_a_long_tail() -> None:
    config = DataConfig(dataset="synthetic")
    a, b = open_source(config), open_source(config)
    assert a.fingerprint() == b.fingerprint()
    image_a, mask_a = a.read(5)
    image_b, mask_b = b.read(5)
    assert np.array_equal(image_a, image_b) and np.array_equal(mask_a, mask_b)
    assert a.num_classes >= 8


@pytest.mark.parametrize("setting", ["I", "II", "III"])
def test_every_cadis_setting_knows_every_stored_id(setting: str) -> None:
    assert cadis_label_map(setting).unknown_values(np.arange(36, dtype=np.uint8)) == []
