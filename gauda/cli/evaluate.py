"""``gauda evaluate <what>``: evaluation commands; each lives in its own module."""

from __future__ import annotations

import typer

from gauda.cli import evaluate_autoencoder, evaluate_generator, evaluate_segmenter

evaluate_app = typer.Typer(help="Evaluate trained models and predicted masks.", no_args_is_help=True)
evaluate_app.command("segmenter")(evaluate_segmenter.segmenter)
evaluate_app.command("masks")(evaluate_segmenter.masks)
evaluate_app.command("generator")(evaluate_generator.generator)
evaluate_app.command("autoencoder")(evaluate_autoencoder.autoencoder)
