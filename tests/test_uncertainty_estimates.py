"""Class-wise uncertainty variants: pooling over predicted, labelled or either pixels, mutual information,
and classes the model misses entirely counted as the most uncertain."""

from __future__ import annotations

import math

import pytest
import torch

from gauda.augmentation.selection import top_k_uncertain
from gauda.uncertainty.classwise import classwise_uncertainty
from gauda.uncertainty.estimates import (
    ClasswiseEstimates,
    classwise_estimate,
    mutual_information,
    uncertainty_sums,
)


def _two_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """N = 2 samples, one image of 1 x 2 pixels, 2 classes; both pixels labelled class 1."""
    first = torch.tensor([[0.8, 0.6], [0.2, 0.4]])  # (C, W): pixel 0 [0.8, 0.2], pixel 1 [0.6, 0.4]
    second = torch.tensor([[0.6, 0.2], [0.4, 0.8]])
    probs = torch.stack([first, second])[:, None, :, None, :]  # (N, B, C, H, W) = (2, 1, 2, 1, 2)
    return probs, torch.tensor([[[1, 1]]])


def test_each_pooling_equals_a_hand_computation() -> None:
    # y_bar: pixel 0 [0.7, 0.3] (predicted 0), pixel 1 [0.4, 0.6] (predicted 1); the variance of either
    # class is 0.01 at pixel 0 and 0.04 at pixel 1
    sums = uncertainty_sums(*_two_pixels())
    truth = classwise_estimate(sums, "ground_truth")
    assert math.isnan(truth[0]) and truth[1].item() == pytest.approx(0.025)
    assert classwise_estimate(sums, "predicted").tolist() == pytest.approx([0.01, 0.04])
    assert classwise_estimate(sums, "union").tolist() == pytest.approx([0.01, 0.025])


def test_the_predicted_pooling_is_the_literal_eq_8() -> None:
    probs = torch.softmax(torch.randn(4, 3, 5, 6, 6, generator=torch.Generator().manual_seed(0)), dim=2)
    target = torch.randint(0, 5, (3, 6, 6), generator=torch.Generator().manual_seed(1))
    literal = classwise_uncertainty(probs)
    estimate = classwise_estimate(uncertainty_sums(probs, target), "predicted", "variance")
    assert torch.allclose(estimate.nan_to_num(-1), literal.nan_to_num(-1))


def test_a_class_labelled_but_never_predicted_ranks_first() -> None:
    probs = torch.zeros(2, 1, 3, 1, 4)
    probs[:, :, 0] = 0.9  # class 0 predicted everywhere, class 2 never
    probs[:, :, 1] = 0.05
    probs[:, :, 2] = 0.05
    probs[:, 0, :, 0, 1] = torch.tensor([[0.3, 0.65, 0.05], [0.4, 0.55, 0.05]])  # class 1 at pixel 1
    target = torch.tensor([[[0, 1, 2, 2]]])
    sums = uncertainty_sums(probs, target)
    literal = classwise_estimate(sums, "predicted")
    assert math.isnan(literal[2])  # the paper's Eq. 8 has no estimate for it ...
    assert 2 not in top_k_uncertain(literal, 3)  # ... so it is never asked for
    shrunk = classwise_estimate(sums, "ground_truth", missed_ratio=0.1)
    assert shrunk[2] == math.inf and top_k_uncertain(shrunk, 1) == [2]
    assert math.isfinite(shrunk[0]) and math.isfinite(shrunk[1])
    # without missed_ratio, the labelled pixels still give class 2 an estimate (here 0: no variance)
    assert classwise_estimate(sums, "ground_truth")[2] == 0


def test_mutual_information_is_zero_when_the_samples_agree_and_positive_when_they_differ() -> None:
    agree = torch.softmax(torch.randn(1, 2, 3, 4, 4), dim=2).expand(5, -1, -1, -1, -1)
    assert mutual_information(agree).abs().max() < 1e-6
    differ = torch.eye(3)[torch.tensor([0, 1, 2])][:, None, :, None, None].expand(3, 1, 3, 2, 2)
    assert mutual_information(differ).min().item() == pytest.approx(math.log(3), abs=1e-5)


def test_the_accumulator_pools_like_one_big_batch() -> None:
    probs = torch.softmax(torch.randn(3, 4, 4, 5, 5, generator=torch.Generator().manual_seed(2)), dim=2)
    target = torch.randint(0, 4, (4, 5, 5), generator=torch.Generator().manual_seed(3))
    valid = target != 3
    accumulator = ClasswiseEstimates()
    accumulator.update(probs[:, :2], target[:2], valid[:2])
    accumulator.update(probs[:, 2:], target[2:], valid[2:])
    whole = uncertainty_sums(probs, target, valid)
    for pooling in ("predicted", "ground_truth", "union"):
        for quantity in ("variance", "mutual_information"):
            pooled = classwise_estimate(accumulator.compute(), pooling, quantity)
            assert torch.allclose(
                pooled.nan_to_num(-1), classwise_estimate(whole, pooling, quantity).nan_to_num(-1)
            )
    assert accumulator.compute().labelled[3] == 0  # ignored pixels are left out


def test_an_unknown_pooling_is_named() -> None:
    with pytest.raises(ValueError, match="pooling 'pixels'"):
        classwise_estimate(uncertainty_sums(*_two_pixels()), "pixels")  # type: ignore[arg-type]
