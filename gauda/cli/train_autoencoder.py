"""``gauda train autoencoder``: train the image or the mask VQ-GAN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gauda.autoencoders.trainer import train_autoencoder
from gauda.cli.data import Dataset, Root, data_updates
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


def autoencoder(
    modality: Annotated[
        str, typer.Option("--modality", help="Which autoencoder: 'image' (Eq. 3) or 'mask' (Eq. 4).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints, metrics, reconstructions).")],
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the run in OUT from its last checkpoint, with its config.yaml."
        ),
    ] = False,
    dataset: Dataset = None,
    root: Root = None,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Train a VQ-GAN; writes model.safetensors, metrics.json and reconstructions.png into OUT."""
    if modality not in ("image", "mask"):
        raise ConfigError(f"--modality {modality!r}: expected 'image' or 'mask'")
    if resume:
        conflicting = {"--config": config_file, "--set": overrides, "--dataset": dataset, "--root": root}
        config_file = resume_config_file(out, "gauda train autoencoder", conflicting)
    # a resumed run reads only the slices it trains with from its config.yaml (another version's keys in
    # other slices do not refuse it)
    slices = ("data", f"{modality}_autoencoder") if resume else None
    config = build_config(preset, config_file, overrides, data_updates(dataset, root, None), slices)
    if dry_run:
        print_dry_run(config)
        return
    metrics = train_autoencoder(config, modality, out, resume=resume)  # type: ignore[arg-type]
    if is_main_process():  # once, not once per torchrun process
        typer.echo(json.dumps(metrics, indent=2))
