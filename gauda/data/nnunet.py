"""nnU-Net v2's raw dataset format for 2D PNG frames, written and read.

    DIR/dataset.json             channel_names R, G, B; labels {name: value}; numTraining; file_ending .png
    DIR/imagesTr/<case>_0000.png RGB frame (one file holds the three channels: nnU-Net's natural images)
    DIR/labelsTr/<case>.png      single-channel label map
    DIR/imagesTs/, labelsTs/     the held-out test split (nnU-Net itself never reads them)
    DIR/splits_final.json        folds whose validation cases never share a video with their training cases
    DIR/gauda.json               how gauda's classes map to the labels, each case's video, the split
    DIR/videos.json              optional when reading: {"<case>": "<video id>"}

nnU-Net's rules: label 0 is ``background``, label values are consecutive, an ignore label is the highest
value and is named ``ignore``. gauda's ``IGNORE_INDEX`` becomes that ignore label; a dataset whose class 0 is
not a background (CaDIS: Pupil) gets a background 0 with its classes shifted up by one. nnU-Net trains
with the folds of ``$nnUNet_preprocessed/DatasetXXX_Name/splits_final.json``; nnU-Net 2.8 copies the raw
dataset's file there in ``nnUNetv2_plan_and_preprocess`` (an older one needs it copied by hand), else it
draws random folds that put frames of one video on both sides.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gauda.data.classes import IGNORE_INDEX, LabelMap
from gauda.data.errors import DataError
from gauda.data.files import write_png
from gauda.data.folder import checked_stem, staged_output
from gauda.data.sources import FileSource, FrameRecord, require_root
from gauda.data.splits import recorded_assignment
from gauda.io import atomic_write_json

logger = logging.getLogger(__name__)

NNUNET_LAYOUT = "<root>/dataset.json, <root>/imagesTr/<case>_0000.png and <root>/labelsTr/<case>.png"
GAUDA_FILE = "gauda.json"
VIDEOS_FILE = "videos.json"  # optional {"<case>": "<video id>"}, as in the folder format
FOLDS_FILE = "splits_final.json"
FILE_ENDING = ".png"
BACKGROUND, IGNORE = "background", "ignore"
DATASET_FOLDER = re.compile(r"Dataset\d{3}_[A-Za-z0-9_-]+")
RGB_CHANNELS = {"0": "R", "1": "G", "2": "B"}


def is_background(name: str) -> bool:
    """Whether a class name reads as a background (``Background``, CholecSeg8k's ``Black Background``)."""
    return BACKGROUND in name.lower()


@dataclass(frozen=True)
class NnunetLabels:
    """gauda's class ids as nnU-Net label values: ``shifted`` when a background 0 was added before them."""

    class_names: tuple[str, ...]
    shifted: bool

    @property
    def label_names(self) -> tuple[str, ...]:
        """nnU-Net's label names by value (0 is ``background``), without the ignore label."""
        return (BACKGROUND, *self.class_names[0 if self.shifted else 1 :])

    @property
    def ignore_value(self) -> int:
        return len(self.label_names)

    def values(self) -> dict[str, int]:
        """gauda class name -> its nnU-Net label value."""
        return {name: c + int(self.shifted) for c, name in enumerate(self.class_names)}

    def labels_json(self, with_ignore: bool) -> dict[str, int]:
        """dataset.json's ``labels``: the ignore label only when some mask holds ignored pixels."""
        labels = {name: value for value, name in enumerate(self.label_names)}
        return labels | ({IGNORE: self.ignore_value} if with_ignore else {})

    def encode(self, mask: np.ndarray) -> np.ndarray:
        """A mask of class ids (255 = ignore) as nnU-Net label values, uint8."""
        values = mask.astype(np.int16) + int(self.shifted)
        values[mask == IGNORE_INDEX] = self.ignore_value
        return values.astype(np.uint8)


def nnunet_labels(class_names: Sequence[str]) -> NnunetLabels:
    """How ``class_names`` map to nnU-Net labels; an error for names nnU-Net cannot hold."""
    names = tuple(class_names)
    shifted = not is_background(names[0])
    labels = NnunetLabels(names, shifted)
    taken = [name for name in labels.label_names if name.lower() in (BACKGROUND, IGNORE)]
    if len(set(labels.label_names)) != len(labels.label_names) or len(taken) > 1:
        raise DataError(
            f"classes {list(names)}: nnU-Net needs unique label names; it reserves {BACKGROUND!r} for 0 "
            f"and {IGNORE!r} for the ignore label"
        )
    if labels.ignore_value >= IGNORE_INDEX:
        raise DataError(f"{len(names)} classes: an nnU-Net PNG label map holds at most 254 labels")
    return labels


def video_folds(
    case_videos: Mapping[str, str], num_folds: int = 5, seed: int = 0, always_train: Collection[str] = ()
) -> list[dict[str, list[str]]]:
    """Folds for nnU-Net's ``splits_final.json``: each video's cases on one side of every fold.

    The videos (except ``always_train``'s, whose cases train in every fold: generated pairs) go to
    ``min(num_folds, videos)`` folds, largest first into the fold with the fewest cases, ties in a seeded
    random order; no folds (an empty list) with fewer than two such videos.
    """
    sizes: dict[str, int] = {}
    for video in case_videos.values():
        if video not in always_train:
            sizes[video] = sizes.get(video, 0) + 1
    count = min(num_folds, len(sizes))
    if count < 2:
        return []
    names = sorted(sizes)
    rank = {names[i]: r for r, i in enumerate(np.random.default_rng(seed).permutation(len(names)))}
    fold_of: dict[str, int] = {}
    fold_sizes = [0] * count
    for video in sorted(names, key=lambda v: (-sizes[v], rank[v])):
        fold = min(range(count), key=lambda f: (fold_sizes[f], f))
        fold_of[video] = fold
        fold_sizes[fold] += sizes[video]
    cases = sorted(case_videos)
    return [
        {
            "train": [c for c in cases if fold_of.get(case_videos[c]) != fold],
            "val": [c for c in cases if fold_of.get(case_videos[c]) == fold],
        }
        for fold in range(count)
    ]


class NnunetWriter:
    """Collects pairs into a staging folder in nnU-Net's layout; ``write_nnunet`` moves it into place.

    Args:
        staging: the temporary folder.
        class_names: names of gauda's class ids.
        split: the dataset's split summary (``split_summary``): its test videos go to imagesTs/labelsTs,
            and it is recorded in ``gauda.json`` (``split.method=dataset`` reads it back).
        always_train: videos whose cases train in every fold (generated pairs).
        name: the dataset folder's name (``DatasetXXX_Name``), for the note on where the folds go.
    """

    def __init__(
        self,
        staging: Path,
        class_names: Sequence[str],
        split: Mapping[str, Any] | None = None,
        always_train: Collection[str] = (),
        name: str = "DatasetXXX_Name",
    ) -> None:
        self.staging, self.name = staging, name
        self.labels = nnunet_labels(class_names)
        self.class_names = self.labels.class_names
        self.split = dict(split) if split is not None else None
        assignment = recorded_assignment(self.split, "split") if self.split is not None else {}
        self.test_videos = {video for video, part in assignment.items() if part == "test"}
        self.always_train = set(always_train)
        self.videos: dict[str, str] = {}  # case -> video
        self.test_cases: set[str] = set()
        self.ignored = False  # some mask holds ignored pixels: dataset.json declares the ignore label
        for folder in ("imagesTr", "labelsTr"):
            (staging / folder).mkdir()

    def add(self, name: str, video: str, image: np.ndarray, mask: np.ndarray) -> None:
        """Add one pair: image uint8 (H, W, 3), mask of class ids (H, W) with 255 = ignore."""
        case = checked_stem(name, image, mask, len(self.class_names), self.videos)
        part = "Ts" if video in self.test_videos else "Tr"
        if part == "Ts" and not self.test_cases:  # the test folders only when there is a test split
            for folder in ("imagesTs", "labelsTs"):
                (self.staging / folder).mkdir()
        write_png(self.staging / f"images{part}" / f"{case}_0000.png", np.ascontiguousarray(image, np.uint8))
        write_png(self.staging / f"labels{part}" / f"{case}.png", self.labels.encode(mask))
        self.ignored |= bool((mask == IGNORE_INDEX).any())
        self.videos[case] = video
        if part == "Ts":
            self.test_cases.add(case)

    def write_text(self, relative: str, text: str) -> None:
        """An extra file in the dataset folder (for example the configuration that made it)."""
        (self.staging / relative).write_text(text)

    def finish(self, num_folds: int = 5, seed: int = 0) -> None:
        """dataset.json, splits_final.json and gauda.json, once every pair is in."""
        training = {case: video for case, video in self.videos.items() if case not in self.test_cases}
        atomic_write_json(
            self.staging / "dataset.json",
            {
                "channel_names": RGB_CHANNELS,
                "labels": self.labels.labels_json(self.ignored),
                "numTraining": len(training),
                "file_ending": FILE_ENDING,
                "overwrite_image_reader_writer": "NaturalImage2DIO",
                "description": "written by gauda; gauda.json maps its classes, videos and split",
            },
        )
        folds = video_folds(training, num_folds, seed, self.always_train)
        if folds:
            atomic_write_json(self.staging / FOLDS_FILE, folds)
        atomic_write_json(
            self.staging / GAUDA_FILE,
            {
                "class_names": list(self.class_names),
                "label_values": self.labels.values(),
                "background_added": self.labels.shifted,
                "ignore_value": self.labels.ignore_value if self.ignored else None,
                "videos": self.videos,
                "test_cases": sorted(self.test_cases),
                "split": self.split,
                "always_train": sorted(self.always_train),
                "folds": f"{FOLDS_FILE}: nnU-Net trains with $nnUNet_preprocessed/{self.name}/{FOLDS_FILE} "
                "(nnU-Net 2.8 copies this one there in plan_and_preprocess; else copy it by hand), so that "
                "its folds keep each video on one side"
                if folds
                else None,
            },
        )


@contextmanager
def write_nnunet(
    out: str | Path,
    class_names: Sequence[str],
    overwrite: bool = False,
    split: Mapping[str, Any] | None = None,
    always_train: Collection[str] = (),
    num_folds: int = 5,
    seed: int = 0,
) -> Iterator[NnunetWriter]:
    """Write an nnU-Net v2 raw dataset to ``out`` (``nnUNet_raw/DatasetXXX_Name``); on any error nothing
    at ``out`` changes. ``split``, ``always_train``: see ``NnunetWriter``; ``num_folds``, ``seed``: of
    ``splits_final.json``."""
    if not DATASET_FOLDER.fullmatch(Path(out).name):
        logger.warning(
            "%s: nnU-Net finds datasets named DatasetXXX_Name (three digits, e.g. Dataset501_Gauda)", out
        )
    with staged_output(out, overwrite) as staging:
        writer = NnunetWriter(staging, class_names, split, always_train, Path(out).name)
        yield writer
        writer.finish(num_folds, seed)


# -- reading ------------------------------------------------------------------------------------------------


def _load_json(path: Path, expected: str, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.append(f"{path}: unreadable ({error}); expected {expected}")
        return None


def _label_map(dataset: Any, gauda: Any, root: Path, problems: list[str]) -> LabelMap | None:
    """The class map of dataset.json's labels (restored to gauda's classes by gauda.json, if there)."""
    labels = dataset.get("labels") if isinstance(dataset, dict) else None
    if not isinstance(labels, dict) or not all(isinstance(v, int) for v in labels.values()):
        problems.append(
            f"{root / 'dataset.json'}: 'labels' must map names to integer values (region-based labels are "
            'not read); expected e.g. {"background": 0, "Liver": 1}'
        )
        return None
    ignore = labels.get(IGNORE)
    ordered = sorted((v, n) for n, v in labels.items() if n != IGNORE)
    if [v for v, _ in ordered] != list(range(len(ordered))) or (
        ignore is not None and ignore != len(ordered)
    ):
        problems.append(
            f"{root / 'dataset.json'}: labels {labels}; expected consecutive values from 0 and an "
            f"{IGNORE!r} label, if any, one above the highest"
        )
        return None
    ignored = [] if ignore is None else [ignore]
    if isinstance(gauda, dict) and isinstance(gauda.get("label_values"), dict):
        values = gauda["label_values"]
        names = [str(n) for n in gauda.get("class_names", values)]
        if all(isinstance(values.get(n), int) and values[n] < len(ordered) for n in names):
            return LabelMap.build(names, {c: (values[n],) for c, n in enumerate(names)}, ignored)
        problems.append(f"{root / GAUDA_FILE}: its label_values do not fit dataset.json's labels")
        return None
    return LabelMap.build([n for _, n in ordered], {v: (v,) for v, _ in ordered}, ignored)


def _cases(root: Path, part: str, problems: list[str]) -> dict[str, tuple[Path, Path]]:
    """case -> (image, label) of imagesTr/labelsTr (``Tr``) or imagesTs/labelsTs (``Ts``)."""
    images, labels = root / f"images{part}", root / f"labels{part}"
    channels: dict[str, list[Path]] = {}
    for file in sorted(images.glob(f"*{FILE_ENDING}")):
        if match := re.fullmatch(rf"(.+)_(\d{{4}}){re.escape(FILE_ENDING)}", file.name):
            channels.setdefault(match[1], []).append(file)
    cases = {}
    for case, files in channels.items():
        if len(files) != 1 or not files[0].name.endswith(f"_0000{FILE_ENDING}"):
            problems.append(
                f"{images}/{case}_*: {len(files)} channel files; expected one RGB or gray {case}_0000.png"
            )
        elif (labels / f"{case}{FILE_ENDING}").is_file():
            cases[case] = (files[0], labels / f"{case}{FILE_ENDING}")
        elif part == "Tr":
            problems.append(f"{files[0]}: no label; expected {labels / (case + FILE_ENDING)}")
    return cases


def nnunet_source(root: str | Path | None, video_pattern: str | None = None) -> FileSource:
    """Read a 2D PNG nnU-Net v2 raw dataset: the cases of imagesTr, and of imagesTs where labelsTs has them.

    Classes come from dataset.json (gauda.json, when gauda wrote the dataset, restores gauda's classes);
    the ignore label becomes ``IGNORE_INDEX``. A case's video: the first group of ``video_pattern`` matched
    in its name, else ``videos.json``'s or gauda.json's record, else the case itself (with a warning:
    splits are per frame).
    """
    path = require_root(root, "nnunet", NNUNET_LAYOUT)
    problems: list[str] = []
    dataset_file = path / "dataset.json"
    if not dataset_file.is_file():
        problems.append(f"{dataset_file}: not found; expected nnU-Net's dataset.json ({NNUNET_LAYOUT})")
        dataset = None
    else:
        dataset = _load_json(dataset_file, "nnU-Net's dataset.json", problems)
    gauda = (
        _load_json(path / GAUDA_FILE, "gauda's record", problems) if (path / GAUDA_FILE).is_file() else None
    )
    if isinstance(dataset, dict) and dataset.get("file_ending") != FILE_ENDING:
        problems.append(
            f"{dataset_file}: file_ending {dataset.get('file_ending')!r}; gauda reads 2D nnU-Net datasets "
            f"of {FILE_ENDING!r} files"
        )
    label_map = _label_map(dataset, gauda, path, problems) if isinstance(dataset, dict) else None
    if not (path / "imagesTr").is_dir():
        problems.append(f"{path / 'imagesTr'}: folder not found; expected {NNUNET_LAYOUT}")
    training = _cases(path, "Tr", problems)
    testing = _cases(path, "Ts", problems)
    number = dataset.get("numTraining") if isinstance(dataset, dict) else None
    if number is not None and number != len(training):
        problems.append(f"{dataset_file}: numTraining {number}, but imagesTr holds {len(training)} cases")
    cases = {**testing, **training}
    known = gauda.get("videos", {}) if isinstance(gauda, dict) else {}
    if (path / VIDEOS_FILE).is_file():  # the user's own record, as in the folder format
        loaded = _load_json(path / VIDEOS_FILE, 'a JSON object {"<case>": "<video id>"}', problems)
        if isinstance(loaded, dict):
            known = {str(case): str(video) for case, video in loaded.items()}
        elif loaded is not None:
            problems.append(f'{path / VIDEOS_FILE}: expected a JSON object {{"<case>": "<video id>"}}')
    videos: dict[str, str] = {}
    for case in sorted(cases):
        if video_pattern is not None:
            match = re.search(video_pattern, case)
            if match is None:
                problems.append(f"case {case!r}: data.video_pattern {video_pattern!r} does not match it")
            videos[case] = match[1] if match else case
        else:
            videos[case] = str(known.get(case, case))
    if cases and video_pattern is None and not known:
        logger.warning(
            "%s: no data.video_pattern, videos.json or gauda.json; every case is its own video, so splits "
            "are per frame",
            path,
        )
    records = [FrameRecord(videos[case], case, *cases[case]) for case in sorted(cases)]
    if label_map is None:
        label_map = LabelMap.build(["?"], {})
    source = FileSource("nnunet", path, label_map, records, problems)
    if isinstance(gauda, dict) and gauda.get("split") is not None:
        try:
            source.recorded_split = recorded_assignment(gauda["split"], path / GAUDA_FILE)
        except DataError as error:
            problems.append(str(error))
    return source
