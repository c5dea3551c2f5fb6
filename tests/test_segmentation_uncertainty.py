"""Eq. 8 on hand-built posterior samples with a known answer, and the pixel-wise uncertainty maps."""

import math

import torch

from gauda.uncertainty import ClasswiseUncertainty, classwise_uncertainty
from gauda.uncertainty.maps import (
    expected_entropy,
    mutual_information,
    predictive_entropy,
    predictive_variance,
    variance_map,
)


def pixels(*class0: tuple[float, float]) -> torch.Tensor:
    """Posterior samples (N=2, B=1, C=3, 1, P) of pixels with p(class 0) per sample, p(class 2) = 0."""
    p0 = torch.tensor(class0, dtype=torch.float64).T  # (2, P)
    probs = torch.stack([p0, 1 - p0, torch.zeros_like(p0)], dim=1)  # (2, 3, P)
    return probs[:, None, :, None, :]


# pixel a: p0 = 0.9, 0.7 -> mean 0.8, class 0, variance 0.01
# pixel b: p0 = 0.5, 0.9 -> mean 0.7, class 0, variance 0.04
# pixel c: p0 = 0.2, 0.4 -> mean 0.3, class 1, variance of p1 = 0.01
A, B, C = (0.9, 0.7), (0.5, 0.9), (0.2, 0.4)


def test_eq8_on_hand_built_samples_gives_the_known_answer_and_nan_for_a_class_never_predicted() -> None:
    ue = classwise_uncertainty(pixels(A, B, C))
    assert math.isclose(ue[0], (0.01 + 0.04) / 2) and math.isclose(ue[1], 0.01)
    assert math.isnan(ue[2])  # class 2 is never the mean prediction: no estimate, not 0


def test_eq8_pools_pixels_over_the_validation_set_not_batch_means() -> None:
    accumulator = ClasswiseUncertainty(3)
    accumulator.update(pixels(A))
    accumulator.update(pixels(B, B, C))
    ue = accumulator.compute()
    assert math.isclose(ue[0], (0.01 + 0.04 + 0.04) / 3)  # the mean of batch means would be 0.025
    assert math.isclose(ue[1], 0.01) and math.isnan(ue[2])


def test_variance_map_is_the_per_pixel_summand_of_eq8() -> None:
    probs = pixels(A, B, C)
    expected = torch.tensor([0.01, 0.04, 0.01], dtype=torch.float64)
    assert torch.allclose(variance_map(probs).flatten(), expected)
    assert predictive_variance(probs).shape == (1, 3, 1, 3)


def test_identical_samples_have_no_epistemic_uncertainty() -> None:
    probs = torch.softmax(torch.randn(1, 2, 4, 3, 3), dim=2).expand(5, -1, -1, -1, -1)
    assert torch.allclose(mutual_information(probs), torch.zeros(2, 3, 3), atol=1e-6)
    assert torch.allclose(variance_map(probs), torch.zeros(2, 3, 3))
    assert torch.allclose(predictive_entropy(probs), expected_entropy(probs), atol=1e-6)


def test_disagreeing_confident_samples_are_all_epistemic() -> None:
    # two samples, each certain, of different classes: H[mean] = log 2, E H = 0, so MI = log 2
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 2, 1, 1)
    assert torch.allclose(predictive_entropy(probs), torch.tensor(math.log(2)))
    assert torch.allclose(expected_entropy(probs), torch.tensor(0.0))
    assert torch.allclose(mutual_information(probs), torch.tensor(math.log(2)))
