"""``gauda evaluate segmenter`` (a trained run on a split) and ``gauda evaluate masks`` (PNG mask folders):
the paper's table of one model: per-class IoU with Dice and AP, then label mean, sample mean and median."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gauda.checkpoint import CheckpointError
from gauda.cli.options import Overrides, run_configuration
from gauda.config import ConfigError, to_dict
from gauda.evaluation.masks import evaluate_mask_folders
from gauda.io import atomic_write_json
from gauda.segmentation.config import SEGMENTER_SLICES
from gauda.segmentation.evaluate import CHECKPOINT_NAMES, evaluate_run
from gauda.segmentation.trainer import config_changes

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def _cell(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def print_table(summary: dict[str, Any], title: str) -> None:
    """The paper's table: one row per class, then label mean, sample mean and sample median (IoU, Dice)."""
    per_class = summary["per_class"]
    columns = ["iou", "dice"] + [
        key for key in ("ap", "uncertainty") if any(key in v for v in per_class.values())
    ]
    table = Table("class", *(c.upper() if c != "uncertainty" else "UE (Eq. 8)" for c in columns), title=title)
    for name, values in per_class.items():
        table.add_row(name, *(_cell(values.get(c)) for c in columns))
    blank = [""] * (len(columns) - 2)
    table.add_section()
    table.add_row("label mean", _cell(summary["label_mean_iou"]), _cell(summary["label_mean_dice"]),
                  *([_cell(summary["label_mean_ap"])] if "ap" in columns else []),
                  *([""] if "uncertainty" in columns else []))  # fmt: skip
    table.add_row(
        "sample mean", _cell(summary["sample_mean_iou"]), _cell(summary["sample_mean_dice"]), *blank
    )
    table.add_row(
        "sample median", _cell(summary["sample_median_iou"]), _cell(summary["sample_median_dice"]), *blank
    )
    console = Console()
    console.print(table)
    console.print("– : no estimate (class absent from predictions and ground truth, or never predicted)")


def _changes_name(own: dict[str, Any], changed: dict[str, Any]) -> str:
    """``key=value`` of each changed data option, in a file name (a digest when that gets long)."""
    keys = config_changes(own, changed)
    parts = []
    for key in keys:
        value: Any = changed
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        parts.append(f"{key}={value}")
    text = re.sub(r"[^A-Za-z0-9._=,+-]", "_", "-".join(parts))
    if len(text) <= 60:
        return text
    return "data" + hashlib.sha256(text.encode()).hexdigest()[:10]


def segmenter(
    run: Annotated[Path, typer.Option("--run", help="Run folder of 'gauda train segmenter'.")],
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="Split to score: train, val, test, or all (every frame; with --set data.synthetic.seed=N, "
            "newly rendered videos that no model has seen).",
        ),
    ] = "test",
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help=f"Which checkpoint: {' or '.join(CHECKPOINT_NAMES)}.")
    ] = "best",
    as_json: AsJson = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="JSON file to write (default: RUN/evaluation_<split>.json; on data other than the run's "
            "own, changed by --set data.*, RUN/evaluation_<split>-<the changes>.json).",
        ),
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Score a trained segmenter on a split (mean of N posterior samples, Eq. 7) and write
    evaluation_<split>.json (with every frame's IoU) into the run folder."""
    config = run_configuration(run, "gauda train segmenter", overrides, SEGMENTER_SLICES)
    # a score on other data never takes the name of the score on the run's own data (which the
    # experiment and the demo read back)
    own = replace(
        run_configuration(run, "gauda train segmenter", None, SEGMENTER_SLICES).data,
        cache_dir=config.data.cache_dir,
    )
    name = split if config.data == own else f"{split}-{_changes_name(to_dict(own), to_dict(config.data))}"
    try:
        summary = evaluate_run(run, config.data, config.segmentation, split, checkpoint,
                               progress=not as_json, name=name, out=out)  # fmt: skip
    except CheckpointError as error:
        raise ConfigError(str(error)) from None
    written = out if out is not None else run / f"evaluation_{name}.json"
    Console(stderr=True).print(f"scores of every frame: {written}", highlight=False)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        step, name = summary["step"], summary["checkpoint"]
        title = f"{config.segmentation.model}, {split} split, step {step} ({name})"
        print_table(summary, title)


def masks(
    pred: Annotated[Path, typer.Option("--pred", help="Folder of predicted masks <stem>.png (class ids).")],
    gt: Annotated[
        Path, typer.Option("--gt", help="Folder of true masks <stem>.png (255 = ignore), or a dataset.")
    ],
    classes: Annotated[Path, typer.Option("--classes", help="JSON list of class names, e.g. classes.json.")],
    as_json: AsJson = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON (with every frame's scores) here.")
    ] = None,
) -> None:
    """Score any folder of predicted masks against ground truth of the same stems (IoU and Dice; AP needs
    probabilities, so it is not reported for masks)."""
    table = evaluate_mask_folders(pred, gt, classes)
    if out is not None:
        atomic_write_json(out, table.to_json(frames=True))
    summary = table.to_json()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_table(summary, f"{pred} against {gt}")
