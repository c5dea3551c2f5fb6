"""``precision: bf16``: every trainer runs its forward passes under bfloat16 autocast (here on the CPU),
its losses stay finite, and what it saves is float32."""

from __future__ import annotations

import math

import torch
from tiny_runs import tiny_config

from gauda.augmentation.training import train_segmenter
from gauda.autoencoders.trainer import train_autoencoder
from gauda.checkpoint import load_checkpoint
from gauda.device import autocast
from gauda.diffusion.trainer import train_diffusion


def test_autocast_is_bf16_for_bf16_and_nothing_for_fp32() -> None:
    layer, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert layer(x).dtype == torch.float32


def test_every_trainer_trains_in_bf16(tiny_generator, tmp_path) -> None:
    config = tiny_config(tiny_generator.cache, steps=3, extra=(
        "image_autoencoder.precision=bf16", "diffusion.precision=bf16", "segmentation.precision=bf16",
        "segmentation.steps=2"))  # fmt: skip
    metrics = train_autoencoder(config, "image", tmp_path / "image", progress=False)
    assert math.isfinite(metrics["psnr"])
    metrics = train_diffusion(config, tmp_path / "diffusion", tiny_generator.image_autoencoder,
                              tiny_generator.mask_autoencoder, progress=False)  # fmt: skip
    assert math.isfinite(metrics["final_loss"])
    summary = train_segmenter(config, tmp_path / "segmenter", progress=False)
    assert summary["step"] == 2
    for run in ("image", "diffusion", "segmenter"):
        state = load_checkpoint(tmp_path / run / "last.safetensors")
        assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
