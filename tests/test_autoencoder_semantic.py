"""The image autoencoder's segmentation term (``image_autoencoder.segmentation_weight``)."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_autoencoders import small_run_config

from gauda.autoencoders.config import AutoencoderConfig
from gauda.autoencoders.losses import inverse_sqrt_frequency_weights
from gauda.autoencoders.semantic import SegmentationHead, segmentation_term
from gauda.autoencoders.trainer import train_autoencoder
from gauda.checkpoint import load_checkpoint
from gauda.config import ConfigError
from gauda.distributed import Distributed

HEAD = AutoencoderConfig(segmentation_weight=1.0, segmentation_channels=(4, 8))


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1
    mask = torch.randint(0, 3, (2, 16, 16), generator=generator)
    mask[0, :2] = 255  # ignored pixels
    return image, mask


def test_the_term_is_the_heads_class_weighted_cross_entropy_on_the_reconstruction() -> None:
    head = torch.nn.Conv2d(3, 3, 1)
    image, mask = _batch()
    reconstruction = image.clone().requires_grad_(True)
    weights = inverse_sqrt_frequency_weights(torch.tensor([100.0, 10.0, 1.0]))
    term = segmentation_term(head, reconstruction, mask, weights)
    expected = F.cross_entropy(head(image), mask, weight=weights, ignore_index=255)
    assert term.item() == pytest.approx(expected.item())
    term.backward()
    assert reconstruction.grad is not None and reconstruction.grad.abs().sum() > 0  # it reaches the decoder


def test_the_head_learns_from_the_originals_only() -> None:
    torch.manual_seed(0)
    head = SegmentationHead(HEAD, 3, None, Distributed(), torch.device("cpu"))
    clean = copy.deepcopy(head)
    image, mask = _batch()
    # the autoencoder's backward pass through the term leaves gradients in the head ...
    head.term(torch.rand_like(image), mask).mul(100).backward()
    assert any(p.grad is not None for p in head.head.parameters())
    # ... which its own step discards: it moves exactly as a head that never saw a reconstruction
    head.step(image, mask, decay=1.0)
    clean.step(image, mask, decay=1.0)
    for a, b in zip(head.head.parameters(), clean.head.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_term_that_starts_after_the_last_step_leaves_the_autoencoder_as_without_it(tmp_path: Path) -> None:
    plain = ("image_autoencoder.segmentation_weight=0",)
    late = ("image_autoencoder.segmentation_weight=1.0", "image_autoencoder.segmentation_start=4",
            "image_autoencoder.segmentation_channels=[4, 8]")  # fmt: skip
    early = (*late[:1], "image_autoencoder.segmentation_start=0", late[2])
    for name, extra in (("plain", plain), ("late", late), ("early", early)):
        train_autoencoder(small_run_config(4, *extra), "image", tmp_path / name, progress=False)
    runs = {
        name: load_checkpoint(tmp_path / f"{name}/last.safetensors") for name in ("plain", "late", "early")
    }
    assert "segmentation_head" in runs["late"] and "segmentation_head" not in runs["plain"]
    model = runs["plain"]["model"]
    assert all(torch.equal(value, runs["late"]["model"][key]) for key, value in model.items())
    assert not all(torch.equal(value, runs["early"]["model"][key]) for key, value in model.items())


def test_the_mask_autoencoder_refuses_the_term(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mask_autoencoder\.segmentation_weight: .*expected 0"):
        config = small_run_config(2, "mask_autoencoder.segmentation_weight=0.5")
        train_autoencoder(config, "mask", tmp_path / "r", progress=False)


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("segmentation_weight", -1.0, "a number >= 0"),
        ("segmentation_start", -1, "an integer >= 0"),
        ("segmentation_channels", (8,), "at least two positive integers"),
        ("segmentation_learning_rate", 0.0, "a number > 0"),
    ],
)
def test_bad_segmentation_options_are_named(option, value, expected) -> None:
    with pytest.raises(ConfigError, match=rf"{option}.*{expected}"):
        AutoencoderConfig(**{option: value})
