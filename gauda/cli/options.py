"""Options every command shares: preset, configuration file, single-value overrides, dry run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from gauda.config import ConfigError, to_yaml
from gauda.diffusion.config import SAMPLER_NAMES
from gauda.presets import GaudaConfig, resolve_config

Preset = Annotated[
    str,
    typer.Option(
        "--preset", help="Named preset: 'tiny' (2-core CPU, minutes) or 'paper' (the paper's sizes)."
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="YAML file with configuration values; they override the preset."),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override one value, KEY=VALUE with a dotted key, e.g. --set data.split.seed=3 (repeatable).",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the resolved configuration and exit.")]


def build_config(
    preset: str,
    config_file: Path | None,
    overrides: list[str] | None,
    updates: dict[str, Any] | None = None,
    file_keys: Sequence[str] | None = None,
) -> GaudaConfig:
    """Resolve the configuration; ``updates`` carries the command's own options and wins last;
    ``file_keys``: read only these slices of ``config_file`` (a run's own, on ``--resume``)."""
    return resolve_config(preset, config_file, overrides or (), updates, file_keys)


def run_configuration(
    run: Path, command: str, overrides: list[str] | None, slices: Sequence[str] | None = None
) -> GaudaConfig:
    """A run folder's own configuration (its ``config.yaml``; only its ``slices`` when given, so that a
    key another version of gauda wrote into a slice the command never reads cannot refuse it), changed
    by ``--set`` overrides; a clear error naming the file and the ``command`` that makes such folders."""
    config_file = run / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"--run {run}: {config_file} not found; expected a run folder of {command}")
    return resolve_config("tiny", config_file, overrides or (), file_keys=slices)


def resume_config_file(out: Path, command: str, conflicting: dict[str, object]) -> Path:
    """The ``config.yaml`` that ``--resume`` continues with; refuses each option in ``conflicting``
    (name -> its value) that was given, since it would change the run."""
    given = [name for name, value in conflicting.items() if value]
    if given:
        raise ConfigError(f"--resume continues with the run's own config.yaml; drop {', '.join(given)}")
    config_file = out / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"--resume: {config_file} not found; expected a run started with {command}")
    return config_file


def print_dry_run(config: GaudaConfig) -> None:
    """Print the resolved configuration as YAML, exactly as it would be saved in the run folder."""
    Console().print(to_yaml(config), end="", highlight=False, markup=False)


Sampler = Annotated[
    str | None, typer.Option("--sampler", help=f"{', '.join(SAMPLER_NAMES)} (default: the run's).")
]
SamplingSteps = Annotated[
    int | None, typer.Option("--steps", help="Denoising steps (default: the run's).", min=1)
]
