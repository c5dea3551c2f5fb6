"""The whole configuration: one slice per pipeline stage, and the named presets that fill them.

A stage receives only its own slice (``config.data`` for the data stage, ...); the run folder gets the
whole resolved configuration as ``config.yaml``. Later stages add their slices here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gauda import config as configuration
from gauda.augmentation.config import SCHEME_PRESETS, SchemeConfig
from gauda.autoencoders.config import IMAGE_AUTOENCODER_PRESETS, MASK_AUTOENCODER_PRESETS, AutoencoderConfig
from gauda.data.config import DATA_PRESETS, DataConfig
from gauda.diffusion.config import DIFFUSION_PRESETS, DiffusionConfig
from gauda.pipeline.config import DEMO_PRESETS, DemoConfig
from gauda.segmentation.config import SEGMENTATION_PRESETS, SegmentationConfig
from gauda.toy.config import TOY_PRESETS, ToyConfig

PRESET_NAMES: tuple[str, ...] = ("tiny", "paper")


@dataclass(frozen=True)
class GaudaConfig:
    data: DataConfig = field(default_factory=DataConfig)
    image_autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    mask_autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    toy: ToyConfig = field(default_factory=ToyConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    scheme: SchemeConfig = field(default_factory=SchemeConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)


# Each slice's named presets; a new stage adds its field above and one line here.
_STAGE_PRESETS: dict[str, Mapping[str, Any]] = {
    "data": DATA_PRESETS,
    "image_autoencoder": IMAGE_AUTOENCODER_PRESETS,
    "mask_autoencoder": MASK_AUTOENCODER_PRESETS,
    "toy": TOY_PRESETS,
    "segmentation": SEGMENTATION_PRESETS,
    "diffusion": DIFFUSION_PRESETS,
    "scheme": SCHEME_PRESETS,
    "demo": DEMO_PRESETS,
}

# tiny: a 2-core CPU runs the whole pipeline in minutes; paper: the paper's sizes, for GPUs.
PRESETS: dict[str, GaudaConfig] = {
    name: GaudaConfig(**{stage: presets[name] for stage, presets in _STAGE_PRESETS.items()})
    for name in PRESET_NAMES
}


def resolve_config(
    preset: str = "tiny",
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    updates: Mapping[str, Any] | None = None,
    file_keys: Sequence[str] | None = None,
) -> GaudaConfig:
    """Preset, then YAML file, then ``key=value`` overrides (dotted keys, e.g. ``data.image_size=64``),
    then ``updates`` from a command's own options."""
    if preset not in PRESETS:
        raise configuration.ConfigError(f"--preset {preset!r}: expected one of {', '.join(PRESET_NAMES)}")
    return configuration.resolve(GaudaConfig, PRESETS[preset], config_file, overrides, updates, file_keys)
