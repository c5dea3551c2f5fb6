"""Training and sampling throughput on one device, fp32 against bf16 (autocast), at a preset's sizes.

    .venv/bin/python benchmarks/throughput.py --preset paper --device cuda          # what BENCHMARKS.md asks
    .venv/bin/python benchmarks/throughput.py --preset tiny --device cpu --repeats 3  # a check on a laptop

Measures, with random weights and random batches of the preset's shapes (throughput does not depend on
what the weights are):
- segmenter training: frames per second (every member's batch counts), one optimiser step per batch;
- diffusion training: latent pairs per second;
- sampling: decoded (image, mask) pairs per second with ``--sampler`` at ``--sampling-steps`` steps and
  classifier-free guidance (two network calls per step), batches of ``--sample-batch``, decoding included.
fp32 and bf16 steps alternate within one run, so that a change of load hits both; medians are reported.
Prints a table and, with ``--json``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from gpu_suite import diffusion_step, latent_shape, segmenter_step, synchronize  # beside this script

from gauda.autoencoders.vqgan import VQGAN
from gauda.device import autocast
from gauda.diffusion.denoiser import DiffusionUNet
from gauda.diffusion.latents import decode_pairs
from gauda.diffusion.schedule import config_betas
from gauda.generation.generator import Sampling, sample_latents
from gauda.presets import GaudaConfig, resolve_config


def timed(step: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    began = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - began


def side_by_side(
    steps: dict[str, Callable[[], None]], device: torch.device, repeats: int
) -> dict[str, float]:
    """Median seconds of each step, after one warm-up each, timed alternately."""
    for step in steps.values():
        step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            seconds[name].append(timed(step, device))
    return {name: statistics.median(values) for name, values in seconds.items()}


def both_precisions(build: Callable[[str], tuple[Callable[[], float], int]]) -> tuple[dict, int]:
    """fp32 and bf16 training steps from one of the GPU suite's step builders (a model of each)."""
    steps, count = {}, 0
    for precision in ("fp32", "bf16"):
        steps[precision], count = build(precision)
    return steps, count


def latent_layout(
    config: GaudaConfig, num_classes: int, device: torch.device
) -> tuple[VQGAN, VQGAN, int, int]:
    image_ae = VQGAN(3, 3, config.image_autoencoder).to(device).eval()
    mask_ae = VQGAN(num_classes, num_classes, config.mask_autoencoder).to(device).eval()
    channels, side = latent_shape(config)
    return image_ae, mask_ae, channels, side


def sampling_steps(model, image_ae, mask_ae, config, args, num_classes, device) -> dict:
    sampling = Sampling(args.sampler, args.sampling_steps, args.guidance)
    betas = config_betas(config.diffusion)
    conditions = torch.zeros(args.sample_batch, num_classes, device=device)
    conditions[torch.arange(args.sample_batch), torch.arange(args.sample_batch) % num_classes] = 1
    model.eval()

    def step(precision: str) -> Callable[[], None]:
        @torch.no_grad()
        def run() -> None:
            generator = torch.Generator(device=device).manual_seed(0)
            with autocast(device, precision):
                z = sample_latents(model, conditions, args.sample_batch, sampling, betas, generator)
                decode_pairs(z.float(), image_ae, mask_ae, config.image_autoencoder.latent_channels)

        return run

    return {"fp32": step("fp32"), "bf16": step("bf16")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--classes", type=int, default=8, help="classes of the masks (CaDISv2 task 2: 17)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sampler", default="ddim", choices=["ddpm", "ddim", "dpmpp"])
    parser.add_argument("--sampling-steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--sample-batch", type=int, default=256)
    parser.add_argument("--skip", nargs="*", default=[], choices=["segmenter", "diffusion", "sampling"])
    parser.add_argument("--json", type=Path, help="write the numbers to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    config = resolve_config(args.preset)
    results: dict[str, dict[str, float]] = {}
    if "segmenter" not in args.skip:
        build = lambda p: segmenter_step(config, config.segmentation.model, args.classes, device, p)  # noqa: E731
        steps, frames = both_precisions(build)
        seconds = side_by_side(steps, device, args.repeats)
        results["segmenter training, frames/s"] = {k: frames / v for k, v in seconds.items()}
        del steps
    image_ae, mask_ae, channels, latent = latent_layout(config, args.classes, device)
    if "diffusion" not in args.skip:
        steps, pairs = both_precisions(lambda p: diffusion_step(config, args.classes, device, p))
        seconds = side_by_side(steps, device, args.repeats)
        results["diffusion training, pairs/s"] = {k: pairs / v for k, v in seconds.items()}
        del steps
    if "sampling" not in args.skip:
        model = DiffusionUNet(channels, args.classes, latent, config.diffusion).to(device)
        steps = sampling_steps(model, image_ae, mask_ae, config, args, args.classes, device)
        seconds = side_by_side(steps, device, max(1, args.repeats // 3))
        name = f"sampling ({args.sampler}, {args.sampling_steps} steps, batch {args.sample_batch}), pairs/s"
        results[name] = {k: args.sample_batch / v for k, v in seconds.items()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"preset {args.preset} on {name} (latents {channels}x{latent}x{latent}, {args.classes} classes)")
    print(f"{'':<60} {'fp32':>10} {'bf16':>10} {'bf16/fp32':>10}")
    for what, values in results.items():
        fp32, bf16 = values["fp32"], values["bf16"]
        print(f"{what:<60} {fp32:>10.2f} {bf16:>10.2f} {bf16 / fp32:>10.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"preset": args.preset, "device": name, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
