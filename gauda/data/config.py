"""Configuration of the data stage: which dataset, at which size, split how, augmented how."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from gauda.config import ConfigError, check

DatasetName = Literal["synthetic", "cadis", "cholecseg8k", "folder", "nnunet"]
DATASET_NAMES: tuple[str, ...] = ("synthetic", "cadis", "cholecseg8k", "folder", "nnunet")


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in procedural surgical scenes (``gauda.data.synthetic``)."""

    num_videos: int = 80
    frames_per_video: int = 10
    image_size: int = 128  # native render resolution (square), before the data stage resizes
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.num_videos >= 1, "num_videos", "an integer >= 1", self.num_videos)
        check(self.frames_per_video >= 1, "frames_per_video", "an integer >= 1", self.frames_per_video)
        check(self.image_size >= 16, "image_size", "an integer >= 16", self.image_size)


@dataclass(frozen=True)
class SplitConfig:
    """How videos are assigned to train/val/test; a video never lands in two splits."""

    # random: the paper's seeded split of videos; official: CaDIS's own (val 05, 07, 16; test 02, 12, 22);
    # dataset: the split a folder or nnU-Net dataset records (written by `gauda data export`, `gauda augment`)
    method: Literal["random", "official", "dataset"] = "random"
    fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)  # train, val, test share of frames
    seed: int = 0

    def __post_init__(self) -> None:
        check(
            all(f >= 0 for f in self.fractions) and abs(sum(self.fractions) - 1.0) < 1e-6,
            "fractions",
            "three non-negative numbers (train, val, test) that sum to 1",
            list(self.fractions),
        )
        check(self.fractions[0] > 0, "fractions", "a train fraction > 0", list(self.fractions))


@dataclass(frozen=True)
class AugmentConfig:
    """The paper's classic augmentation, applied identically to image and mask."""

    enabled: bool = False
    probability: float = 0.2  # chance of each of crop, flip and rotation, independently
    crop_fraction: float = 0.1  # share of the side length cropped away
    max_rotation: float = 45.0  # degrees, drawn uniformly in [-max, max]

    def __post_init__(self) -> None:
        check(0 <= self.probability <= 1, "probability", "a number in [0, 1]", self.probability)
        check(0 <= self.crop_fraction < 1, "crop_fraction", "a number in [0, 1)", self.crop_fraction)
        check(0 <= self.max_rotation <= 180, "max_rotation", "degrees in [0, 180]", self.max_rotation)


@dataclass(frozen=True)
class DataConfig:
    """Everything the data stage needs; later stages receive the datasets it builds."""

    dataset: DatasetName = "synthetic"
    root: str | None = None  # dataset folder; unused by the synthetic dataset
    image_size: int | None = 128  # square training resolution; null keeps the native size
    cadis_setting: Literal["I", "II", "III"] = "II"  # CaDIS class setting (the paper's: II)
    # nnunet: a regular expression whose first group is a case's video (e.g. "^(video\\d+)_"); without it
    # the video ids of the dataset's gauda.json, else one video per case
    video_pattern: str | None = None
    cache_dir: str | None = None  # resized-frame cache; default $GAUDA_CACHE_DIR or ~/.cache/gauda
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        check(self.dataset in DATASET_NAMES, "dataset", "one of " + ", ".join(DATASET_NAMES), self.dataset)
        if self.image_size is not None:
            check(self.image_size >= 8, "image_size", "an integer >= 8 or null", self.image_size)
        if self.dataset != "synthetic":
            check(self.root is not None, "root", f"the folder of the {self.dataset} dataset", self.root)
        if self.split.method == "official":
            check(
                self.dataset == "cadis",
                "split.method",
                "'random' (only CaDIS has an official split)",
                "official",
            )
        if self.split.method == "dataset":
            check(
                self.dataset in ("folder", "nnunet"),
                "split.method",
                "'random' (only folder and nnunet datasets record a split)",
                "dataset",
            )
        if self.video_pattern is not None:
            try:
                groups = re.compile(self.video_pattern).groups
            except re.error as error:
                raise ConfigError(
                    f"video_pattern {self.video_pattern!r}: not a regular expression ({error})"
                ) from None
            check(groups >= 1, "video_pattern", "a regular expression with a group (the video)", groups)


DATA_PRESETS: dict[str, DataConfig] = {
    # 64 px frames and a small synthetic set: the whole pipeline runs on a 2-core CPU in minutes.
    # Larger val/test shares than the paper's, and a split seed (3) whose val and test both hold every
    # synthetic class, the rarest included (seeds 0-2 leave it out of one of them; a test checks this).
    "tiny": DataConfig(
        image_size=64,
        split=SplitConfig(fractions=(0.8, 0.1, 0.1), seed=3),
        synthetic=SyntheticConfig(num_videos=80, frames_per_video=10, image_size=128),
    ),
    # The paper: 128 x 128 frames, a random 90/5/5 split of videos.
    "paper": DataConfig(
        image_size=128,
        split=SplitConfig(fractions=(0.9, 0.05, 0.05)),
        synthetic=SyntheticConfig(num_videos=400, frames_per_video=12, image_size=256),
    ),
}
