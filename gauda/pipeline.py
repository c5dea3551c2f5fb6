"""The demo pipeline: the stages run in order on the built-in data, each writing into its own folder.

So far the data stage; later stages (autoencoders, diffusion, segmentation, GAUDA) are added here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from gauda.config import save
from gauda.data.dataset import load_splits
from gauda.data.figures import save_pair_grid
from gauda.data.inspection import grid_indices, inspect_dataset
from gauda.data.splits import save_split
from gauda.io import atomic_write_json
from gauda.presets import GaudaConfig

logger = logging.getLogger(__name__)


def run_data_stage(config: GaudaConfig, out: Path, progress: bool = True) -> dict:
    """Inspect the dataset, draw a sample grid, fix the split and fill the resized-frame cache."""
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    size = config.data.image_size
    report = inspect_dataset(config.data, size=size, progress=progress)
    report_json = report.to_json()
    if report.problems:
        logger.warning("the dataset has %d problem(s); see %s", len(report.problems), folder / "inspect.json")
    splits = load_splits(config.data, progress=progress)
    save_split(splits.summary, folder)
    indices = grid_indices(report, 12)
    frames = splits.train.frames
    pairs = [frames.read(i) for i in indices]
    save_pair_grid(
        folder / "samples.png",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        splits.class_names,
        titles=[splits.train.source.records[i].name for i in indices],
    )
    atomic_write_json(folder / "inspect.json", report_json)
    return report_json


def run_demo(config: GaudaConfig, out: str | Path, progress: bool = True) -> dict:
    """Run every stage implemented so far; returns the results, also written to ``results.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save(config, out / "config.yaml")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = run_data_stage(config, out, progress)
    timings["data"] = round(time.perf_counter() - start, 2)
    results = {"data": data, "timings": timings}
    atomic_write_json(out / "results.json", results)
    return results
