"""Scoring a folder of predicted masks against a folder of true masks (any tool's output, PNG files).

PRED/<stem>.png   predicted masks: pixel value = class id (255: no class)
GT/<stem>.png     true masks of the same stems: class id, 255 = ignore
                  (a ``folder`` dataset works too: GT/masks/<stem>.png is used when GT holds no PNG)
CLASSES           JSON list of class names (position = class id), e.g. a dataset's classes.json
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from gauda.data.classes import IGNORE_INDEX, index_label_map
from gauda.data.errors import DataError
from gauda.data.files import read_label
from gauda.metrics.segmentation import SegmentationScores, SegmentationTable

logger = logging.getLogger(__name__)


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """The class names of a JSON list file (position = class id)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: class file not found; expected a JSON list of class names")
    try:
        names = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error}); expected a JSON list of class names") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: expected a non-empty JSON list of class names, got {names!r}")
    if len(names) >= IGNORE_INDEX:
        raise DataError(f"{path}: {len(names)} classes; expected at most {IGNORE_INDEX}")
    return tuple(names)


def mask_files(folder: str | Path, role: str) -> dict[str, Path]:
    """Stem -> PNG path of a mask folder (or of its ``masks/`` subfolder when it holds no PNG itself)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{role} folder {folder}: not found; expected a folder of PNG masks")
    files = {p.stem: p for p in sorted(folder.glob("*.png"))}
    if not files and (folder / "masks").is_dir():
        files = {p.stem: p for p in sorted((folder / "masks").glob("*.png"))}
    if not files:
        raise DataError(f"{role} folder {folder}: no PNG masks; expected <stem>.png (or masks/<stem>.png)")
    return files


def evaluate_mask_folders(
    prediction_dir: str | Path, truth_dir: str | Path, classes_file: str | Path
) -> SegmentationTable:
    """The result table of the predicted masks against the true masks of the same stems.

    Every true mask needs a predicted mask; predictions without a true mask are skipped with a warning
    (a folder may hold predictions for more frames than the split being scored).

    Args:
        prediction_dir: folder of predicted masks.
        truth_dir: folder of true masks (or a ``folder`` dataset).
        classes_file: JSON list of class names.
    """
    class_names = read_class_names(classes_file)
    label_map = index_label_map(class_names)  # value = class id, 255 = ignore; anything else is an error
    predictions = mask_files(prediction_dir, "--pred")
    truths = mask_files(truth_dir, "--gt")
    missing = [stem for stem in truths if stem not in predictions]
    if missing:
        shown = ", ".join(str(Path(prediction_dir) / f"{stem}.png") for stem in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"--pred {prediction_dir}: {len(missing)} predicted mask(s) missing: {shown}{more}; "
            f"expected one PNG per true mask in {truth_dir}"
        )
    extra = sorted(set(predictions) - set(truths))
    if extra:
        logger.warning("%d predicted mask(s) without a true mask are skipped (e.g. %s)", len(extra), extra[0])
    scores = SegmentationScores(class_names)
    for stem, truth_path in truths.items():
        truth = label_map.apply(read_label(truth_path), truth_path)
        prediction = label_map.apply(read_label(predictions[stem]), predictions[stem])
        if prediction.shape != truth.shape:
            raise DataError(
                f"{predictions[stem]}: {prediction.shape[1]}x{prediction.shape[0]} but the true mask "
                f"{truth_path} is {truth.shape[1]}x{truth.shape[0]}; expected the same size"
            )
        scores.update(torch.from_numpy(prediction).long()[None], torch.from_numpy(truth).long()[None], [stem])
    return scores.compute()
