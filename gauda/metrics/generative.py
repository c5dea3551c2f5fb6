"""FID and KID of two sets of features (N, D): pure functions, whichever network gave the features.

Both compare the features of real frames with those of generated frames. With InceptionV3 pool
features (``gauda.evaluation.inception``) they are the standard FID (Heusel et al. 2017) and KID
(Bińkowski et al. 2018) of the paper's Table 5; with any other extractor they are distances in that
network's feature space and must be labelled as such.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

KID_SUBSET_SIZE = 1000  # torch-fidelity's and torchmetrics' default subset size
KID_SUBSETS = 100  # their default number of subsets


def check_feature_sets(real: torch.Tensor, generated: torch.Tensor, minimum: int = 2) -> None:
    """Raise unless both are (N, D) with the same D and at least ``minimum`` rows each."""
    for name, features in (("real", real), ("generated", generated)):
        if features.dim() != 2:
            raise ValueError(f"{name} features {tuple(features.shape)}: expected (N, D)")
        if features.shape[0] < minimum:
            raise ValueError(f"{name} features: {features.shape[0]} rows; expected at least {minimum}")
        if not torch.isfinite(features).all():
            raise ValueError(f"{name} features: not all finite")
    if real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"features of {real.shape[1]} (real) and {generated.shape[1]} (generated) dimensions; "
            "expected the same extractor for both"
        )


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    features = features.double()
    sigma = torch.cov(features.T).reshape(features.shape[1], features.shape[1])  # (D, D), also for D = 1
    return features.mean(dim=0), sigma


def frechet_distance(
    mu_1: torch.Tensor, sigma_1: torch.Tensor, mu_2: torch.Tensor, sigma_2: torch.Tensor
) -> torch.Tensor:
    """d^2 = ||mu_1 - mu_2||^2 + Tr(sigma_1 + sigma_2 - 2 (sigma_1 sigma_2)^(1/2)) (Heusel et al. 2017),
    the Fréchet distance of N(mu_1, sigma_1) and N(mu_2, sigma_2); a float64 scalar.

    Tr((sigma_1 sigma_2)^(1/2)) is the sum of the square roots of the eigenvalues of sigma_1 sigma_2,
    which are those of the symmetric positive semi-definite s sigma_2 s with s = sigma_1^(1/2) (AB and
    BA share their eigenvalues), so two symmetric eigendecompositions give it stably. MONAI's
    ``get_fid_score`` computes the same d^2 with ``scipy.linalg.sqrtm`` (a test checks that they agree);
    it is not called here because at D = 2048 it is about five times slower on a CPU and passes
    ``sqrtm`` a ``disp`` argument that SciPy 1.18 removes.
    """
    lam, vectors = torch.linalg.eigh(sigma_1.double())
    root_1 = (vectors * lam.clamp(min=0).sqrt()) @ vectors.T  # sigma_1^(1/2); rounding makes tiny lam < 0
    product = root_1 @ sigma_2.double() @ root_1
    product = (product + product.T) / 2  # symmetric up to rounding; eigvalsh reads one triangle only
    trace_sqrt = torch.linalg.eigvalsh(product).clamp(min=0).sqrt().sum()
    difference = mu_1.double() - mu_2.double()
    return difference @ difference + sigma_1.trace() + sigma_2.trace() - 2 * trace_sqrt


def fid(real: torch.Tensor, generated: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (the FID with Inception features).

    Args:
        real: features (N_real, D) of real frames.
        generated: features (N_generated, D) of generated frames.
    """
    check_feature_sets(real, generated)
    dimensions = real.shape[1]
    if min(len(real), len(generated)) <= dimensions:
        logger.warning(
            "FID from %d real and %d generated feature vectors of %d dimensions: with no more samples than "
            "dimensions the covariances are singular and the FID is strongly biased upwards",
            len(real), len(generated), dimensions,
        )  # fmt: skip
    return float(frechet_distance(*gaussian_statistics(real), *gaussian_statistics(generated)))


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """k(x, y) = (x . y / D + coef)^degree for every pair of rows, (M, D), (N, D) -> (M, N): KID's kernel."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def unbiased_mmd2(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """The unbiased estimate MMD^2_u of the squared maximum mean discrepancy (Gretton et al. 2012, JMLR,
    Lemma 6, Eq. 3) with the polynomial kernel, for samples x (M, D) and y (N, D); a float64 scalar:

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (M (M - 1)) + sum_{i != j} k(y_i, y_j) / (N (N - 1))
                  - 2 sum_{i, j} k(x_i, y_j) / (M N).

    Leaving out the diagonals i = j makes it unbiased: its expectation is 0 when x and y come from one
    distribution, so that it can be negative.
    """
    x, y = x.double(), y.double()
    m, n = len(x), len(y)
    k_xx = polynomial_kernel(x, x, degree, coef)  # (M, M)
    k_yy = polynomial_kernel(y, y, degree, coef)  # (N, N)
    k_xy = polynomial_kernel(x, y, degree, coef)  # (M, N)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.mean()


@dataclass(frozen=True)
class KernelDistance:
    """KID as the paper's Table 5 gives it: the mean and standard deviation of MMD^2_u over subsets."""

    mean: float
    std: float  # population standard deviation over the subsets (as torch-fidelity and torchmetrics)
    subset_size: int
    num_subsets: int


def kid(
    real: torch.Tensor,
    generated: torch.Tensor,
    num_subsets: int = KID_SUBSETS,
    subset_size: int | None = None,
    seed: int = 0,
) -> KernelDistance:
    """The kernel distance (the KID with Inception features, Bińkowski et al. 2018, Sec. 4): MMD^2_u with
    k(x, y) = (x . y / D + 1)^3 on ``num_subsets`` random subsets of each set.

    Args:
        real: features (N_real, D) of real frames.
        generated: features (N_generated, D) of generated frames.
        num_subsets: subsets drawn (each without replacement, independently for both sets).
        subset_size: rows per subset; None takes min(1000, N_real, N_generated).
        seed: seeds the subsets, so that the result is reproducible.
    """
    check_feature_sets(real, generated)
    available = min(len(real), len(generated))
    if subset_size is None:
        subset_size = min(KID_SUBSET_SIZE, available)
    elif not 2 <= subset_size <= available:
        raise ValueError(
            f"KID subset_size {subset_size}: expected 2..{available} (the smaller of {len(real)} real "
            f"and {len(generated)} generated feature vectors)"
        )
    if num_subsets < 1:
        raise ValueError(f"KID num_subsets {num_subsets}: expected an integer >= 1")
    generator = torch.Generator().manual_seed(seed)
    real, generated = real.cpu(), generated.cpu()
    values = torch.stack(
        [
            unbiased_mmd2(
                real[torch.randperm(len(real), generator=generator)[:subset_size]],
                generated[torch.randperm(len(generated), generator=generator)[:subset_size]],
            )
            for _ in range(num_subsets)
        ]
    )  # (num_subsets,)
    return KernelDistance(float(values.mean()), float(values.std(correction=0)), subset_size, num_subsets)
