"""The ``gauda`` command line: one sub-command group per pipeline stage; no logic lives here."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler

from gauda.checkpoint import CheckpointError
from gauda.cli.augment import augment
from gauda.cli.data import data_app
from gauda.cli.demo import demo
from gauda.cli.evaluate import evaluate_app
from gauda.cli.experiment import experiment
from gauda.cli.sample import sample
from gauda.cli.toy import toy
from gauda.cli.train import train_app
from gauda.config import ConfigError
from gauda.data.errors import DataError
from gauda.distributed import teardown_distributed

app = typer.Typer(
    name="gauda",
    help="GAUDA: uncertainty-guided generative augmentation for surgical segmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.command("augment")(augment)
app.command("demo")(demo)
app.command("experiment")(experiment)
app.command("sample")(sample)
app.command("toy")(toy)


def main() -> None:
    """Entry point of the ``gauda`` console script: clear one-line errors for bad input."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False)],
    )
    try:
        app()
    except (ConfigError, DataError, CheckpointError, FloatingPointError) as error:
        _fail(str(error))  # FloatingPointError: a training loss went NaN (check_finite_loss)
    except OSError as error:  # a read-only folder, a full disk, while writing a result
        if error.filename is None:
            raise
        _fail(f"{error.filename}: {error.strerror}")
    finally:
        teardown_distributed()


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    sys.exit(2)
