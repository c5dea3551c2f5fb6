"""``precision: bf16``: every trainer runs its forward passes under bfloat16 autocast (here on the CPU),
its losses stay finite, and what it saves is float32."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def convolution_dtypes() -> Iterator[set[torch.dtype]]:
    """The dtypes of every convolution's output while the body runs (a global forward hook)."""
    seen: set[torch.dtype] = set()

    def record(module: torch.nn.Module, inputs: object, output: object) -> None:
        if isinstance(module, torch.nn.Conv2d) and isinstance(output, torch.Tensor):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


def test_every_trainer_trains_in_bf16(tiny_generator, tmp_path) -> None:
    config = tiny_config(tiny_generator.cache, steps=3, extra=(
        "image_autoencoder.precision=bf16", "mask_autoencoder.precision=bf16", "diffusion.precision=bf16",
        "segmentation.precision=bf16", "segmentation.steps=2"))  # fmt: skip
    for modality in ("image", "mask"):
        with convolution_dtypes() as dtypes:
            metrics = train_autoencoder(config, modality, tmp_path / modality, progress=False)
        assert torch.bfloat16 in dtypes, modality
        assert math.isfinite(metrics["psnr" if modality == "image" else "mean_iou"])
    with convolution_dtypes() as dtypes:
        metrics = train_diffusion(config, tmp_path / "diffusion", tiny_generator.image_autoencoder,
                                  tiny_generator.mask_autoencoder, progress=False)  # fmt: skip
    assert torch.bfloat16 in dtypes and math.isfinite(metrics["final_loss"])
    with convolution_dtypes() as dtypes:
        summary = train_segmenter(config, tmp_path / "segmenter", progress=False)
    assert torch.bfloat16 in dtypes and summary["step"] == 2
    for run in ("image", "mask", "diffusion", "segmenter"):
        state = load_checkpoint(tmp_path / run / "last.safetensors")
        assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())


def test_fp32_runs_no_convolution_in_bf16(tmp_path) -> None:
    config = tiny_config(tmp_path / "cache", extra=("image_autoencoder.steps=1",))
    with convolution_dtypes() as dtypes:
        train_autoencoder(config, "image", tmp_path / "image", progress=False)
    assert dtypes == {torch.float32}
