"""Resizing (image bilinear, mask nearest) and the paper's classic augmentation of (image, mask) pairs."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gauda.data.classes import IGNORE_INDEX
from gauda.data.config import AugmentConfig

logger = logging.getLogger(__name__)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a uint8 frame (H, W, 3) bilinearly and its mask (H, W) by nearest neighbour to size x size."""
    if image.shape[:2] == (size, size):
        return image, mask
    resized_image = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    resized_mask = Image.fromarray(mask).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(resized_image), np.asarray(resized_mask)


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def classic_augment(
    image: torch.Tensor,
    mask: torch.Tensor,
    config: AugmentConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop, flip and rotate a pair identically, each with probability ``config.probability``.

    Crop: a random window of ``1 - crop_fraction`` of each side, resized back. Flip: horizontal.
    Rotation: an angle uniform in ``[-max_rotation, max_rotation]`` degrees; the corners that the
    rotation brings in are black in the image and ``IGNORE_INDEX`` in the mask.

    Args:
        image: float (3, H, W).
        mask: long (H, W) of class ids and ``IGNORE_INDEX``.
        config: probabilities and ranges.
        generator: random source, for reproducible augmentation.
    """
    _, height, width = image.shape
    p = config.probability
    if config.crop_fraction > 0 and _uniform(generator) < p:
        crop_h = max(1, round(height * (1 - config.crop_fraction)))
        crop_w = max(1, round(width * (1 - config.crop_fraction)))
        top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
        left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
        image = image[:, top : top + crop_h, left : left + crop_w]
        mask = mask[top : top + crop_h, left : left + crop_w]
        image = F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest")[0, 0].long()
    if _uniform(generator) < p:
        image, mask = image.flip(-1), mask.flip(-1)
    if config.max_rotation > 0 and _uniform(generator) < p:
        angle = math.radians(_uniform(generator, -config.max_rotation, config.max_rotation))
        image, mask = rotate_pair(image, mask, angle)
    return image.contiguous(), mask.contiguous()


def rotate_pair(image: torch.Tensor, mask: torch.Tensor, angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate (3, H, W) image bilinearly and (H, W) mask by nearest neighbour about the centre."""
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype)[None]
    grid = F.affine_grid(theta, [1, 1, *mask.shape], align_corners=False)
    rotated = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    # Sample mask and an all-ones "inside" map the same way: pixels from outside the frame get ignore.
    stacked = torch.stack([mask.to(image.dtype), torch.ones_like(mask, dtype=image.dtype)])[None]
    sampled = F.grid_sample(stacked, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
    rotated_mask = torch.where(sampled[1] > 0.5, sampled[0].round().long(), IGNORE_INDEX)
    return rotated, rotated_mask


def resize_pairs(
    images: torch.Tensor, masks: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs at ``size`` (H, W): images bilinear, masks nearest; unchanged when already that size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images, masks
    logger.warning(
        "generated pairs are %dx%d, the real data %dx%d (data.image_size): resizing them (images bilinear, "
        "masks nearest)", *images.shape[-2:], *size,
    )  # fmt: skip
    images = F.interpolate(images, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    masks = F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return images, masks
