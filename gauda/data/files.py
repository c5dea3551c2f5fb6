"""Reading and writing PNG frames and label masks, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gauda.data.classes import LabelMap
from gauda.data.errors import DataError
from gauda.io import atomic_path

_READ_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError)


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()  # decode now: a truncated file fails here, not later in a worker
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except _READ_ERRORS as error:
        raise DataError(f"{path}: unreadable image ({error}); expected a valid PNG") from None
    return image


def read_image(path: str | Path) -> np.ndarray:
    """An RGB frame as uint8 (H, W, 3)."""
    image = _open(Path(path))
    if image.mode not in ("RGB", "RGBA", "L", "P", "LA"):
        raise DataError(f"{path}: image mode {image.mode}; expected an 8-bit RGB, RGBA or gray PNG")
    return np.asarray(image.convert("RGB"))


def read_label(path: str | Path) -> np.ndarray:
    """A label mask as uint8 (H, W) of stored values (before any class map).

    Single-channel PNGs are read as they are; RGB masks (CholecSeg8k's watershed masks) must have three
    equal channels.
    """
    image = _open(Path(path))
    if image.mode in ("L", "P"):
        return np.asarray(image)
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image)[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise DataError(
                f"{path}: colour label mask; expected a single-channel PNG of label values "
                "(or RGB with three equal channels)"
            )
        return np.ascontiguousarray(rgb[..., 0])
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 255:
            raise DataError(f"{path}: label values up to {values.max()}; expected values in 0..255")
        return values.astype(np.uint8)
    raise DataError(f"{path}: image mode {image.mode}; expected a single-channel label PNG")


def read_pair(image_path: Path, mask_path: Path, label_map: LabelMap) -> tuple[np.ndarray, np.ndarray]:
    """Read a frame and its mask, check that they match, and map the mask to class ids."""
    image = read_image(image_path)
    raw = read_label(mask_path)
    if image.shape[:2] != raw.shape:
        raise DataError(
            f"{image_path} is {image.shape[1]}x{image.shape[0]} but its mask {mask_path} is "
            f"{raw.shape[1]}x{raw.shape[0]}; expected the same size"
        )
    return image, label_map.apply(raw, mask_path)


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
