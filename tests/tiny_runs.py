"""Configurations and runs small enough for tests: 16 px synthetic frames, networks of a few channels.

``tiny_config`` gives the whole pipeline's configuration; ``train_tiny_generator`` trains both
autoencoders and a diffusion model for a few steps (seconds), which is all that tests of the stages
downstream of the generator need (GAUDA's scheme, the generator's evaluation): the pairs are noise-like,
but every shape, file and code path is the real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gauda.autoencoders.trainer import train_autoencoder
from gauda.config import to_dict
from gauda.data.dataset import load_splits
from gauda.diffusion.trainer import train_diffusion
from gauda.presets import GaudaConfig, resolve_config
from gauda.segmentation.bayesian import build_segmenter
from gauda.segmentation.trainer import SegmentationTrainer

DATA = [
    "data.image_size=16", "data.synthetic.num_videos=5", "data.synthetic.frames_per_video=2",
    "data.synthetic.image_size=32", "data.split.fractions=[0.6, 0.2, 0.2]",
]  # fmt: skip
AUTOENCODER = {"channels": "[8, 16]", "codebook_size": 16, "batch_size": 2, "steps": 2, "checkpoint_every": 2,
               "discriminator_channels": "[8, 16]", "adversarial_start": 100,
               "latent_channels": 2}  # fmt: skip
DIFFUSION = {"channels": "[8, 16]", "num_res_blocks": 1, "attention_resolutions": "[4]", "num_heads": 2,
             "batch_size": 3, "checkpoint_every": 3, "warmup_steps": 2, "encode_batch_size": 4,
             "sampling_steps": 2}  # fmt: skip
SEGMENTATION = {"channels": "[4, 8]", "ensemble_size": 2, "latent_levels": 1, "batch_size": 2, "steps": 4,
                "val_every": 2, "val_num_samples": 2, "test_num_samples": 2,
                "eval_batch_size": 4}  # fmt: skip


def tiny_overrides(cache: Path, steps: int = 6) -> list[str]:
    """``--set`` overrides of the whole tiny test pipeline, its frame cache in ``cache``."""
    overrides = [*DATA, f"data.cache_dir={cache}"]
    for modality in ("image_autoencoder", "mask_autoencoder"):
        overrides += [f"{modality}.{key}={value}" for key, value in AUTOENCODER.items()]
    overrides += [f"diffusion.{key}={value}" for key, value in DIFFUSION.items()]
    overrides += [f"segmentation.{key}={value}" for key, value in SEGMENTATION.items()]
    # one synthetic pair in a batch of 2 (the tiny preset's eighth would replace none)
    return [*overrides, f"diffusion.steps={steps}", "scheme.replace_fraction=0.25"]


def tiny_config(cache: Path, steps: int = 6, extra: tuple[str, ...] = ()) -> GaudaConfig:
    """The ``tiny`` preset shrunk for tests (``steps``: diffusion training steps)."""
    return resolve_config("tiny", overrides=[*tiny_overrides(cache, steps), *extra])


@dataclass(frozen=True)
class TinyGenerator:
    image_autoencoder: Path
    mask_autoencoder: Path
    diffusion: Path
    cache: Path

    def config(self, extra: tuple[str, ...] = ()) -> GaudaConfig:
        return tiny_config(self.cache, extra=extra)


def train_tiny_generator(root: Path, diffusion_steps: int = 3) -> TinyGenerator:
    """Both autoencoders (2 steps each, 2 + 2 latent channels at 8x8) and a diffusion run, under ``root``."""
    config = tiny_config(root / "cache", steps=diffusion_steps)
    for modality in ("image", "mask"):
        train_autoencoder(config, modality, root / modality, progress=False)
    train_diffusion(config, root / "diffusion", root / "image", root / "mask", progress=False)
    return TinyGenerator(root / "image", root / "mask", root / "diffusion", root / "cache")


def train_tiny_segmenter(config: GaudaConfig, run_dir: Path) -> Path:
    """A segmenter run (config.yaml, best and last checkpoints) of a few steps on the tiny data."""
    splits = load_splits(config.data, progress=False)
    network = build_segmenter(config.segmentation, in_channels=3, num_classes=len(splits.class_names))
    trainer = SegmentationTrainer(
        network, config.segmentation, splits.train, splits.val, splits.class_names, run_dir, to_dict(config),
        progress=False,
    )  # fmt: skip
    trainer.fit()
    return run_dir


def gauda_process(args: list[str], processes: int = 1) -> list[str]:
    """The command line of ``gauda ARGS`` in a new Python process, under torchrun when ``processes`` > 1."""
    if processes == 1:
        return [sys.executable, "-m", "gauda", *args]
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return [*run, "-m", "gauda", *args]


def process_env() -> dict[str, str]:
    """A test's child process: one thread (two processes share 2 cores), error lines not wrapped."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "500"}


def set_args(overrides: list[str]) -> list[str]:
    """``--set`` options for a list of overrides."""
    return [arg for override in overrides for arg in ("--set", override)]


def run_gauda(args: list[str], processes: int = 1, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``gauda ARGS`` to completion; fails the test with its output if it exits non-zero."""
    done = subprocess.run(
        gauda_process(args, processes), env=process_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"gauda {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done
