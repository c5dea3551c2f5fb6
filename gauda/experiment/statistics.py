"""Effect size and significance of one scheme against another on the same test frames.

Cohen's d with the pooled standard deviation of the two groups, d = (mean_a - mean_b) / s_pooled with
s_pooled = sqrt((s_a^2 + s_b^2) / 2) (equal group sizes: every frame is scored by both), and the
Wilcoxon signed-rank test of the paired per-frame differences (scipy), which assumes no normality.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of ``a`` over ``b`` (positive: ``a`` is larger); when neither group has any spread,
    +-inf when the means differ and 0 when they are equal."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2) if min(len(a), len(b)) > 1 else 0.0
    difference = float(a.mean() - b.mean())
    return (
        difference / pooled
        if pooled > 0
        else (0.0 if difference == 0 else math.copysign(math.inf, difference))
    )


def compare_frames(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """Scheme ``a`` against ``b`` on the frames both scored (frame name -> IoU; frames without a score
    in either are left out): mean difference, Cohen's d, Wilcoxon signed-rank p-value."""
    names = sorted(n for n in a.keys() & b.keys() if _finite(a[n]) and _finite(b[n]))
    x = np.array([a[n] for n in names])
    y = np.array([b[n] for n in names])
    result: dict[str, Any] = {"num_frames": len(names)}
    if len(names) < 2:
        return {**result, "mean_difference": None, "cohens_d": None, "wilcoxon_p": None}
    differences = x - y
    p_value = None
    if np.any(differences != 0):
        p_value = float(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
    d = cohens_d(x, y)
    return {
        **result,
        "mean_difference": float(differences.mean()),
        # JSON has no infinity: an effect without spread in either group is null, with the reason
        "cohens_d": d if math.isfinite(d) else None,
        "cohens_d_note": None if math.isfinite(d) else f"no spread in either group (d = {d})",
        "wilcoxon_p": p_value,
    }


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def video_bootstrap(
    a: dict[str, float],
    b: dict[str, float],
    videos: dict[str, str],
    num_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Mean per-frame difference ``a - b`` with a bootstrap confidence interval that resamples whole
    videos with replacement: frames of one video are not independent, so an interval over frames (and
    the Wilcoxon test) overstates certainty.

    Args:
        a, b: frame name -> score of the two schemes (frames without a score in either are left out).
        videos: frame name -> its video.
        num_resamples: bootstrap resamples.
        seed: seeds the resampling.
        level: the interval's coverage.
    """
    names = [n for n in sorted(a.keys() & b.keys()) if _finite(a[n]) and _finite(b[n]) and n in videos]
    groups: dict[str, list[float]] = {}
    for name in names:
        groups.setdefault(videos[name], []).append(a[name] - b[name])
    result: dict[str, Any] = {"num_frames": len(names), "num_videos": len(groups), "level": level}
    if len(groups) < 2:
        return {**result, "mean_difference": None, "low": None, "high": None}
    sums = np.array([sum(values) for values in groups.values()])  # (V,)
    counts = np.array([len(values) for values in groups.values()])  # (V,)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(num_resamples, len(groups)))  # (R, V)
    means = sums[picks].sum(1) / counts[picks].sum(1)  # the frame mean of each resample
    tail = (1 - level) / 2
    return {
        **result,
        "mean_difference": float(sums.sum() / counts.sum()),
        "low": float(np.quantile(means, tail)),
        "high": float(np.quantile(means, 1 - tail)),
    }
