"""``gauda demo``: the pipeline end to end on the built-in data (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gauda.cli.data import Dataset, Root, data_updates
from gauda.cli.options import ConfigFile, DryRun, Overrides, Preset, build_config, print_dry_run
from gauda.pipeline.report import cited_experiment, write_report
from gauda.pipeline.runner import run_pipeline, stage_names


def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Demo folder: one subfolder per stage, the report.")
    ] = Path("runs/demo"),
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force",
            help="Redo this stage even if it finished (repeatable); the stages that read it follow. Stages: "
            "data, autoencoder_mask, autoencoder_image, diffusion, samples, segmentation_<scheme>, "
            "generator, toy.",
        ),
    ] = None,
    dataset: Dataset = None,
    root: Root = None,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Run every stage of GAUDA on one dataset (autoencoders, diffusion, per-class samples, segmenters
    trained with default, Adaptive Sampling and GAUDA, the generator's evaluation, the 2D simulation)
    and write report.html and results.json. A stage finished with the same configuration is reused, an
    interrupted one continues from its checkpoint."""
    config = build_config(preset, config_file, overrides, data_updates(dataset, root, None))
    cited_experiment(config)  # a demo.experiment that cannot be read is refused before any stage runs
    if dry_run:
        print_dry_run(config)
        typer.echo(f"# stages: {', '.join(stage_names(config))}")
        return
    run_pipeline(config, out, force=force or (), console=Console(stderr=True), write_report=write_report)
