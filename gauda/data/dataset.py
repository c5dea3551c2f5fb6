"""The paired dataset every later stage reads: one sample per frame, the same for every source.

A sample is a dict (a ``Sample``):
    image    float32 (3, H, W) in [0, 1]
    mask     int64 (H, W): class ids, ``IGNORE_INDEX`` (255) where no class applies
    classes  float32 (num_classes,): multi-hot vector of the classes present in the mask
    video    str: the video the frame belongs to
    name     str: the frame's unique name
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from gauda.data.cache import cached_frames
from gauda.data.classes import IGNORE_INDEX
from gauda.data.config import AugmentConfig, DataConfig
from gauda.data.folder import folder_source
from gauda.data.nnunet import nnunet_source
from gauda.data.sources import FrameSource, SyntheticSource, cadis_source, cholecseg8k_source
from gauda.data.splits import SPLITS, split_indices, split_summary, split_videos
from gauda.data.transforms import classic_augment


class Sample(TypedDict):
    image: torch.Tensor
    mask: torch.Tensor
    classes: torch.Tensor
    video: str
    name: str


class Frames(Protocol):
    def __len__(self) -> int: ...
    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


def open_source(config: DataConfig, check: bool = True) -> FrameSource:
    """The frame source named by ``config.dataset``; with ``check``, structural problems raise."""
    if config.dataset == "synthetic":
        source: FrameSource = SyntheticSource(config.synthetic)
    elif config.dataset == "cadis":
        source = cadis_source(config.root, config.cadis_setting)
    elif config.dataset == "cholecseg8k":
        source = cholecseg8k_source(config.root)
    elif config.dataset == "nnunet":
        source = nnunet_source(config.root, config.video_pattern)
    else:
        source = folder_source(config.root)
    if check:
        source.raise_problems()
    return source


def classes_present(mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Multi-hot float vector (num_classes,) of the class ids in ``mask`` (ignore excluded)."""
    counts = torch.bincount(mask[mask != IGNORE_INDEX].flatten(), minlength=num_classes)
    return (counts[:num_classes] > 0).float()


class PairedDataset(Dataset):
    """Frames of one split as ``Sample``s, optionally with the classic augmentation."""

    def __init__(
        self,
        frames: Frames,
        source: FrameSource,
        indices: list[int],
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.frames, self.source, self.indices = frames, source, list(indices)
        self.class_names = source.class_names
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = seed
        self.epoch = 0  # set by the trainer so that each epoch augments differently, reproducibly

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> Sample:
        index = self.indices[item]
        image_array, mask_array = self.frames.read(index)
        # np.require copies only arrays that torch cannot wrap (read-only PIL buffers)
        image = torch.from_numpy(np.require(image_array, requirements="CW")).permute(2, 0, 1).float() / 255.0
        mask = torch.from_numpy(np.require(mask_array, requirements="CW")).long()
        if self.augment is not None:
            generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
            image, mask = classic_augment(image, mask, self.augment, generator)
        record = self.source.records[index]
        return Sample(
            image=image,
            mask=mask,
            classes=classes_present(mask, self.num_classes),
            video=record.video,
            name=record.name,
        )


@dataclass
class DataSplits:
    """The datasets of all three splits and where each video went."""

    train: PairedDataset
    val: PairedDataset
    test: PairedDataset
    summary: dict  # written to split.json in the run folder

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names


def load_splits(config: DataConfig, progress: bool = True) -> DataSplits:
    """Open the configured dataset, split it by video and serve each split from the resized cache.

    Only the train split is augmented (when ``config.augment.enabled``).
    """
    source = open_source(config)
    videos = source.videos()
    assignment = split_videos({v: len(f) for v, f in videos.items()}, config.split, source.recorded_split)
    indices = split_indices(videos, assignment)
    frames: Frames = source
    if config.image_size is not None:
        frames = cached_frames(source, config.image_size, config.cache_dir, progress=progress)
    datasets = {
        split: PairedDataset(
            frames,
            source,
            indices[split],
            config.augment if split == "train" else None,
            seed=config.split.seed,
        )
        for split in SPLITS
    }
    return DataSplits(**datasets, summary=split_summary(videos, assignment, config.split))
