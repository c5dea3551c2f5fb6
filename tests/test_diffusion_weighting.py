"""The class-weighted denoising loss (diffusion.class_weight_power): cell shares, cell weights, the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gauda.config import ConfigError
from gauda.diffusion.config import DiffusionConfig
from gauda.diffusion.weighting import cell_weights, class_fractions, noisiest_steps_only, weighted_mse


def test_class_fractions_are_each_cells_share_of_pixels_per_class_ignoring_255() -> None:
    mask = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 2, 2], [2, 2, 2, 1]]])
    shares = class_fractions(mask, num_classes=3, size=2)
    assert shares.shape == (1, 3, 2, 2)
    assert shares[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert shares[0, :, 0, 1].tolist() == [0.0, 0.75, 0.0]  # the ignored pixel is in no class
    assert shares[0, :, 1, 1].tolist() == [0.0, 0.25, 0.75]


def test_cell_weights_average_the_class_weights_and_weigh_ignored_pixels_one() -> None:
    mask = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 2, 2], [2, 2, 2, 1]]])
    weights = cell_weights(class_fractions(mask, 3, 2), torch.tensor([1.0, 2.0, 4.0]))
    assert torch.allclose(weights, torch.tensor([[[1.0, 0.75 * 2 + 0.25], [4.0, 0.25 * 2 + 0.75 * 4]]]))


def test_weighted_mse_is_mse_with_equal_weights_and_follows_the_heavier_cells() -> None:
    generator = torch.Generator().manual_seed(0)
    prediction, target = (
        torch.randn(2, 8, 4, 4, generator=generator),
        torch.randn(2, 8, 4, 4, generator=generator),
    )
    assert torch.allclose(
        weighted_mse(prediction, target, torch.full((2, 4, 4), 3.0)), F.mse_loss(prediction, target)
    )
    weights = torch.zeros(2, 4, 4)
    weights[1, 2, 3] = 5.0  # one cell alone counts
    expected = (prediction[1, :, 2, 3] - target[1, :, 2, 3]).pow(2).mean()
    assert torch.allclose(weighted_mse(prediction, target, weights), expected)
    # a normaliser replaces the batch's weight sum (the distributed mean of the sums)
    assert torch.allclose(weighted_mse(prediction, target, weights, torch.tensor(10.0)), expected / 2)


def test_a_negative_class_weight_power_is_refused() -> None:
    with pytest.raises(ConfigError, match="class_weight_power"):
        DiffusionConfig(class_weight_power=-0.5)


def test_noisiest_steps_only_keeps_the_weights_from_the_first_weighted_timestep_on() -> None:
    weights = torch.arange(3 * 2 * 2, dtype=torch.float32).reshape(3, 2, 2) + 2
    kept = noisiest_steps_only(weights, torch.tensor([499, 500, 999]), first=500)
    assert torch.equal(kept[0], torch.ones(2, 2))  # a finer step: Eq. 5's plain mean
    assert torch.equal(kept[1:], weights[1:])
    assert torch.equal(noisiest_steps_only(weights, torch.tensor([0, 1, 2]), first=0), weights)


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_class_weight_timesteps_share_outside_0_1_is_refused(share) -> None:
    with pytest.raises(ConfigError, match="class_weight_timesteps"):
        DiffusionConfig(class_weight_timesteps=share)
