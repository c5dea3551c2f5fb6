"""A finished diffusion run as the stages downstream read it: the denoiser and its two autoencoders.

The run records its autoencoder runs in ``autoencoders.json`` (and in ``model.safetensors``) as paths
relative to the run folder, so that a project moved or copied as a whole still finds its own
autoencoders. When they moved on their own, the user repoints them by editing ``autoencoders.json``
(absolute paths, or relative to the run folder); the file wins over the checkpoint's record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gauda.checkpoint import CheckpointError, load_checkpoint
from gauda.config import ConfigError, from_dict
from gauda.diffusion.config import DiffusionConfig
from gauda.diffusion.denoiser import DiffusionUNet

MODEL_FILE = "model.safetensors"
AUTOENCODERS_FILE = "autoencoders.json"
MODALITIES = ("image", "mask")


def relative_autoencoders(run_dir: Path, runs: dict[str, str]) -> dict[str, str]:
    """The autoencoder run folders ``runs`` as recorded in the run ``run_dir``: relative to it."""
    here = Path(run_dir).resolve()
    return {name: os.path.relpath(Path(runs[name]).resolve(), here) for name in MODALITIES}


def resolve_autoencoders(run_dir: Path, recorded: Any, source: Path) -> dict[str, str]:
    """Absolute autoencoder run folders from a ``recorded`` mapping read from ``source`` (relative paths
    are relative to ``run_dir``); a clear error naming the file to edit when one is missing."""
    edit = run_dir / AUTOENCODERS_FILE
    if not isinstance(recorded, dict) or not all(isinstance(recorded.get(m), str) for m in MODALITIES):
        raise ConfigError(f'{source}: expected {{"image": PATH, "mask": PATH}}, got {recorded!r}')
    resolved = {}
    for name in MODALITIES:
        path = Path(recorded[name])
        full = path if path.is_absolute() else run_dir / path
        if not full.is_dir():
            raise ConfigError(
                f"{source}: the run's {name} autoencoder {recorded[name]} ({full.resolve()}) does not exist; "
                f'if it moved, set "{name}" in {edit} to its run folder (absolute or relative to {run_dir})'
            )
        resolved[name] = str(full.resolve())
    return resolved


def recorded_autoencoders(run_dir: Path, fallback: Any = None) -> dict[str, str]:
    """The absolute autoencoder run folders of the diffusion run ``run_dir``: from its
    ``autoencoders.json``, else from ``fallback`` (the checkpoint's record)."""
    file = run_dir / AUTOENCODERS_FILE
    if file.is_file():
        try:
            recorded = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{file}: not readable JSON ({error})") from None
        return resolve_autoencoders(run_dir, recorded, file)
    if fallback is None:
        raise ConfigError(f"{file}: not found; expected the autoencoder runs of the diffusion run {run_dir}")
    return resolve_autoencoders(run_dir, fallback, run_dir / MODEL_FILE)


def load_diffusion(run: str | Path, device: str = "cpu") -> tuple[DiffusionUNet, dict[str, Any]]:
    """The EMA denoiser of a finished diffusion run (or its ``model.safetensors``), in eval mode.

    Returns the model and its information: ``config`` (DiffusionConfig), ``class_names``,
    ``class_frequency`` (C,), ``image_channels``, ``mask_channels``, ``latent_size``, ``autoencoders``
    (absolute run folders).
    """
    path = Path(run)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no trained diffusion model; expected the {MODEL_FILE} of a finished run"
        )
    state = load_checkpoint(path, device=device)
    if "autoencoders" not in state or "latent_size" not in state:
        raise CheckpointError(f"{path}: not a diffusion checkpoint (no autoencoders or latent size recorded)")
    config = from_dict(DiffusionConfig, state["config"])
    channels = state["image_channels"] + state["mask_channels"]
    model = DiffusionUNet(channels, len(state["class_names"]), state["latent_size"], config)
    model.load_state_dict(state["model"])
    info = {key: state[key] for key in ("class_names", "class_frequency", "image_channels", "mask_channels",
                                         "latent_size")}  # fmt: skip
    info["class_names"] = tuple(info["class_names"])
    info["config"] = config
    info["autoencoders"] = recorded_autoencoders(path.parent, state["autoencoders"])
    return model.to(device).eval(), info
