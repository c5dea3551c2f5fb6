"""The simulation's figures (Supplementary Fig. 10 and 11): the data, accuracy curves, minority share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gauda.io import atomic_path
from gauda.toy.data import CLASS_NAMES, MINORITY_CLASS, Points
from gauda.toy.experiment import AUGMENTATION_METHODS, SAMPLING_METHODS, Method, RunResult, ToyResults

CLASS_COLOURS = ("tab:red", "tab:blue")  # the paper's colours: the limited class is blue
METHOD_COLOURS: dict[str, str] = {
    "accuracy_based": "tab:orange",
    "uncertainty_based": "tab:green",
    "pretrain": "tab:gray",
    "online": "tab:purple",
}
LABELS: dict[str, str] = {
    "accuracy_based": "sampling by validation accuracy",
    "uncertainty_based": "sampling by uncertainty (Eq. 8)",
    "pretrain": "pre-train augmentation (x2)",
    "online": "online augmentation by uncertainty (x2)",
}


def _save(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _scatter(axis: Axes, points: Points, marker: str = "o", label_suffix: str = "") -> None:
    for class_id, name in enumerate(CLASS_NAMES):
        chosen = points.points[points.labels == class_id].numpy()
        axis.scatter(chosen[:, 0], chosen[:, 1], s=4, c=CLASS_COLOURS[class_id], marker=marker, alpha=0.6,
                     linewidths=0, label=f"{name} ({len(chosen)}){label_suffix}")  # fmt: skip


def save_data_figure(path: Path, train: Points, online_pool: Points | None = None) -> Path:
    """The training data; beside it, the training pool at the end of online augmentation (if given)."""
    panels = 1 if online_pool is None else 2
    figure = Figure(figsize=(4.2 * panels, 4.4), dpi=110)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, panels, 1)
    _scatter(axis, train)
    axis.set_title(f"training data, {100 * train.share(MINORITY_CLASS):.0f}% minority", fontsize=9)
    if online_pool is not None:
        axis = figure.add_subplot(1, panels, 2, sharex=axis, sharey=axis)
        generated = Points(online_pool.points[len(train) :], online_pool.labels[len(train) :])
        _scatter(axis, train)
        _scatter(axis, generated, marker="^", label_suffix=" generated")
        axis.set_title(f"after online augmentation, {100 * online_pool.share(MINORITY_CLASS):.0f}% minority",
                       fontsize=9)  # fmt: skip
    for axis in figure.axes:
        axis.set_aspect("equal")
        axis.legend(fontsize=7, markerscale=3, loc="upper right")
    figure.tight_layout()
    return _save(figure, path)


def _band(axis: Axes, runs: Sequence[RunResult], values: str, method: Method, scale: float = 1.0) -> None:
    """Mean over seeds as a line, mean +- std as a band."""
    curves = scale * np.array([getattr(run, values) for run in runs])  # (seeds, steps)
    mean, std = curves.mean(axis=0), curves.std(axis=0)
    steps = runs[0].steps
    axis.plot(steps, mean, color=METHOD_COLOURS[method], label=LABELS[method], linewidth=1.5)
    axis.fill_between(steps, mean - std, mean + std, color=METHOD_COLOURS[method], alpha=0.2, linewidth=0)


def save_accuracy_figure(path: Path, results: ToyResults) -> Path:
    """Class-balanced test accuracy over training, (a) sampling schemes and (b) augmentation schemes."""
    figure = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(figure)
    titles = ("(a) adaptive sampling", "(b) augmentation")
    for i, (methods, title) in enumerate(zip((SAMPLING_METHODS, AUGMENTATION_METHODS), titles, strict=True)):
        axis = figure.add_subplot(1, 2, i + 1)
        for method in methods:
            _band(axis, results.runs[method], "test_accuracy", method)
        axis.set_title(f"{title}, {len(results.seeds)} seeds (mean ± std)", fontsize=9)
        axis.set_xlabel("training step")
        axis.set_ylabel("class-balanced test accuracy")
        axis.set_ylim(0.4, 1.0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return _save(figure, path)


def save_minority_share_figure(path: Path, results: ToyResults) -> Path:
    """Percentage of minority-class points in the training pool over training, per augmentation scheme."""
    figure = Figure(figsize=(5, 4), dpi=110)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    for method in AUGMENTATION_METHODS:
        _band(axis, results.runs[method], "minority_share", method, scale=100)
    axis.set_title(f"minority class in the training data, {len(results.seeds)} seeds", fontsize=9)
    axis.set_xlabel("training step")
    axis.set_ylabel("minority share (%)")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return _save(figure, path)


def save_figures(folder: Path, results: ToyResults) -> list[Path]:
    """``data.png``, ``accuracy.png`` and ``minority_share.png`` in ``folder``."""
    online = results.runs["online"][0].pool
    return [
        save_data_figure(folder / "data.png", results.data.train, online),
        save_accuracy_figure(folder / "accuracy.png", results),
        save_minority_share_figure(folder / "minority_share.png", results),
    ]
