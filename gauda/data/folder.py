"""The ``folder`` format: gauda's own dataset layout, read by every stage and written by every export.

    DIR/images/<stem>.png   RGB frames
    DIR/masks/<stem>.png    single-channel masks: pixel value = class id, 255 = ignore
    DIR/classes.json        JSON list of class names (position = class id)
    DIR/videos.json         optional: {"<stem>": "<video id>"}; without it every frame is its own video

Anything gauda writes as a dataset (exports, generated pairs) uses this format, so its output is
always an input too. A dataset is written into a temporary folder and renamed into place when
complete: a reader never sees half of one, and an existing dataset is replaced only at the end.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from gauda.data.classes import IGNORE_INDEX, index_label_map
from gauda.data.errors import DataError
from gauda.data.files import write_png
from gauda.data.sources import FileSource, FrameRecord, pair_files, require_root
from gauda.data.splits import recorded_assignment
from gauda.io import atomic_write_json
from gauda.runlock import LOCK_FILE, folder_lock

logger = logging.getLogger(__name__)

FOLDER_LAYOUT = "<root>/images/*.png, <root>/masks/*.png of the same stem and <root>/classes.json"
SPLIT_FILE = "split.json"  # the split an export or `gauda augment` recorded (split.method=dataset)
DATASET_MARKERS = ("classes.json", "dataset.json")  # a folder dataset's, an nnU-Net dataset's


def _read_json(path: Path, expected: str, problems: list[str]) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.append(f"{path}: unreadable ({error}); expected {expected}")
        return None


def folder_source(root: str | Path | None) -> FileSource:
    """Read a dataset in the ``folder`` format."""
    path = require_root(root, "folder", FOLDER_LAYOUT)
    problems: list[str] = []
    class_names: list[str] = []
    classes_file = path / "classes.json"
    if not classes_file.is_file():
        problems.append(f"{classes_file}: not found; expected a JSON list of class names")
    else:
        names = _read_json(classes_file, "a JSON list of class names", problems)
        if names is not None:
            if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
                if len(names) >= IGNORE_INDEX:
                    problems.append(f"{classes_file}: {len(names)} classes; expected at most {IGNORE_INDEX}")
                class_names = names
            else:
                problems.append(
                    f"{classes_file}: expected a non-empty JSON list of class names, got {names!r}"
                )

    for sub in ("images", "masks"):
        if not (path / sub).is_dir():
            problems.append(f"{path / sub}: folder not found; expected {FOLDER_LAYOUT}")
    images = {p.stem: p for p in sorted((path / "images").glob("*.png"))}
    masks = {p.stem: p for p in sorted((path / "masks").glob("*.png"))}
    if (path / "images").is_dir() and not images:
        problems.append(f"{path / 'images'}: no PNG frames; expected {FOLDER_LAYOUT}")
    pairs, missing = pair_files(images, masks, f"{path}/masks/{{key}}.png")
    problems += missing

    videos: dict[str, str] = {}
    videos_file = path / "videos.json"
    if videos_file.is_file():
        loaded = _read_json(videos_file, 'a JSON object {"<stem>": "<video id>"}', problems)
        if isinstance(loaded, dict):
            videos = {str(k): str(v) for k, v in loaded.items()}
            problems += [
                f"{videos_file}: frame {stem!r} has no video; expected every frame listed"
                for stem, _, _ in pairs
                if stem not in videos
            ]
        elif loaded is not None:
            problems.append(f'{videos_file}: expected a JSON object {{"<stem>": "<video id>"}}')
    elif pairs:
        logger.warning("%s: no videos.json; every frame is its own video, so splits are per frame", path)

    records = [FrameRecord(videos.get(stem, stem), stem, image, mask) for stem, image, mask in pairs]
    source = FileSource("folder", path, index_label_map(class_names), records, problems)
    split_file = path / SPLIT_FILE
    if split_file.is_file():
        summary = _read_json(split_file, "the split.json of gauda data export or gauda augment", problems)
        if summary is not None:
            try:
                source.recorded_split = recorded_assignment(summary, split_file)
            except DataError as error:
                problems.append(str(error))
    return source


def safe_stem(name: str) -> str:
    """A frame name usable as a file stem on every platform."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    if not stem:
        raise DataError(f"frame name {name!r}: nothing left to use as a file name")
    return stem


def checked_stem(
    name: str, image: np.ndarray, mask: np.ndarray, num_classes: int, written: Collection[str]
) -> str:
    """The file stem of a pair about to be written, after checking it: a new stem, image and mask of one
    size, mask values that are class ids or ``IGNORE_INDEX``."""
    stem = safe_stem(name)
    if stem in written:
        raise DataError(f"frame name {name!r}: written twice (file stem {stem!r}); expected unique names")
    if image.shape[:2] != mask.shape:
        raise DataError(f"frame {name!r}: image {image.shape[:2]} and mask {mask.shape} differ in size")
    valid = (mask < num_classes) | (mask == IGNORE_INDEX)
    if not valid.all():
        bad = np.unique(mask[~valid]).tolist()
        raise DataError(
            f"frame {name!r}: mask values {bad} are not class ids 0..{num_classes - 1} or {IGNORE_INDEX}"
        )
    return stem


class FolderWriter:
    """Collects frames into a temporary folder; ``write_folder`` moves it into place when complete."""

    def __init__(self, staging: Path, class_names: Sequence[str]) -> None:
        self.staging = staging
        self.class_names = tuple(class_names)
        self.videos: dict[str, str] = {}
        (staging / "images").mkdir(parents=True)
        (staging / "masks").mkdir()

    def add(self, name: str, video: str, image: np.ndarray, mask: np.ndarray) -> None:
        """Add one pair: image uint8 (H, W, 3), mask of class ids (H, W) with 255 = ignore."""
        stem = checked_stem(name, image, mask, len(self.class_names), self.videos)
        write_png(self.staging / "images" / f"{stem}.png", np.ascontiguousarray(image, dtype=np.uint8))
        write_png(self.staging / "masks" / f"{stem}.png", np.ascontiguousarray(mask, dtype=np.uint8))
        self.videos[stem] = video

    def write_text(self, relative: str, text: str) -> None:
        """An extra file in the dataset folder (for example the configuration that made it)."""
        (self.staging / relative).write_text(text)


def check_output_folder(out: str | Path, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse, before any work, an output folder that ``write_folder`` could not or must not replace.

    Refused: a file; a non-empty folder without ``overwrite``; with ``overwrite``, a folder that is not a
    dataset (no ``classes.json``) or that holds a training run (its lock file or checkpoints): only
    datasets are replaced; a folder that is, or holds, one of the command's ``inputs``; a parent folder
    this user cannot write in (found now, not after the work).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; expected a new or empty folder")
    target = out.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if source == target or target in source.parents:
            raise DataError(
                f"--out {out}: is or holds {source}, which this command reads; choose another folder"
            )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"{out}: folder exists and is not empty; choose a new folder or pass --overwrite")
        run_files = [p.name for p in (out / LOCK_FILE, *out.glob("*.safetensors")) if p.exists()]
        is_dataset = any((out / marker).is_file() for marker in DATASET_MARKERS)
        if run_files or not is_dataset:
            found = f"a training run ({', '.join(run_files)})" if run_files else "no classes.json"
            raise DataError(
                f"--out {out}: holds {found}; --overwrite replaces only a dataset (a folder dataset's "
                "classes.json or an nnU-Net dataset's dataset.json); choose another folder"
            )
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)).rmdir()
    except OSError as error:
        raise DataError(
            f"--out {out}: cannot write in {parent} ({error.strerror}); "
            "expected a folder this user may write to"
        ) from None
    return out


@contextmanager
def staged_output(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` when the body succeeds; on any error nothing
    at ``out`` changes (an existing ``out`` is replaced only with ``overwrite``, and only at the end)."""
    out = check_output_folder(out, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        # locked while written, so that a run taking the lock of the parent folder (which clears what
        # killed writers left there) leaves it alone; the lock file goes once the dataset is in place
        with folder_lock(staging):
            yield staging
            if out.exists():
                old = out.with_name(f".{out.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                out.rename(old)
                staging.rename(out)
                shutil.rmtree(old)
            else:
                staging.rename(out)
            (out / LOCK_FILE).unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def write_folder(
    out: str | Path, class_names: Sequence[str], overwrite: bool = False
) -> Iterator[FolderWriter]:
    """Write a ``folder`` dataset to ``out``; on any error nothing at ``out`` changes.

    Args:
        out: the dataset folder to create.
        class_names: names of the class ids the masks hold.
        overwrite: replace an existing non-empty ``out`` (only once the new dataset is complete).
    """
    with staged_output(out, overwrite) as staging:
        writer = FolderWriter(staging, class_names)
        yield writer
        atomic_write_json(staging / "classes.json", list(writer.class_names))
        atomic_write_json(staging / "videos.json", writer.videos)
