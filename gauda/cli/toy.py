"""``gauda toy``: the paper's 2D simulation (Supplementary 8.2 and 8.3) in seconds on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gauda.cli.options import ConfigFile, DryRun, Overrides, Preset, build_config, print_dry_run
from gauda.config import save
from gauda.io import atomic_write_json
from gauda.toy.experiment import run_toy, summarize
from gauda.toy.figures import save_figures


def toy(
    out: Annotated[Path, typer.Option("--out", help="Folder for toy.json, config.yaml and the figures.")],
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", help="Runs per scheme (default: the preset's toy.seeds, 5).", min=1),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print toy.json instead of a table.")] = False,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Compare sampling by validation accuracy with sampling by uncertainty, and pre-train with online
    augmentation, on imbalanced 2D points with a 20-member ensemble; write toy.json and PNG figures."""
    config = build_config(preset, config_file, overrides, {"toy": {"seeds": seeds}} if seeds else None)
    if dry_run:
        print_dry_run(config)
        return
    out.mkdir(parents=True, exist_ok=True)
    save(config, out / "config.yaml")
    start = time.perf_counter()
    results = run_toy(config.toy, progress=not as_json)
    summary = summarize(results)
    atomic_write_json(out / "toy.json", summary)
    figures = save_figures(out, results)
    elapsed = time.perf_counter() - start
    console = Console(stderr=True)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    console.print(f"{len(summary['seeds'])} seeds in {elapsed:.1f} s; {out / 'toy.json'}; "
                  f"figures: {', '.join(p.name for p in figures)}")  # fmt: skip


def _print_summary(summary: dict) -> None:
    table = Table("scheme", "test accuracy", "to 95%", "minority")
    for comparison in ("sampling", "augmentation"):
        for scheme, values in summary[comparison].items():
            share = values.get("minority_share")
            accuracy = f"{values['test_accuracy_mean']:.4f} ± {values['test_accuracy_std']:.4f}"
            share_text = "" if share is None else f"{100 * share:.1f}%"
            table.add_row(f"{comparison}: {scheme}", accuracy, str(values["steps_to_95"]), share_text)
    console = Console()
    console.print(table)
    console.print(f"test accuracy: {summary['metric']}", highlight=False)
