"""``gauda experiment``: the paper's comparison of training schemes (``gauda.experiment`` does the work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gauda.augmentation.config import EXPERIMENT_SCHEMES, base_scheme
from gauda.augmentation.training import check_scheme
from gauda.cli.data import Dataset, Root, Setting, data_updates
from gauda.cli.options import ConfigFile, DryRun, Overrides, Preset, build_config, print_dry_run
from gauda.config import ConfigError
from gauda.experiment.experiment import run_experiment
from gauda.experiment.runner import RunSpec, plan_runs, run_config
from gauda.segmentation.config import MODEL_NAMES

AUG_CHOICES: dict[str, tuple[bool, ...]] = {"off": (False,), "on": (True,), "both": (False, True)}


def _print_table(experiment: dict[str, Any]) -> None:
    columns = experiment["columns"]
    where = experiment.get("scored_on", "test split")
    table = Table("class", *columns, title=f"IoU on the {where}, mean ± std over seeds {experiment['seeds']}")
    for row, cells in experiment["table"].items():
        if row == "label mean":
            table.add_section()
        table.add_row(
            row,
            *(
                "–" if cells[c]["mean"] is None else f"{cells[c]['mean']:.3f} ± {cells[c]['std']:.3f}"
                for c in columns
            ),
        )
    console = Console()
    console.print(table)
    for comparison in experiment["comparisons"]:
        d, p = comparison["cohens_d"], comparison["wilcoxon_p"]
        seeds = comparison.get("seed_differences") or {}
        per_seed = ", ".join(f"{v:+.3f}" for v in (seeds.get("per_seed") or {}).values())
        boot = comparison.get("video_bootstrap") or {}
        interval = (
            f"frame-mean difference {boot['mean_difference']:+.3f} "
            f"[{boot['low']:+.3f}, {boot['high']:+.3f}] over {boot['num_videos']} videos"
            if boot.get("mean_difference") is not None
            else "no video bootstrap"
        )
        console.print(
            f"{comparison['scheme']} vs {comparison['baseline']}: label mean by seed {per_seed or '–'}; "
            f"{interval}; Cohen's d {'–' if d is None else f'{d:+.3f}'}, Wilcoxon p "
            f"{'–' if p is None else f'{p:.3g}'} ({comparison['num_frames']} test frames)",
            highlight=False,
        )


def experiment(
    out: Annotated[
        Path, typer.Option("--out", help="Experiment folder (runs, table, curves, experiment.json).")
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", help=f"Model: {' or '.join(MODEL_NAMES)} (default: the preset's)."),
    ] = None,
    schemes: Annotated[
        str,
        typer.Option(
            "--schemes",
            help=f"Comma-separated schemes among {', '.join(EXPERIMENT_SCHEMES)} (the gauda-* names are "
            "GAUDA's controls and ablations, docs/schemes.md).",
        ),
    ] = "default,adaptive,gauda",
    aug: Annotated[str, typer.Option("--aug", help="Classic augmentation: off, on or both.")] = "both",
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds 0 .. N-1 per column.", min=1)] = 3,
    generator: Annotated[
        Path | None,
        typer.Option(
            "--generator", help="Diffusion run (gauda train diffusion --out RUN), needed for gauda."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print experiment.json instead of tables.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=1,
            help="Runs trained side by side, each in a worker process with 1/N of the torch threads "
            "(2 on a 2-core CPU: the tiny models use two threads poorly).",
        ),
    ] = 1,
    held_out_seed: Annotated[
        int | None,
        typer.Option(
            "--held-out-seed",
            help="Score every run on all frames of newly rendered synthetic videos of this seed "
            "(data.synthetic.seed; 800 frames at tiny) instead of the test split.",
        ),
    ] = None,
    dataset: Dataset = None,
    root: Root = None,
    setting: Setting = None,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Train every scheme x augmentation x seed (finished runs are reused, stopped ones resumed), score
    each on the test split, and write the paper's table, GAUDA's effect sizes (Cohen's d, Wilcoxon
    signed-rank over test frames) and the sorted per-frame IoU curves."""
    if aug not in AUG_CHOICES:
        raise ConfigError(f"--aug {aug!r}: expected one of {', '.join(AUG_CHOICES)}")
    updates: dict[str, Any] = data_updates(dataset, root, setting)
    if model is not None:
        updates["segmentation"] = {"model": model}
    if generator is not None:
        updates["scheme"] = {"generator": str(generator)}
    config = build_config(preset, config_file, overrides, updates)
    names = [name.strip() for name in schemes.split(",") if name.strip()]
    runs = plan_runs(names, AUG_CHOICES[aug], list(range(seeds)))
    # refuse a missing generator before printing a plan that cannot run
    if any(base_scheme(name) == "gauda" for name in names):
        check_scheme(run_config(config, RunSpec("gauda", False, 0), config.scheme.generator))
    if dry_run:
        print_dry_run(config)
        typer.echo(f"# {len(runs)} runs: {', '.join(spec.name for spec in runs)}")
        return
    result = run_experiment(
        config,
        runs,
        out,
        config.scheme.generator,
        progress=not as_json,
        jobs=jobs,
        held_out_seed=held_out_seed,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_table(result)
        typer.echo(f"written: {out / 'experiment.json'}, {out / 'table.md'}, {out / 'frame_iou_curves.png'}")
