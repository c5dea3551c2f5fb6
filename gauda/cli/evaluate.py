"""``gauda evaluate <what>``: evaluation commands; each lives in its own module."""

from __future__ import annotations

import typer

evaluate_app = typer.Typer(help="Evaluate trained models and predicted masks.", no_args_is_help=True)
