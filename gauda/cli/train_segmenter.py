"""``gauda train segmenter``: train a UNet ensemble or PHiSeg with the default, Adaptive Sampling or GAUDA
scheme (``gauda.augmentation.training.train_segmenter`` does the work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gauda.augmentation.config import SCHEME_NAMES
from gauda.augmentation.training import check_image_size, check_scheme, train_segmenter
from gauda.cli.data import Dataset, Root, Setting, data_updates
from gauda.cli.options import (
    ConfigFile,
    DryRun,
    Overrides,
    Preset,
    build_config,
    print_dry_run,
    resume_config_file,
)
from gauda.config import ConfigError
from gauda.distributed import is_main_process
from gauda.segmentation.config import MODEL_NAMES, SEGMENTER_SLICES
from gauda.segmentation.trainer import FORK_FILE


def segmenter(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints, metrics.csv, config, split).")],
    model: Annotated[
        str | None,
        typer.Option("--model", help=f"Model: {' or '.join(MODEL_NAMES)} (default: the preset's, ensemble)."),
    ] = None,
    aug: Annotated[
        bool, typer.Option("--aug", help="Classic augmentation: crop, flip, rotation (each with p=0.2).")
    ] = False,
    scheme: Annotated[
        str | None,
        typer.Option(
            "--scheme",
            help=f"Training scheme: {', '.join(SCHEME_NAMES)} (default: the configuration's, default).",
        ),
    ] = None,
    generator: Annotated[
        Path | None,
        typer.Option(
            "--generator", help="Diffusion run (gauda train diffusion --out RUN) for --scheme gauda."
        ),
    ] = None,
    asynchronous: Annotated[
        bool | None,
        typer.Option(
            "--async/--sync",
            help="GAUDA: generate pairs in a background thread (default) or when needed (exact timing).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in OUT from its last checkpoint with its config.yaml "
            "(--set may change segmentation.steps).",
        ),
    ] = False,
    save_fork: Annotated[
        bool,
        typer.Option(
            "--save-fork",
            help="Also save the state just before the first validation (fork.safetensors), from which "
            "runs of other schemes can start with --fork OUT.",
        ),
    ] = False,
    fork: Annotated[
        Path | None,
        typer.Option(
            "--fork",
            help="Start from this run's fork.safetensors (trained with --save-fork, same data and model, "
            "any scheme): every scheme trains the same steps until its first validation, so they are "
            "skipped, and the run is the one trained from step 0.",
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
    """Train a Bayesian segmenter: validation (mean IoU, class-wise uncertainty) every val_every steps,
    best.safetensors and last.safetensors, metrics.csv, config.yaml and split.json in OUT."""
    updates: dict[str, Any] = data_updates(dataset, root, setting)
    if aug:
        updates["data"]["augment"] = {"enabled": True}
    if model is not None:
        updates["segmentation"] = {"model": model}
    if scheme is not None and scheme not in SCHEME_NAMES:
        raise ConfigError(f"--scheme {scheme!r}: expected one of {', '.join(SCHEME_NAMES)}")
    scheme_updates: dict[str, Any] = {"name": scheme} if scheme is not None else {}
    if generator is not None:
        scheme_updates["generator"] = str(generator)
    if asynchronous is not None:
        scheme_updates["asynchronous"] = asynchronous
    if scheme_updates:
        updates["scheme"] = scheme_updates
    if fork is not None and save_fork:
        raise ConfigError("--fork with --save-fork: a forked run starts after the step a fork is saved at")
    if fork is not None and resume:
        raise ConfigError("--fork with --resume: a resumed run continues from its own checkpoint; give one")
    if fork is not None and not (fork / FORK_FILE).is_file():
        raise ConfigError(f"--fork {fork}: no {FORK_FILE}; expected a run trained with --save-fork")
    if resume:  # --set may change what a resumed run may (segmentation.steps, ...)
        config_file = resume_config_file(out, "gauda train segmenter", {"--config": config_file})
    config = build_config(preset, config_file, overrides, updates, SEGMENTER_SLICES if resume else None)
    check_image_size(config)
    check_scheme(config)
    if dry_run:
        print_dry_run(config)
        return
    summary = train_segmenter(
        config, out, resume=resume, fork=fork / FORK_FILE if fork else None, save_fork=save_fork
    )
    if is_main_process():  # once, not once per torchrun process
        typer.echo(json.dumps(summary, indent=2))
