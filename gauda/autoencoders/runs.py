"""Saving and loading a trained autoencoder (``model.safetensors`` in its run folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gauda.autoencoders.config import AutoencoderConfig, AutoencoderStageConfig
from gauda.autoencoders.vqgan import VQGAN
from gauda.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gauda.config import from_dict, to_dict

MODEL_FILE = "model.safetensors"


def autoencoder_slice(config: AutoencoderStageConfig, modality: str) -> AutoencoderConfig:
    if modality == "image":
        return config.image_autoencoder
    if modality == "mask":
        return config.mask_autoencoder
    raise ValueError(f"--modality {modality!r}: expected 'image' or 'mask'")


def save_autoencoder(
    path: Path, model: VQGAN, modality: str, class_names: tuple[str, ...], config: AutoencoderConfig
) -> Path:
    return save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "modality": modality,
            "class_names": list(class_names),
            "config": to_dict(config),
            "in_channels": model.in_channels,
            "out_channels": model.out_channels,
        },
    )


def load_autoencoder(run: str | Path, device: str = "cpu") -> tuple[VQGAN, dict[str, Any]]:
    """The trained autoencoder of a run folder (or a ``model.safetensors`` path), in eval mode.

    Returns the model and its information: ``modality``, ``class_names`` and ``config``.
    """
    path = Path(run)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no trained autoencoder; expected the {MODEL_FILE} of a finished run")
    state = load_checkpoint(path, device=device)
    if "modality" not in state:
        raise CheckpointError(f"{path}: not an autoencoder checkpoint (no modality recorded)")
    config = from_dict(AutoencoderConfig, state["config"])
    model = VQGAN(state["in_channels"], state["out_channels"], config)
    model.load_state_dict(state["model"])
    info = {"modality": state["modality"], "class_names": tuple(state["class_names"]), "config": config}
    return model.to(device).eval(), info
