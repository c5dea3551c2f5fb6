from pathlib import Path

import numpy as np
import torch
from conftest import label_grid, save_png, write_cadis
from torch.utils.data import DataLoader

from gauda.data.cache import cached_frames
from gauda.data.classes import IGNORE_INDEX
from gauda.data.config import AugmentConfig, DataConfig, SplitConfig, SyntheticConfig
from gauda.data.dataset import classes_present, load_splits, open_source

SMALL_SYNTHETIC = DataConfig(
    image_size=32,
    split=SplitConfig(fractions=(0.6, 0.2, 0.2)),
    synthetic=SyntheticConfig(num_videos=6, frames_per_video=3, image_size=64),
)


def test_samples_have_the_documented_types_and_shapes() -> None:
    splits = load_splits(SMALL_SYNTHETIC, progress=False)
    sample = splits.train[0]
    num_classes = len(splits.class_names)
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert sample["image"].min() >= 0.0 and sample["image"].max() <= 1.0
    assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
    assert sample["classes"].shape == (num_classes,) and sample["classes"].dtype == torch.float32
    assert torch.equal(sample["classes"], classes_present(sample["mask"], num_classes))
    assert isinstance(sample["video"], str) and isinstance(sample["name"], str)
    batch = next(iter(DataLoader(splits.train, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and len(batch["video"]) == 4


def test_splits_share_no_video_and_cover_every_frame() -> None:
    splits = load_splits(SMALL_SYNTHETIC, progress=False)
    videos = [
        {splits_ds[i]["video"] for i in range(len(splits_ds))}
        for splits_ds in (splits.train, splits.val, splits.test)
    ]
    assert not (videos[0] & videos[1]) and not (videos[0] & videos[2]) and not (videos[1] & videos[2])
    assert len(splits.train) + len(splits.val) + len(splits.test) == 18
    assert splits.summary["frames"] == {
        "train": len(splits.train),
        "val": len(splits.val),
        "test": len(splits.test),
    }


def test_multi_hot_vector_ignores_the_ignore_index() -> None:
    mask = torch.tensor([[0, 2], [IGNORE_INDEX, 2]])
    assert classes_present(mask, 4).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_only_the_train_split_is_augmented() -> None:
    config = DataConfig(
        **{**SMALL_SYNTHETIC.__dict__, "augment": AugmentConfig(enabled=True, probability=1.0)}
    )
    splits = load_splits(config, progress=False)
    assert splits.train.augment is not None and splits.val.augment is None and splits.test.augment is None
    plain = load_splits(SMALL_SYNTHETIC, progress=False)
    assert not torch.equal(splits.train[0]["image"], plain.train[0]["image"])
    assert torch.equal(splits.train[0]["image"], splits.train[0]["image"])  # reproducible per epoch


def test_cache_is_built_once_and_then_reused(tmp_path: Path, monkeypatch) -> None:
    source = open_source(SMALL_SYNTHETIC)
    first = cached_frames(source, 16, tmp_path, progress=False)
    reads = []
    monkeypatch.setattr(source, "read", lambda i: reads.append(i))
    second = cached_frames(source, 16, tmp_path, progress=False)
    assert reads == [] and second.folder == first.folder
    assert np.array_equal(first.read(3)[1], second.read(3)[1])
    assert first.images.shape == (18, 16, 16, 3)


def test_cache_is_rebuilt_when_a_file_changes(tmp_path: Path) -> None:
    root = write_cadis(tmp_path / "cadis", {f"Video0{i}": [label_grid([0, 4])] for i in range(1, 4)})
    config = DataConfig(dataset="cadis", root=str(root), image_size=8)
    before = cached_frames(open_source(config), 8, tmp_path / "cache", progress=False)
    save_png(root / "Video01" / "Labels" / "Video01_frame000.png", label_grid([5], 6, 8))
    after = cached_frames(open_source(config), 8, tmp_path / "cache", progress=False)
    assert before.folder != after.folder
    assert set(np.unique(after.read(0)[1])) == {5}


def test_native_resolution_reads_frames_without_resizing(tmp_path: Path) -> None:
    root = write_cadis(tmp_path, {f"Video0{i}": [label_grid([0, 4], 6, 10)] for i in range(1, 4)})
    splits = load_splits(DataConfig(dataset="cadis", root=str(root), image_size=None), progress=False)
    assert splits.train[0]["mask"].shape == (6, 10)


def test_tiny_preset_split_puts_every_synthetic_class_in_every_split() -> None:
    from gauda.presets import PRESETS

    splits = load_splits(PRESETS["tiny"].data, progress=False)
    for name in ("train", "val", "test"):
        dataset = getattr(splits, name)
        present = np.zeros(dataset.num_classes, bool)
        for index in dataset.indices:
            present[np.unique(dataset.frames.read(index)[1])] = True
        missing = [dataset.class_names[c] for c in np.flatnonzero(~present)]
        assert not missing, f"{name} split lacks {missing}"
