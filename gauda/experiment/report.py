"""The experiment's results: the paper's table (Tables 1-4) as mean and spread over seeds, GAUDA's effect
size against each baseline, and the sorted per-frame IoU curves of Figures 6 and 7."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gauda.experiment.runner import RunSpec
from gauda.experiment.statistics import compare_frames, video_bootstrap
from gauda.io import atomic_save_figure

SUMMARY_ROWS: dict[str, str] = {
    "label mean": "label_mean_iou",
    "sample mean": "sample_mean_iou",
    "sample median": "sample_median_iou",
}


def _spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds (None entries, no estimate, left out)."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    mean = float(np.mean(known)) if known else None
    std = float(np.std(known, ddof=1)) if len(known) > 1 else (0.0 if known else None)
    return {"mean": mean, "std": std, "values": list(values)}


def columns_of(runs: Sequence[RunSpec]) -> list[str]:
    return list(dict.fromkeys(spec.column for spec in runs))


def result_table(
    runs: Sequence[RunSpec], results: Mapping[str, Mapping[str, Any]], class_names: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Row (class name, then label mean, sample mean, sample median) -> column -> mean/std/values of IoU."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for column in columns_of(runs):
        members = [results[spec.name] for spec in runs if spec.column == column]
        for name in class_names:
            table.setdefault(name, {})[column] = _spread([r["per_class"][name]["iou"] for r in members])
        for row, key in SUMMARY_ROWS.items():
            table.setdefault(row, {})[column] = _spread([r[key] for r in members])
    return table


def seed_mean_frames(
    runs: Sequence[RunSpec], results: Mapping[str, Mapping[str, Any]], column: str
) -> dict[str, float]:
    """Frame name -> IoU averaged over the seeds of ``column`` (frames without a score left out)."""
    frames: dict[str, list[float]] = {}
    for spec in runs:
        if spec.column == column:
            for name, scores in results[spec.name]["frames"].items():
                if scores["iou"] is not None:
                    frames.setdefault(name, []).append(scores["iou"])
    return {name: float(np.mean(values)) for name, values in frames.items()}


def frame_videos(results: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Frame name -> video, from the runs' evaluations (frames scored before videos were recorded have
    none)."""
    videos: dict[str, str] = {}
    for result in results.values():
        for name, scores in result.get("frames", {}).items():
            if scores.get("video") is not None:
                videos[name] = scores["video"]
    return videos


def seed_differences(
    runs: Sequence[RunSpec], results: Mapping[str, Mapping[str, Any]], a: str, b: str
) -> dict[str, Any]:
    """Label-mean IoU of column ``a`` minus column ``b``, seed by seed (the seeds both have)."""
    by_seed = {column: {s.seed: results[s.name]["label_mean_iou"] for s in runs if s.column == column}
               for column in (a, b)}  # fmt: skip
    seeds = sorted(by_seed[a].keys() & by_seed[b].keys())
    differences = {seed: by_seed[a][seed] - by_seed[b][seed] for seed in seeds}
    return {
        "per_seed": {str(seed): value for seed, value in differences.items()},
        "mean": float(np.mean(list(differences.values()))) if differences else None,
        "ahead_in_every_seed": bool(differences) and all(v > 0 for v in differences.values()),
    }


def gauda_comparisons(
    runs: Sequence[RunSpec], results: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """GAUDA against every other scheme with the same augmentation: paired by test frame (Cohen's d,
    Wilcoxon), by video (bootstrap interval of the mean frame difference) and by seed (label mean)."""
    comparisons = []
    videos = frame_videos(results)
    for aug in dict.fromkeys(spec.aug for spec in runs):
        gauda = RunSpec("gauda", aug, 0).column
        if gauda not in columns_of(runs):
            continue
        ours = seed_mean_frames(runs, results, gauda)
        for spec in runs:
            if spec.aug == aug and spec.scheme != "gauda" and spec.seed == runs[0].seed:
                other = seed_mean_frames(runs, results, spec.column)
                comparisons.append(
                    {
                        "scheme": gauda,
                        "baseline": spec.column,
                        **compare_frames(ours, other),
                        "video_bootstrap": video_bootstrap(ours, other, videos),
                        "seed_differences": seed_differences(runs, results, gauda, spec.column),
                    }
                )
    return comparisons


def plot_frame_curves(
    runs: Sequence[RunSpec], results: Mapping[str, Mapping[str, Any]], path: str | Path, title: str
) -> Path:
    """Each column's per-frame IoU (mean over seeds) sorted ascending, one panel per augmentation setting."""
    augs = list(dict.fromkeys(spec.aug for spec in runs))
    figure = Figure(figsize=(5.5 * len(augs), 4.2))
    FigureCanvasAgg(figure)
    for panel, aug in enumerate(augs):
        axis = figure.add_subplot(1, len(augs), panel + 1)
        for column in columns_of(runs):
            if column.endswith("+aug") != aug:
                continue
            values = np.sort(np.array(list(seed_mean_frames(runs, results, column).values())))
            if len(values):
                rank = np.linspace(0, 1, len(values))
                axis.plot(rank, values, label=f"{column} (mean {values.mean():.3f})")
        axis.set_xlabel("test frames, sorted (fraction)")
        axis.set_ylabel("frame IoU (mean over seeds)")
        axis.set_title(f"{title}, {'with' if aug else 'without'} classic augmentation")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return atomic_save_figure(figure, path)


def markdown_table(table: Mapping[str, Mapping[str, Mapping[str, Any]]], columns: Sequence[str]) -> str:
    """The paper's table as Markdown: mean ± std over seeds, best mean of each row in bold."""
    lines = ["| class | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for row, cells in table.items():
        means = [cells[c]["mean"] for c in columns]
        best = max((m for m in means if m is not None), default=None)
        texts = []
        for column, mean in zip(columns, means, strict=True):
            if mean is None:
                texts.append("–")
                continue
            text = f"{mean:.3f} ± {cells[column]['std']:.3f}"
            texts.append(f"**{text}**" if mean == best and len(columns) > 1 else text)
        if row == next(iter(SUMMARY_ROWS)):
            lines.append("| | " + " | ".join([""] * len(columns)) + " |")
        lines.append(f"| {row} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"
