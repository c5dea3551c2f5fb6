"""``gauda data inspect``: counts, splits and every problem of a dataset, in one pass over its frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gauda.data.classes import IGNORE_INDEX
from gauda.data.config import DataConfig
from gauda.data.dataset import open_source
from gauda.data.errors import DataError
from gauda.data.sources import FrameSource
from gauda.data.splits import SPLITS, split_indices, split_videos
from gauda.data.transforms import resize_pair


def count_pixels(mask: np.ndarray, num_classes: int) -> tuple[np.ndarray, int]:
    """Pixels per class (num_classes,) and the number of ignored pixels of one mask."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return counts[:num_classes].astype(np.int64), int(counts[IGNORE_INDEX])


@dataclass
class DatasetReport:
    dataset: str
    resolution: str  # "native" or "SxS"
    class_names: tuple[str, ...]
    num_frames: int = 0
    num_videos: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    class_frames: np.ndarray | None = None  # (C,) frames containing each class
    class_pixels: np.ndarray | None = None  # (C,) pixels of each class
    ignored_pixels: int = 0
    problems: list[str] = field(default_factory=list)
    frame_classes: dict[int, np.ndarray] = field(default_factory=dict)  # readable frame -> classes present

    def to_json(self) -> dict[str, Any]:
        num_classes = len(self.class_names)
        frames = self.class_frames if self.class_frames is not None else np.zeros(num_classes, int)
        pixels = self.class_pixels if self.class_pixels is not None else np.zeros(num_classes, int)
        return {
            "dataset": self.dataset,
            "resolution": self.resolution,
            "num_frames": self.num_frames,
            "num_videos": self.num_videos,
            "splits": self.splits,
            "classes": [
                {
                    "id": c,
                    "name": name,
                    "frames": int(frames[c]),
                    "pixels": int(pixels[c]),
                    "frame_fraction": round(float(frames[c]) / max(1, self.num_frames), 4),
                }
                for c, name in enumerate(self.class_names)
            ],
            "ignored_pixels": self.ignored_pixels,
            "problems": self.problems,
        }


def inspect_dataset(config: DataConfig, size: int | None = None, progress: bool = True) -> DatasetReport:
    """Read every frame once; collect counts and all problems instead of stopping at the first.

    Args:
        config: the data configuration (dataset, root, class setting, split).
        size: count at size x size (after the data stage's resize); None counts at native resolution.
        progress: show a progress bar.
    """
    source: FrameSource = open_source(config, check=False)
    report = DatasetReport(source.name, f"{size}x{size}" if size else "native", source.class_names)
    report.problems += source.problems
    num_classes = source.num_classes
    report.class_frames = np.zeros(num_classes, np.int64)
    report.class_pixels = np.zeros(num_classes, np.int64)
    # without classes every mask value is "unknown": one line per frame would bury the cause
    frames = range(len(source)) if num_classes else range(0)
    if not num_classes and len(source):
        report.problems.append(f"{len(source)} frames not checked: the dataset has no classes (above)")
    for index in tqdm(frames, desc=f"inspecting {source.name}", disable=not progress):
        try:
            image, mask = source.read(index)
        except DataError as error:
            report.problems.append(str(error))
            continue
        if size is not None:
            image, mask = resize_pair(image, mask, size)
        pixels, ignored = count_pixels(mask, num_classes)
        report.class_pixels += pixels
        report.class_frames += pixels > 0
        report.ignored_pixels += ignored
        report.frame_classes[index] = pixels > 0
    videos = source.videos()
    report.num_frames, report.num_videos = len(source), len(videos)
    if videos:
        try:
            assignment = split_videos(
                {v: len(f) for v, f in videos.items()}, config.split, source.recorded_split
            )
            indices = split_indices(videos, assignment)
            report.splits = {split: len(indices[split]) for split in SPLITS}
        except DataError as error:
            report.problems.append(str(error))
    return report


def grid_indices(report: DatasetReport, count: int = 12) -> list[int]:
    """Frames to show: one per class from the rarest up (so rare classes are seen), then spread evenly."""
    readable = sorted(report.frame_classes)
    if not readable:
        return []
    chosen: list[int] = []
    frames = report.class_frames if report.class_frames is not None else np.zeros(0)
    for c in np.argsort(frames, kind="stable"):
        if len(chosen) >= count // 2:
            break
        holder = next((i for i in readable if report.frame_classes[i][c] and i not in chosen), None)
        if holder is not None:
            chosen.append(holder)
    for i in np.linspace(0, len(readable) - 1, num=count).round().astype(int):
        if len(chosen) < count and readable[i] not in chosen:
            chosen.append(readable[i])
    return sorted(chosen)
