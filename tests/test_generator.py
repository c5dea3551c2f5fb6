"""The frozen pair generator that sampling, GAUDA and the generator's evaluation share."""

from __future__ import annotations

import pytest
import torch

from gauda.config import ConfigError
from gauda.generation.generator import PairGenerator, Sampling


@pytest.fixture(scope="module")
def generator(tiny_generator) -> PairGenerator:
    return PairGenerator.load(tiny_generator.diffusion, device="cpu")


def test_sampling_defaults_come_from_the_run_and_name_the_bad_option(generator) -> None:
    assert generator.sampling() == Sampling(generator.config.sampler, 2, generator.config.guidance)
    assert generator.sampling("ddim").steps == 50 and generator.sampling("ddpm", 7).steps == 7
    with pytest.raises(ConfigError, match=r"^sampler 'euler': expected one of ddpm, ddim, dpmpp"):
        generator.sampling("euler")
    with pytest.raises(ConfigError, match=r"^steps 0: expected 1\.\."):
        generator.sampling(steps=0)
    with pytest.raises(ConfigError, match=r"^guidance: expected a finite number >= 0 .*got -1"):
        generator.sampling(guidance=-1)
    assert Sampling("ddim", 10, 1.0).network_calls == 10 and Sampling("ddim", 10, 3.0).network_calls == 20


def test_generate_gives_images_in_unit_range_and_masks_of_class_ids(generator) -> None:
    conditions = torch.zeros(3, generator.num_classes)
    conditions[:, 2] = 1
    images, masks = generator.generate(conditions, generator.sampling(), torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, 16, 16) and masks.shape == (3, 16, 16)
    assert images.min() >= 0 and images.max() <= 1
    assert masks.dtype == torch.long and masks.min() >= 0 and masks.max() < generator.num_classes


def test_a_seed_fixes_the_pairs(generator) -> None:
    sampling = generator.sampling("ddim", 3)
    first = generator.generate(None, sampling, torch.Generator().manual_seed(4), num_samples=2)
    again = generator.generate(None, sampling, torch.Generator().manual_seed(4), num_samples=2)
    other = generator.generate(None, sampling, torch.Generator().manual_seed(5), num_samples=2)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_conditions_of_the_wrong_width_are_refused(generator) -> None:
    with pytest.raises(ValueError, match=r"conditions \(2, 3\): expected \(B, 9\)"):
        generator.generate(torch.zeros(2, 3), generator.sampling(), torch.Generator())
    with pytest.raises(ValueError, match="give conditions or num_samples"):
        generator.generate(None, generator.sampling(), torch.Generator())


def test_reconstruct_is_each_autoencoder_applied_to_its_half_of_the_pair(generator) -> None:
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.randint(0, generator.num_classes, (2, 16, 16), generator=torch.Generator().manual_seed(1))
    rebuilt_images, rebuilt_masks = generator.reconstruct(images, masks)
    output, _, _ = generator.image_autoencoder(images * 2 - 1)
    # the same codes (no flips); the forward pass's straight-through z + (z_q - z) rounds at ~|z| 2^-24
    assert torch.allclose(rebuilt_images, ((output + 1) / 2).clamp(0, 1), atol=1e-4)
    one_hot = torch.nn.functional.one_hot(masks, generator.num_classes).permute(0, 3, 1, 2).float()
    assert torch.equal(rebuilt_masks, generator.mask_autoencoder(one_hot)[0].argmax(1))
