"""GAUDA's choices over training as a figure: each class's uncertainty at every validation, with the
classes the scheme asked the generator for marked, beside each class's validation error 1 - IoU_c."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gauda.io import atomic_save_figure


def plot_choices(choices: Sequence[dict[str, Any]], class_names: Sequence[str], path: str | Path) -> Path:
    """Two heat maps (classes x validation steps): the scheme's UE_c, with a dot on each class generated
    at that step and a cross on each missed class (labelled but hardly predicted: the most uncertain),
    and beside it 1 - IoU_c, the error the uncertainty should track."""
    steps = [choice["step"] for choice in choices]

    def grid(key: str, transform: Any = lambda v: v) -> np.ndarray:  # (C, V)
        return np.array(
            [[np.nan if choice.get(key, {}).get(name) is None else transform(choice[key][name])
              for choice in choices] for name in class_names]
        )  # fmt: skip

    figure = Figure(figsize=(2 * max(5.0, 0.5 * len(steps) + 3), 0.35 * len(class_names) + 1.8))
    FigureCanvasAgg(figure)
    panels = (
        ("uncertainty", "UE_c; dots = generated, x = missed", "magma", lambda v: v),
        ("iou", "1 - IoU_c on the validation split", "viridis", lambda v: 1 - v),
    )
    for index, (key, title, cmap, transform) in enumerate(panels):
        axis = figure.add_subplot(1, 2, index + 1)
        image = axis.imshow(
            np.ma.masked_invalid(grid(key, transform)), aspect="auto", cmap=cmap, interpolation="nearest"
        )
        for column, choice in enumerate(choices):
            rows = [list(class_names).index(name) for name in choice["classes"]]
            axis.scatter([column] * len(rows), rows, s=90, c="cyan", edgecolors="black", linewidths=0.5)
            missed = [list(class_names).index(name) for name in choice.get("missed", [])]
            axis.scatter([column] * len(missed), missed, s=25, c="red", marker="x", linewidths=1.2)
        axis.set_xticks(range(len(steps)), [str(s) for s in steps], rotation=90 if len(steps) > 12 else 0)
        axis.set_yticks(range(len(class_names)), list(class_names) if index == 0 else [])
        axis.set_xlabel("validation step")
        axis.set_title(f"GAUDA: {title}", fontsize=9)
        figure.colorbar(image, ax=axis)
        axis.set_facecolor("0.8")
    figure.tight_layout()
    return atomic_save_figure(figure, path)
