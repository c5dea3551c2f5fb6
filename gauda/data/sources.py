"""Frame sources: where the frames of a dataset are and how to read one (image, mask) pair.

A source lists its frames as ``FrameRecord``s grouped into videos and reads frame ``i`` as an RGB uint8
image (H, W, 3) and a uint8 mask (H, W) of class ids with ``IGNORE_INDEX``. Listing collects every
structural problem (an image without its mask, ...) into ``problems`` instead of stopping at the first,
so that ``gauda data inspect`` can report them all; ``open_source`` raises them together.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gauda.data import synthetic
from gauda.data.classes import LabelMap, cadis_label_map, cholecseg8k_label_map
from gauda.data.config import SyntheticConfig
from gauda.data.errors import DataError, DatasetProblems
from gauda.data.files import read_pair


@dataclass(frozen=True)
class FrameRecord:
    video: str
    name: str  # unique within the dataset; also the file stem when exported
    image: Path | None = None
    mask: Path | None = None


class FrameSource:
    """Base of all sources: records, class names and structural problems."""

    name: str
    class_names: tuple[str, ...]
    records: list[FrameRecord]
    problems: list[str]
    recorded_split: dict[str, str] | None = None  # video -> split, when the dataset records one

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def videos(self) -> dict[str, list[int]]:
        """Video id -> indices of its frames, in record order."""
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(self.records):
            groups.setdefault(record.video, []).append(i)
        return groups

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Changes whenever the frames or the class map change (keys the resized-frame cache)."""
        raise NotImplementedError

    def raise_problems(self) -> None:
        if self.problems:
            raise DatasetProblems(self.name, self.problems)


class FileSource(FrameSource):
    """Frames and masks stored as files, masks mapped through a ``LabelMap``."""

    def __init__(
        self, name: str, root: Path, label_map: LabelMap, records: list[FrameRecord], problems: list[str]
    ) -> None:
        self.name, self.root, self.label_map = name, root, label_map
        self.class_names = label_map.class_names
        self.records, self.problems = records, problems
        if not records and not problems:
            self.problems.append(f"{root}: no frames found")

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        record = self.records[index]
        assert record.image is not None and record.mask is not None
        return read_pair(record.image, record.mask, self.label_map)

    def fingerprint(self) -> str:
        digest = hashlib.sha1(
            json.dumps([self.name, str(self.root.resolve()), self.label_map.table]).encode()
        )
        for record in self.records:
            for path in (record.image, record.mask):
                stat = path.stat()  # type: ignore[union-attr]
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]


class SyntheticSource(FrameSource):
    """The built-in procedural scenes, rendered on demand (deterministic from the seed)."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.name = "synthetic"
        self.class_names = synthetic.SYNTHETIC_CLASSES
        self.problems = []
        self._index = [(v, f) for v in range(config.num_videos) for f in range(config.frames_per_video)]
        self.records = [FrameRecord(f"video{v:03d}", f"video{v:03d}_frame{f:03d}") for v, f in self._index]

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        video, frame = self._index[index]
        return synthetic.render_frame(self.config, video, frame)

    def fingerprint(self) -> str:
        # The renderer's own source is part of the key, so a changed renderer never reuses a stale cache.
        renderer = Path(synthetic.__file__).read_bytes()
        key = json.dumps([self.config.__dict__, hashlib.sha1(renderer).hexdigest()], sort_keys=True)
        return hashlib.sha1(key.encode()).hexdigest()[:16]


def require_root(root: str | Path | None, dataset: str, layout: str) -> Path:
    """The dataset folder, or an error that says which layout was expected there."""
    if root is None:
        raise DataError(f"{dataset}: no root given; expected --root pointing at {layout}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{dataset}: root {path} does not exist or is not a folder; expected {layout}")
    return path


def pair_files(
    images: dict[str, Path], masks: dict[str, Path], expected_mask: str
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Match images with masks by key; every unmatched file becomes a problem."""
    pairs, problems = [], []
    for key in sorted(images):
        if key in masks:
            pairs.append((key, images[key], masks[key]))
        else:
            problems.append(f"{images[key]}: no mask; expected {expected_mask.format(key=key)}")
    problems += [f"{masks[key]}: mask without an image" for key in sorted(set(masks) - set(images))]
    return pairs, problems


CADIS_LAYOUT = "<root>/VideoNN/Images/*.png with <root>/VideoNN/Labels/*.png of the same name"


def cadis_source(root: str | Path | None, setting: str = "II") -> FileSource:
    """CaDISv2 as released: ``<root>/VideoNN/Images/*.png`` and ``<root>/VideoNN/Labels/*.png``."""
    path = require_root(root, "cadis", CADIS_LAYOUT)
    records, problems = [], []
    videos = sorted(d for d in path.iterdir() if d.is_dir() and re.fullmatch(r"Video\d+", d.name))
    if not videos:
        problems.append(f"{path}: no VideoNN folders; expected {CADIS_LAYOUT}")
    for video in videos:
        images = {p.stem: p for p in sorted((video / "Images").glob("*.png"))}
        masks = {p.stem: p for p in sorted((video / "Labels").glob("*.png"))}
        if not images:
            problems.append(f"{video}/Images: no PNG frames; expected {CADIS_LAYOUT}")
        pairs, missing = pair_files(images, masks, f"{video}/Labels/{{key}}.png")
        problems += missing
        records += [FrameRecord(video.name, f"{video.name}_{key}", image, mask) for key, image, mask in pairs]
    return FileSource("cadis", path, cadis_label_map(setting), records, problems)


CHOLECSEG8K_LAYOUT = (
    "<root>/videoNN/videoNN_<start>/frame_<k>_endo.png with frame_<k>_endo_watershed_mask.png"
)


def cholecseg8k_source(root: str | Path | None) -> FileSource:
    """CholecSeg8k as released, reading the watershed masks (gray value per class)."""
    path = require_root(root, "cholecseg8k", CHOLECSEG8K_LAYOUT)
    records, problems = [], []
    videos = sorted(d for d in path.iterdir() if d.is_dir() and re.fullmatch(r"video\d+", d.name))
    if not videos:
        problems.append(f"{path}: no videoNN folders; expected {CHOLECSEG8K_LAYOUT}")
    for video in videos:
        for clip in sorted(d for d in video.iterdir() if d.is_dir()):
            images, masks = {}, {}
            for file in sorted(clip.glob("frame_*_endo*.png")):
                if match := re.fullmatch(r"frame_(\d+)_endo\.png", file.name):
                    images[match[1]] = file
                elif match := re.fullmatch(r"frame_(\d+)_endo_watershed_mask\.png", file.name):
                    masks[match[1]] = file
            pairs, missing = pair_files(images, masks, f"{clip}/frame_{{key}}_endo_watershed_mask.png")
            problems += missing
            records += [
                FrameRecord(video.name, f"{clip.name}_frame{int(k):06d}", image, mask)
                for k, image, mask in pairs
            ]
    return FileSource("cholecseg8k", path, cholecseg8k_label_map(), records, problems)
