"""``gauda train segmenter``: train a UNet ensemble or PHiSeg (default scheme, no resampling)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gauda.cli.data import Dataset, Root, Setting, data_updates
from gauda.cli.options import ConfigFile, DryRun, Overrides, Preset, build_config, print_dry_run
from gauda.config import ConfigError, to_dict
from gauda.data.dataset import load_splits
from gauda.data.splits import save_split
from gauda.presets import GaudaConfig
from gauda.segmentation.bayesian import build_segmenter
from gauda.segmentation.config import MODEL_NAMES
from gauda.segmentation.trainer import SegmentationTrainer


def check_image_size(config: GaudaConfig) -> None:
    """Every level of the networks halves the frames: their side must be divisible by 2**(levels - 1)."""
    size, multiple = config.data.image_size, config.segmentation.min_size_multiple
    if size is not None and size % multiple:
        raise ConfigError(
            f"data.image_size {size}: expected a multiple of {multiple} for "
            f"{len(config.segmentation.channels)} levels (segmentation.channels)"
        )


def segmenter(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints, metrics.csv, config, split).")],
    model: Annotated[
        str | None,
        typer.Option("--model", help=f"Model: {' or '.join(MODEL_NAMES)} (default: the preset's, ensemble)."),
    ] = None,
    aug: Annotated[
        bool, typer.Option("--aug", help="Classic augmentation: crop, flip, rotation (each with p=0.2).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in OUT from its last checkpoint with its config.yaml "
            "(--set may change segmentation.steps).",
        ),
    ] = False,
    dataset: Dataset = None,
    root: Root = None,
    setting: Setting = None,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Train a Bayesian segmenter: validation (mean IoU, class-wise uncertainty) every val_every steps,
    best.safetensors and last.safetensors, metrics.csv, config.yaml and split.json in OUT."""
    updates: dict[str, Any] = data_updates(dataset, root, setting)
    if aug:
        updates["data"]["augment"] = {"enabled": True}
    if model is not None:
        updates["segmentation"] = {"model": model}
    if resume:
        if config_file is not None:
            raise ConfigError(
                "--resume continues with OUT/config.yaml; drop --config (--set may change steps)"
            )
        config_file = out / "config.yaml"
        if not config_file.is_file():
            raise ConfigError(
                f"--resume: {config_file} not found; expected a run started with gauda train segmenter"
            )
    elif (out / "last.safetensors").exists() and not dry_run:
        raise ConfigError(
            f"--out {out}: holds a run already (last.safetensors); pass --resume or choose a new folder"
        )
    config = build_config(preset, config_file, overrides, updates)
    check_image_size(config)
    if dry_run:
        print_dry_run(config)
        return
    splits = load_splits(config.data)
    out.mkdir(parents=True, exist_ok=True)
    save_split(splits.summary, out)
    network = build_segmenter(config.segmentation, in_channels=3, num_classes=len(splits.class_names))
    trainer = SegmentationTrainer(
        network, config.segmentation, splits.train, splits.val, splits.class_names, out, to_dict(config)
    )
    results = trainer.fit(resume=resume)
    summary = {
        "run": str(out),
        "model": config.segmentation.model,
        "step": trainer.step,
        "best_step": trainer.best_step,
        "best_val_label_mean_iou": trainer.best_score,
        "last_val_label_mean_iou": results.table.label_mean_iou if results is not None else None,
    }
    typer.echo(json.dumps(summary, indent=2))
