"""The demo's training budget: every training stage's steps, and the cadences counted in steps, scaled
by ``demo.training_scale`` so that the whole pipeline fits a time budget without changing any model.

Only the demo applies it: ``gauda train ...`` always trains the configured steps. The scaled
configuration is what the demo's stages run, fingerprint and report; the demo folder's ``config.yaml``
keeps the unscaled one, so that it can be passed back with ``--config``.
"""

from __future__ import annotations

import dataclasses
import logging

from gauda.presets import GaudaConfig

logger = logging.getLogger(__name__)

# Per training slice: its step count, then the fields counted in steps that scale with it (0 stays 0,
# where it means "never").
_STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "mask_autoencoder": ("steps", "checkpoint_every", "adversarial_start", "dead_code_every"),
    "image_autoencoder": (
        "steps",
        "checkpoint_every",
        "adversarial_start",
        "dead_code_every",
        "segmentation_start",
    ),
    "diffusion": ("steps", "checkpoint_every", "warmup_steps"),
    "segmentation": ("steps", "val_every"),
}


def _scaled(value: int, scale: float) -> int:
    return 0 if value == 0 else max(1, round(value * scale))


def scale_training(config: GaudaConfig, scale: float | None = None) -> GaudaConfig:
    """``config`` with the training steps of the autoencoders, the diffusion model and the segmenters
    (and their step-counted cadences) times ``scale``, or by default each slice's ``demo`` scale
    (``demo.training_scale``, or ``demo.<slice>_scale``: ``mask_autoencoder_scale``, ...)."""
    scales = {name: config.demo.scale_of(name) if scale is None else scale for name in _STEP_FIELDS}
    if all(value == 1 for value in scales.values()):
        return config
    changes = {}
    for name, fields in _STEP_FIELDS.items():
        factor = scales[name]
        if factor == 1:
            continue
        stage = getattr(config, name)
        values = {field: _scaled(getattr(stage, field), factor) for field in fields}
        values[fields[1]] = min(values[fields[1]], values["steps"])  # a checkpoint or validation by the end
        changes[name] = dataclasses.replace(stage, **values)
        logger.info("demo scale %g: %s.steps %d -> %d", factor, name, stage.steps, values["steps"])
    return dataclasses.replace(config, **changes)
