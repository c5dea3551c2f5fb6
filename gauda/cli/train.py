"""``gauda train <stage>``: one sub-command per trainable stage; each lives in its own module."""

from __future__ import annotations

import typer

from gauda.cli.train_autoencoder import autoencoder
from gauda.cli.train_diffusion import diffusion
from gauda.cli.train_segmenter import segmenter

train_app = typer.Typer(help="Train a stage: autoencoder, segmenter, ...", no_args_is_help=True)
train_app.command("autoencoder")(autoencoder)
train_app.command("segmenter")(segmenter)
train_app.command("diffusion")(diffusion)
