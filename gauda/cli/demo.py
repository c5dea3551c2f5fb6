"""``gauda demo``: the pipeline end to end on the built-in data (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gauda.cli.data import Dataset, Root, data_updates
from gauda.cli.options import ConfigFile, DryRun, Overrides, Preset, build_config, print_dry_run
from gauda.pipeline import run_demo


def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder for every stage's output.")] = Path(
        "runs/demo"
    ),
    dataset: Dataset = None,
    root: Root = None,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Run the pipeline stages implemented so far (currently: the data stage) and write results.json."""
    config = build_config(preset, config_file, overrides, data_updates(dataset, root, None))
    if dry_run:
        print_dry_run(config)
        return
    console = Console(stderr=True)
    console.rule("[bold]data stage")
    results = run_demo(config, out)
    data = results["data"]
    rarest = min(data["classes"], key=lambda c: c["frames"])
    console.print(
        f"{data['num_frames']} frames, {data['num_videos']} videos, {len(data['classes'])} classes; "
        f"rarest: {rarest['name']} in {100 * rarest['frame_fraction']:.1f}% of frames"
    )
    console.print(f"results: {Path(out) / 'results.json'}; samples: {Path(out) / 'data' / 'samples.png'}")
