"""Pictures of (image, mask) pairs: a fixed class palette, mask overlays and sample grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gauda.data.classes import IGNORE_INDEX
from gauda.io import atomic_path

# Distinct colours, class id order; beyond them colours are generated deterministically.
_BASE_PALETTE = np.array(
    [
        (0, 0, 0),
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (255, 250, 200),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (255, 215, 180),
        (0, 0, 128),
        (128, 128, 128),
    ],
    dtype=np.uint8,
)


def palette(num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3) colours, the same for a class id in every figure."""
    if num_classes <= len(_BASE_PALETTE):
        return _BASE_PALETTE[:num_classes]
    extra = np.random.default_rng(0).integers(40, 256, (num_classes - len(_BASE_PALETTE), 3), dtype=np.uint8)
    return np.concatenate([_BASE_PALETTE, extra])


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float = 0.45) -> np.ndarray:
    """Blend class colours over a uint8 (H, W, 3) image; ignored pixels stay as they are."""
    colours = palette(num_classes)
    labelled = mask != IGNORE_INDEX
    blended = image.astype(np.float32).copy()
    blended[labelled] = (1 - alpha) * blended[labelled] + alpha * colours[mask[labelled]]
    return blended.round().astype(np.uint8)


def colour_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """The mask as a uint8 (H, W, 3) colour picture; ignored pixels white."""
    colours = np.concatenate([palette(num_classes), np.full((256 - num_classes, 3), 255, np.uint8)])
    return colours[mask]


def save_pair_grid(
    path: str | Path,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    class_names: Sequence[str],
    titles: Sequence[str] | None = None,
    columns: int = 4,
) -> Path:
    """Save a PNG grid: each pair as the image beside its overlaid mask, with a class legend."""
    count = len(images)
    if count == 0:
        raise ValueError("save_pair_grid: no pairs to draw")
    rows = -(-count // columns)
    figure = Figure(figsize=(columns * 3.2, rows * 1.7 + 0.8), dpi=110)
    FigureCanvasAgg(figure)
    num_classes = len(class_names)
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        for j, picture in enumerate((image, overlay(image, mask, num_classes))):
            axis = figure.add_subplot(rows, columns * 2, 2 * i + j + 1)
            axis.imshow(picture, interpolation="nearest")
            axis.set_axis_off()
            if j == 0 and titles is not None:
                axis.set_title(titles[i], fontsize=6, loc="left")
    colours = palette(num_classes) / 255.0
    handles = [Patch(color=colours[c], label=f"{c} {name}") for c, name in enumerate(class_names)]
    figure.legend(handles=handles, loc="lower center", ncol=min(6, num_classes), fontsize=6, frameon=False)
    figure.subplots_adjust(
        left=0.01, right=0.99, top=0.95, bottom=0.8 / (rows * 1.7 + 0.8) + 0.02, wspace=0.04, hspace=0.25
    )
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def save_image_rows(
    path: str | Path,
    rows: Sequence[Sequence[np.ndarray]],
    row_titles: Sequence[str] = (),
    title: str | None = None,
) -> Path:
    """Save a PNG of uint8 pictures (H, W, 3) in rows (e.g. inputs above their reconstructions)."""
    if not rows or not rows[0]:
        raise ValueError("save_image_rows: no pictures to draw")
    num_rows, num_columns = len(rows), max(len(row) for row in rows)
    figure = Figure(figsize=(num_columns * 1.3 + 0.6, num_rows * 1.3 + 0.4), dpi=110)
    FigureCanvasAgg(figure)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            axis = figure.add_subplot(num_rows, num_columns, r * num_columns + c + 1)
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0 and r < len(row_titles):
                axis.set_ylabel(row_titles[r], fontsize=7)
    if title:
        figure.suptitle(title, fontsize=8)
    figure.subplots_adjust(
        left=0.05, right=0.99, top=0.92 if title else 0.98, bottom=0.02, wspace=0.05, hspace=0.08
    )
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)
