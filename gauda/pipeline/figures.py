"""The demo report's figures drawn from the run folders: per-class IoU over training, one panel per class
and one line per scheme (the rare classes first, their curves are the point)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gauda.io import atomic_save_figure
from gauda.segmentation.trainer import metric_name

Curve = list[tuple[int, float]]  # (step, IoU)


def read_class_curves(metrics_csv: Path, class_names: Sequence[str], split: str = "test") -> dict[str, Curve]:
    """Per class, the (step, IoU) rows ``<split>/iou/<class>`` of a run's ``metrics.csv`` (empty lists
    when the run logged none, e.g. trained without ``SplitCurve``)."""
    wanted = {f"{split}/iou/{metric_name(name)}": name for name in class_names}
    curves: dict[str, Curve] = {name: [] for name in class_names}
    if not metrics_csv.is_file():
        return curves
    with metrics_csv.open() as handle:
        for row in csv.DictReader(handle):
            if row["name"] in wanted:
                curves[wanted[row["name"]]].append((int(row["step"]), float(row["value"])))
    return curves


def plot_class_curves(
    curves: Mapping[str, Mapping[str, Curve]], class_order: Sequence[str], path: Path, split: str = "test"
) -> Path:
    """``curves[scheme][class]`` as small multiples: a panel per class in ``class_order``, a line per
    scheme, IoU on a shared 0-1 axis."""
    columns = 3
    rows = -(-len(class_order) // columns)
    figure = Figure(figsize=(3.3 * columns, 2.4 * rows + 0.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    for index, name in enumerate(class_order):
        axis = axes[index // columns][index % columns]
        for scheme, per_class in curves.items():
            points = sorted(per_class.get(name, []))
            if points:
                axis.plot(
                    [s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=scheme
                )
        axis.set_title(name, fontsize=10)
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    for index in range(len(class_order), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("training step")
    for row in axes:
        row[0].set_ylabel(f"{split} IoU")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / figure.get_figheight()))
    return atomic_save_figure(figure, path)
