"""``gauda train <stage>``: one sub-command per trainable stage; each lives in its own module."""

from __future__ import annotations

import typer

from gauda.cli.train_autoencoder import autoencoder

train_app = typer.Typer(help="Train a stage: autoencoder, segmenter, ...", no_args_is_help=True)
train_app.command("autoencoder")(autoencoder)
