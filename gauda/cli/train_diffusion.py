"""``gauda train diffusion``: train the joint latent diffusion model on two trained autoencoders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
from gauda.diffusion.trainer import train_diffusion
from gauda.distributed import is_main_process


def diffusion(
    out: Annotated[Path, typer.Option("--out", help="Run folder (latents, checkpoints, metrics, model).")],
    image_autoencoder: Annotated[
        Path | None,
        typer.Option(
            "--image-autoencoder", help="Run folder of the trained image VQ-GAN (not with --resume)."
        ),
    ] = None,
    mask_autoencoder: Annotated[
        Path | None,
        typer.Option("--mask-autoencoder", help="Run folder of the trained mask VQ-GAN (not with --resume)."),
    ] = None,
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
    """Train the denoiser of Eq. 5 on concat(image latents, mask latents); writes model.safetensors to OUT."""
    if resume:
        conflicting = {
            "--config": config_file,
            "--set": overrides,
            "--dataset": dataset,
            "--root": root,
            "--image-autoencoder": image_autoencoder,
            "--mask-autoencoder": mask_autoencoder,
        }
        config_file = resume_config_file(out, "gauda train diffusion", conflicting)
    elif image_autoencoder is None or mask_autoencoder is None:
        raise ConfigError("--image-autoencoder and --mask-autoencoder: both required (trained run folders)")
    slices = ("data", "diffusion") if resume else None  # a resumed run reads only its own slices
    config = build_config(preset, config_file, overrides, data_updates(dataset, root, None), slices)
    if dry_run:
        print_dry_run(config)
        return
    metrics = train_diffusion(config, out, image_autoencoder, mask_autoencoder, resume=resume)
    if is_main_process():  # once, not once per torchrun process
        typer.echo(json.dumps(metrics, indent=2))
