"""Eq. 7 and Eq. 8 of the paper as pure functions of posterior samples, and an accumulator over a dataset.

Shapes: ``probs`` holds N posterior samples of class probabilities, (N, B, C, *spatial) — N ensemble
members or N latent samples; ``spatial`` is (H, W) for segmentation and empty for classification.
"""

from __future__ import annotations

import torch


def mean_prediction(probs: torch.Tensor) -> torch.Tensor:
    """Eq. 7: y_bar = (1/N) sum_n softmax(y_n), from softmaxed samples: (N, B, C, ...) -> (B, C, ...)."""
    return probs.mean(dim=0)


def classwise_uncertainty_sums(
    probs: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The numerator and |P_c| of Eq. 8 for one batch, so that sums can be pooled over a dataset.

    Args:
        probs: (N, B, C, *spatial) class probabilities of N posterior samples.
        valid: optional bool (B, *spatial); pixels outside it (e.g. ignored ones) are left out.

    Returns:
        sums (C,): per class c, the sum over pixels i in P_c of (1/N) sum_n (y_{n,i,c} - y_bar_{i,c})^2;
        counts (C,): |P_c|, the number of pixels whose mean prediction is class c.
    """
    num_classes = probs.shape[2]
    y_bar = mean_prediction(probs)  # (B, C, *S)
    variance = ((probs - y_bar) ** 2).mean(dim=0)  # (B, C, *S): (1/N) sum_n (y_n - y_bar)^2
    predicted = y_bar.argmax(dim=1)  # (B, *S): the class whose P_c holds each pixel
    own_variance = variance.gather(1, predicted.unsqueeze(1)).squeeze(1)  # (B, *S): variance of that class
    if valid is not None:
        predicted, own_variance = predicted[valid], own_variance[valid]
    predicted, own_variance = predicted.flatten(), own_variance.flatten()
    sums = torch.zeros(num_classes, dtype=torch.float64, device=probs.device)
    sums.index_add_(0, predicted, own_variance.to(torch.float64))
    counts = torch.bincount(predicted, minlength=num_classes).to(torch.float64)
    return sums, counts


def classwise_uncertainty(probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8: UE_c, the mean over P_c of the posterior variance of class c; NaN where P_c is empty.

    A class that is never predicted has no estimate; it is NaN, never 0 (which would read as "certain").
    """
    sums, counts = classwise_uncertainty_sums(probs, valid)
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))


class ClasswiseUncertainty:
    """Eq. 8 pooled over many batches (a whole validation set): ``update`` per batch, then ``compute``."""

    def __init__(self, num_classes: int) -> None:
        self.sums = torch.zeros(num_classes, dtype=torch.float64)
        self.counts = torch.zeros(num_classes, dtype=torch.float64)

    def update(self, probs: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        sums, counts = classwise_uncertainty_sums(probs, valid)
        self.sums += sums.cpu()
        self.counts += counts.cpu()

    def compute(self) -> torch.Tensor:
        """(C,) float64 UE_c; NaN for classes never predicted."""
        return torch.where(self.counts > 0, self.sums / self.counts.clamp(min=1), torch.nan)
