"""Train/val/test splits by video: frames of one video never land in two splits."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gauda.data.config import SplitConfig
from gauda.data.errors import DataError
from gauda.io import atomic_write_json

SPLITS: tuple[str, ...] = ("train", "val", "test")
CADIS_OFFICIAL: dict[str, tuple[str, ...]] = {
    "val": ("Video05", "Video07", "Video16"),
    "test": ("Video02", "Video12", "Video22"),
}


def split_videos(
    video_sizes: Mapping[str, int], config: SplitConfig, recorded: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Assign every video to ``train``, ``val`` or ``test``.

    ``random`` (the paper's): videos in a seeded random order go to test, then val, each taking videos
    while that brings its frame count closer to its fraction of all frames (at least one video when
    its fraction is above 0); the rest is train. ``official``: CaDIS's published video split.
    ``dataset``: the split the dataset itself records (``recorded``: the ``split.json`` of an export or
    of ``gauda augment``, the ``gauda.json`` of an nnU-Net export).

    Args:
        video_sizes: video id -> number of frames.
        config: method, fractions and seed.
        recorded: video id -> split, as the dataset records it (for ``dataset``).
    """
    if config.method == "official":
        return _official_split(video_sizes)
    if config.method == "dataset":
        return _recorded_split(video_sizes, recorded)
    videos = sorted(video_sizes)
    needed = 1 + sum(f > 0 for f in config.fractions[1:])
    if len(videos) < needed:
        raise DataError(
            f"split: the dataset has {len(videos)} video(s); a split by video with fractions "
            f"{list(config.fractions)} needs at least {needed}"
        )
    order = [videos[i] for i in np.random.default_rng(config.seed).permutation(len(videos))]
    total = sum(video_sizes.values())
    assignment: dict[str, str] = {}
    for split, fraction in (("test", config.fractions[2]), ("val", config.fractions[1])):
        target, count = fraction * total, 0
        while fraction > 0 and len(order) > 1:
            size = video_sizes[order[0]]
            if count > 0 and abs(count + size - target) >= abs(count - target):
                break
            assignment[order.pop(0)] = split
            count += size
    assignment.update(dict.fromkeys(order, "train"))
    return assignment


def _official_split(video_sizes: Mapping[str, int]) -> dict[str, str]:
    assignment = {video: "train" for video in video_sizes}
    for split, videos in CADIS_OFFICIAL.items():
        missing = [v for v in videos if v not in video_sizes]
        if missing:
            raise DataError(
                f"split: CaDIS's official {split} videos {missing} are not in the dataset; "
                "use split.method=random for a subset of CaDIS"
            )
        assignment.update(dict.fromkeys(videos, split))
    return assignment


def _recorded_split(video_sizes: Mapping[str, int], recorded: Mapping[str, str] | None) -> dict[str, str]:
    if recorded is None:
        raise DataError(
            "split.method=dataset: the dataset records no split (split.json of a folder dataset, gauda.json "
            "of an nnU-Net dataset); use split.method=random"
        )
    missing = sorted(set(video_sizes) - set(recorded))
    if missing:
        raise DataError(
            f"split.method=dataset: videos {missing[:5]}{' ...' if len(missing) > 5 else ''} are not in "
            "the dataset's recorded split; expected every video assigned to train, val or test"
        )
    assignment = {video: recorded[video] for video in video_sizes}
    if "train" not in assignment.values():
        raise DataError("split.method=dataset: the recorded split has no train video")
    return assignment


def recorded_assignment(summary: object, source: str | Path) -> dict[str, str]:
    """Video -> split from a split summary (``{"videos": {"train": [...], "val": [...], "test": [...]}}``,
    what ``split_summary`` writes); a malformed one is an error naming ``source``."""
    videos = summary.get("videos") if isinstance(summary, dict) else None
    if not isinstance(videos, dict) or not set(videos) <= set(SPLITS):
        raise DataError(f'{source}: expected {{"videos": {{"train": [...], "val": [...], "test": [...]}}}}')
    assignment: dict[str, str] = {}
    for split, names in videos.items():
        if not isinstance(names, list):
            raise DataError(f"{source}: videos.{split} must be a list of video ids")
        for name in names:
            if str(name) in assignment:
                raise DataError(f"{source}: video {name!r} is in two splits; expected each video in one")
            assignment[str(name)] = split
    return assignment


def split_indices(videos: Mapping[str, list[int]], assignment: Mapping[str, str]) -> dict[str, list[int]]:
    """Frame indices of each split, from the frames of each video and the video assignment."""
    indices: dict[str, list[int]] = {split: [] for split in SPLITS}
    for video, frames in videos.items():
        indices[assignment[video]].extend(frames)
    return {split: sorted(frames) for split, frames in indices.items()}


def split_summary(
    videos: Mapping[str, list[int]], assignment: Mapping[str, str], config: SplitConfig
) -> dict:
    frames = split_indices(videos, assignment)
    return {
        "method": config.method,
        "seed": config.seed,
        "fractions": list(config.fractions),
        "frames": {split: len(frames[split]) for split in SPLITS},
        "videos": {split: sorted(v for v, s in assignment.items() if s == split) for split in SPLITS},
    }


def save_split(summary: Mapping[str, Any], run_dir: str | Path) -> Path:
    """Write ``split.json`` (which video went where) into a run folder."""
    return atomic_write_json(Path(run_dir) / "split.json", dict(summary))
