import math

import numpy as np
import torch

from gauda.data.classes import IGNORE_INDEX
from gauda.data.config import AugmentConfig
from gauda.data.transforms import classic_augment, resize_pair, rotate_pair


def coded_pair(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A mask of 4 quadrant classes and an image whose red channel encodes the class (class / 10)."""
    mask = torch.zeros(size, size, dtype=torch.long)
    half = size // 2
    mask[:half, half:], mask[half:, :half], mask[half:, half:] = 1, 2, 3
    image = torch.stack([mask.float() / 10, torch.rand(size, size), torch.rand(size, size)])
    return image, mask


def test_resize_keeps_mask_labels_exact_and_image_smooth() -> None:
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 3, 7, 255], np.uint8), size=(40, 60))
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    small_image, small_mask = resize_pair(image, mask, 16)
    assert small_image.shape == (16, 16, 3) and small_mask.shape == (16, 16)
    assert set(np.unique(small_mask)) <= {0, 3, 7, 255}  # nearest: no invented labels


def test_augmentation_moves_image_and_mask_together() -> None:
    config = AugmentConfig(enabled=True, probability=1.0, max_rotation=30.0)
    for seed in range(10):
        image, mask = coded_pair()
        out_image, out_mask = classic_augment(image, mask, config, torch.Generator().manual_seed(seed))
        # Away from class borders the red channel still encodes the class of the mask pixel.
        inside = out_mask != IGNORE_INDEX
        eroded = inside.clone()
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            eroded &= out_mask == out_mask.roll((dy, dx), (0, 1))
        decoded = (out_image[0] * 10).round().long()
        assert eroded.sum() > 100
        assert (decoded[eroded] == out_mask[eroded]).float().mean() > 0.98


def test_flip_only_is_an_exact_mirror() -> None:
    config = AugmentConfig(enabled=True, probability=1.0, crop_fraction=0.0, max_rotation=0.0)
    image, mask = coded_pair()
    out_image, out_mask = classic_augment(image, mask, config, torch.Generator().manual_seed(0))
    assert torch.equal(out_image, image.flip(-1)) and torch.equal(out_mask, mask.flip(-1))


def test_probability_zero_changes_nothing() -> None:
    image, mask = coded_pair()
    out_image, out_mask = classic_augment(image, mask, AugmentConfig(probability=0.0))
    assert torch.equal(out_image, image) and torch.equal(out_mask, mask)


def test_rotation_fills_corners_with_ignore_and_keeps_the_centre() -> None:
    image, mask = coded_pair(33)
    _, rotated = rotate_pair(image, mask, math.radians(45))
    assert rotated[0, 0] == IGNORE_INDEX and rotated[-1, -1] == IGNORE_INDEX
    assert rotated[16, 16] != IGNORE_INDEX
    _, same = rotate_pair(image, mask, 0.0)
    assert torch.equal(same, mask)


def test_each_operation_fires_with_about_the_configured_probability() -> None:
    config = AugmentConfig(enabled=True, probability=0.2, crop_fraction=0.0, max_rotation=0.0)
    image, mask = coded_pair()
    generator = torch.Generator().manual_seed(0)
    flips = sum(not torch.equal(classic_augment(image, mask, config, generator)[1], mask) for _ in range(500))
    assert 70 < flips < 130  # 500 * 0.2 = 100
