"""``run_experiment``: the grid of runs, then everything the paper reports about it, into one folder.

OUT/runs/<scheme>[-aug]-seed<k>/   each run (a gauda train segmenter run folder + evaluation_test.json)
OUT/experiment.json                every number below, with the plan
OUT/table.md                       the paper's table: mean ± std of test IoU over seeds
OUT/frame_iou_curves.png           sorted per-frame IoU per column (Figures 6 and 7)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gauda.config import to_dict
from gauda.experiment.report import (
    columns_of,
    gauda_comparisons,
    markdown_table,
    plot_frame_curves,
    result_table,
)
from gauda.experiment.runner import RunSpec, run_grid
from gauda.io import atomic_write_json, atomic_write_text
from gauda.presets import GaudaConfig
from gauda.runlock import folder_lock

logger = logging.getLogger(__name__)
EXPERIMENT_FILE = "experiment.json"


def run_experiment(
    base: GaudaConfig,
    runs: Sequence[RunSpec],
    out: str | Path,
    generator: str | None = None,
    progress: bool = True,
    jobs: int = 1,
    held_out_seed: int | None = None,
) -> dict[str, Any]:
    """Train and evaluate every run (reusing finished ones; ``jobs`` of them side by side), then write
    the table, the statistics and the curves; returns what ``experiment.json`` holds. With
    ``held_out_seed``, every run is scored on all frames of newly rendered synthetic videos of that
    seed instead of the test split (many more frames of the rare classes)."""
    out = Path(out)
    with folder_lock(out):  # one experiment at a time in a folder
        return _run(base, runs, out, generator, progress, jobs, held_out_seed)


def _run(
    base: GaudaConfig,
    runs: Sequence[RunSpec],
    out: Path,
    generator: str | None,
    progress: bool,
    jobs: int,
    held_out_seed: int | None,
) -> dict[str, Any]:
    results = run_grid(base, runs, out, generator, progress, jobs, held_out_seed)
    class_names = list(next(iter(results.values()))["per_class"])
    table = result_table(runs, results, class_names)
    columns = columns_of(runs)
    comparisons = gauda_comparisons(runs, results)
    title = f"{base.segmentation.model} on {base.data.dataset}"
    plot_frame_curves(runs, results, out / "frame_iou_curves.png", title)
    where = "Test IoU" if held_out_seed is None else f"IoU on newly rendered videos (seed {held_out_seed})"
    atomic_write_text(
        out / "table.md", f"{where}, {title}: mean ± std over seeds\n\n" + markdown_table(table, columns)
    )
    experiment = {
        "model": base.segmentation.model,
        "dataset": base.data.dataset,
        "columns": columns,
        "scored_on": "test split"
        if held_out_seed is None
        else f"all frames of newly rendered videos, data.synthetic.seed={held_out_seed}",
        "seeds": sorted({spec.seed for spec in runs}),
        "table": table,
        "comparisons": comparisons,
        "runs": {
            spec.name: {
                "scheme": spec.scheme,
                "aug": spec.aug,
                "seed": spec.seed,
                "label_mean_iou": results[spec.name]["label_mean_iou"],
                "sample_mean_iou": results[spec.name]["sample_mean_iou"],
                "training": results[spec.name].get("training"),
            }
            for spec in runs
        },
        "generator": generator,
        "config": to_dict(base),
    }
    atomic_write_json(out / EXPERIMENT_FILE, experiment)
    logger.info("experiment written to %s", out / EXPERIMENT_FILE)
    return experiment
