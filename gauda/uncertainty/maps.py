"""Pixel-wise uncertainty maps from N posterior samples of class probabilities, (N, B, C, H, W).

The variance is the per-pixel quantity that Eq. 8 pools per class; entropy and mutual information are
the usual split of predictive uncertainty into its total and its epistemic (model) part:
H[y_bar] = E_n H[y_n] + MI, where E_n H[y_n] is the expected (aleatoric) entropy. All in nats.
"""

from __future__ import annotations

import torch

from gauda.uncertainty.classwise import mean_prediction


def _entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    # p log p -> 0 as p -> 0: xlogy returns 0 where p == 0
    return -torch.special.xlogy(probs, probs).sum(dim=dim)


def predictive_variance(probs: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_n (y_n - y_bar)^2 per class, as in Eq. 8: (N, B, C, H, W) -> (B, C, H, W)."""
    y_bar = mean_prediction(probs)  # (B, C, H, W), Eq. 7
    return ((probs - y_bar) ** 2).mean(dim=0)


def variance_map(probs: torch.Tensor) -> torch.Tensor:
    """The variance of the class each pixel's mean prediction picks (Eq. 8's summand): -> (B, H, W)."""
    variance = predictive_variance(probs)  # (B, C, H, W)
    predicted = mean_prediction(probs).argmax(dim=1, keepdim=True)  # (B, 1, H, W)
    return variance.gather(1, predicted).squeeze(1)


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Total uncertainty H[y_bar] = -sum_c y_bar_c log y_bar_c: (N, B, C, H, W) -> (B, H, W)."""
    return _entropy(mean_prediction(probs), dim=1)


def expected_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Aleatoric part (1/N) sum_n H[y_n]: (N, B, C, H, W) -> (B, H, W)."""
    return _entropy(probs, dim=2).mean(dim=0)


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """Epistemic part MI = H[y_bar] - (1/N) sum_n H[y_n] >= 0: (N, B, C, H, W) -> (B, H, W)."""
    # clamp: the difference of two nearly equal sums can fall a rounding error below zero
    return (predictive_entropy(probs) - expected_entropy(probs)).clamp(min=0)
