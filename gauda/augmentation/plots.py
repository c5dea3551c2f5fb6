"""GAUDA's choices over training as a figure: each class's uncertainty (Eq. 8) at every validation, with
the classes the scheme asked the generator for marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gauda.io import atomic_save_figure


def plot_choices(choices: Sequence[dict[str, Any]], class_names: Sequence[str], path: str | Path) -> Path:
    """A heat map (classes x validation steps) of UE_c, with a dot on each class chosen at that step."""
    steps = [choice["step"] for choice in choices]
    values = np.array(
        [[np.nan if choice["uncertainty"].get(name) is None else choice["uncertainty"][name]
          for choice in choices] for name in class_names]
    )  # fmt: skip  # (C, V)
    figure = Figure(figsize=(max(5.0, 0.5 * len(steps) + 3), 0.35 * len(class_names) + 1.8))
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    image = axis.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="magma", interpolation="nearest")
    for column, choice in enumerate(choices):
        rows = [list(class_names).index(name) for name in choice["classes"]]
        axis.scatter([column] * len(rows), rows, s=30, c="cyan", edgecolors="black", linewidths=0.5)
    axis.set_xticks(range(len(steps)), [str(s) for s in steps], rotation=90 if len(steps) > 12 else 0)
    axis.set_yticks(range(len(class_names)), list(class_names))
    axis.set_xlabel("validation step")
    axis.set_title("GAUDA: class-wise uncertainty (Eq. 8); dots = classes generated")
    figure.colorbar(image, ax=axis, label="UE_c (grey: no estimate)")
    axis.set_facecolor("0.8")
    figure.tight_layout()
    return atomic_save_figure(figure, path)
