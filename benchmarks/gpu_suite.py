"""The GPU suite: one prepared command that proves the paper-size path on a GPU and measures it.

    .venv/bin/python benchmarks/gpu_suite.py --device cuda --out runs/gpu-suite     # a GPU, <= 8 minutes
    .venv/bin/python benchmarks/gpu_suite.py --smoke --out runs/gpu-suite-smoke     # any CPU, toy sizes

Four parts, each written to ``OUT/gpu_suite.json`` and ``OUT/gpu_suite.md`` the moment it finishes (a
run cut off still reports the parts done; a part that fails is recorded with its error and the next
one runs):

- ``fit``: a few training steps of every stage at the paper's sizes and batch sizes (image and mask
  VQ-GAN with their discriminators, the 4-level denoiser, PHiSeg, the 10-member ensemble), fp32 and
  bf16: peak memory, images per second, whether the loss stayed finite, and whether it fits at all;
- ``sampling``: decoded (image, mask) pairs per second of the paper denoiser with DPM-Solver++ at 20
  steps and guidance (conditional and unconditional predictions in one batch), batches of 64 and 256,
  bf16, with and without ``torch.compile``; and the fraction of the GPU's bf16 peak that the denoiser's
  forward pass reaches at batch 256;
- ``gauda``: default against GAUDA segmentation training for the same steps at a mid-size configuration
  (the ``tiny`` preset's sizes), GAUDA's generation in its own CUDA stream (asynchronous) and in the
  trainer's (synchronous), with the time the trainer waited for pairs; a generator is trained for a few
  steps first (timing does not depend on what the weights have learned);
- ``distributed``: ``torchrun --nproc-per-node 1`` with the NCCL backend (gloo on a CPU) for a few steps
  of the mask autoencoder (one GPU is lent here, so several processes are not measured).

``--smoke`` runs the same code at toy sizes (a few channels, 16 px) on the CPU in well under 5 minutes,
with ``torch.compile``'s graph capture but the eager backend; the test suite runs it, so the script is
known to work before a GPU is spent on it. Random weights throughout ``fit`` and ``sampling``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss
from torch.utils.flop_counter import FlopCounterMode

from gauda.autoencoders.losses import adaptive_adversarial_weight, mask_cross_entropy
from gauda.autoencoders.trainer import build_discriminator
from gauda.autoencoders.vqgan import VQGAN, mask_to_input
from gauda.device import autocast
from gauda.diffusion.denoiser import DiffusionUNet
from gauda.diffusion.latents import decode_pairs
from gauda.diffusion.schedule import config_betas
from gauda.generation.generator import Sampling, sample_latents
from gauda.io import atomic_write_json, atomic_write_text
from gauda.presets import GaudaConfig, resolve_config
from gauda.segmentation.bayesian import build_segmenter

PARTS = ("fit", "sampling", "gauda", "distributed")
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by a part of the device's name.
BF16_PEAKS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}
# Toy sizes for --smoke: every stage at 16 px with a few channels.
SMOKE = [
    "data.image_size=16", "data.synthetic.num_videos=6", "data.synthetic.frames_per_video=2",
    "data.synthetic.image_size=32", "data.split.fractions=[0.5, 0.25, 0.25]",
    *(f"{ae}.{key}" for ae in ("image_autoencoder", "mask_autoencoder") for key in (
        "channels=[8, 16]", "discriminator_channels=[8, 16]", "codebook_size=16", "batch_size=2",
        "latent_channels=2", "steps=2", "checkpoint_every=2", "adversarial_start=100")),
    "diffusion.channels=[8, 16]", "diffusion.num_res_blocks=1", "diffusion.attention_resolutions=[4]",
    "diffusion.num_heads=2", "diffusion.batch_size=3", "diffusion.steps=2", "diffusion.checkpoint_every=2",
    "diffusion.warmup_steps=1", "diffusion.encode_batch_size=4", "diffusion.sampling_steps=2",
    "segmentation.channels=[4, 8]", "segmentation.ensemble_size=2", "segmentation.latent_levels=1",
    "segmentation.batch_size=2", "segmentation.eval_batch_size=4", "segmentation.val_num_samples=2",
    "segmentation.test_num_samples=2", "scheme.replace_fraction=0.5",
]  # fmt: skip


MID = ["data.synthetic.num_videos=20", "image_autoencoder.steps=20", "mask_autoencoder.steps=20",
       "diffusion.steps=20", "image_autoencoder.checkpoint_every=20", "mask_autoencoder.checkpoint_every=20",
       "diffusion.checkpoint_every=20"]  # fmt: skip


class Suite:
    """The results so far, rewritten (JSON and Markdown, atomically) after every part."""

    def __init__(self, out: Path, about: dict[str, Any]) -> None:
        self.out = out
        self.results: dict[str, Any] = {"about": about, "parts": {}}
        out.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, part: Callable[[], dict[str, Any]]) -> None:
        began = time.perf_counter()
        try:
            result = part()
        except Exception as error:  # recorded; the next part still runs
            result = {
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()[-3000:],
            }
        result["seconds"] = round(time.perf_counter() - began, 1)
        self.results["parts"][name] = result
        atomic_write_json(self.out / "gpu_suite.json", self.results)
        atomic_write_text(self.out / "gpu_suite.md", markdown(self.results))
        print(f"{name}: {'failed' if 'error' in result else 'done'} in {result['seconds']} s", flush=True)


# -- measuring ---------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def timed_steps(step: Callable[[], float], steps: int, device: torch.device) -> tuple[float, list[float]]:
    """One warm-up call, then seconds per call over ``steps`` calls; the losses returned by every call."""
    losses = [step()]
    synchronize(device)
    began = time.perf_counter()
    losses += [step() for _ in range(steps)]
    synchronize(device)
    return (time.perf_counter() - began) / steps, losses


def out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error)


# -- part 1: every stage fits and trains --------------------------------------------------------------------


def autoencoder_step(config: GaudaConfig, modality: str, classes: int, device: torch.device, precision: str):
    """One VQ-GAN training step as the trainer takes it once the adversarial term is on (its heaviest)."""
    ae = config.image_autoencoder if modality == "image" else config.mask_autoencoder
    channels, size = (3 if modality == "image" else classes), config.data.image_size or 128
    model = VQGAN(channels, channels, ae).to(device)
    discriminator = build_discriminator(ae, channels).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), ae.learning_rate, betas=ae.betas)
    disc_optimizer = torch.optim.AdamW(
        discriminator.parameters(), ae.discriminator_learning_rate, betas=ae.betas
    )
    adversarial = PatchAdversarialLoss(criterion=ae.adversarial_loss)
    masks = torch.randint(0, classes, (ae.batch_size, size, size), device=device)
    x = torch.rand(ae.batch_size, 3, size, size, device=device) * 2 - 1
    if modality == "mask":
        x = mask_to_input(masks, classes)

    def step() -> float:
        with autocast(device, precision):
            output, _, vq = model(x)
        output = output.float()
        if modality == "image":
            reconstruction, fake = F.l1_loss(output, x), output
        else:
            reconstruction, fake = mask_cross_entropy(output, masks, None), output.softmax(1)
        with autocast(device, precision):
            generator_loss = adversarial(
                discriminator(fake)[-1], target_is_real=True, for_discriminator=False
            )
        weight = ae.adversarial_weight * adaptive_adversarial_weight(reconstruction, generator_loss.float(),
                                                                     model.last_layer())  # fmt: skip
        loss = (
            reconstruction
            + vq["codebook"].float()
            + vq["commitment"].float()
            + weight * generator_loss.float()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with autocast(device, precision):
            real = adversarial(discriminator(x)[-1], target_is_real=True, for_discriminator=True)
            fake_loss = adversarial(
                discriminator(fake.detach())[-1], target_is_real=False, for_discriminator=True
            )
        disc_optimizer.zero_grad(set_to_none=True)
        (0.5 * (real + fake_loss)).float().backward()
        disc_optimizer.step()
        return loss.item()

    return step, ae.batch_size


def latent_shape(config: GaudaConfig) -> tuple[int, int]:
    """(channels, side) of the joint latents at the configured sizes: each autoencoder level but the last
    halves the side."""
    size = config.data.image_size or 128
    channels = config.image_autoencoder.latent_channels + config.mask_autoencoder.latent_channels
    return channels, size // 2 ** (len(config.image_autoencoder.channels) - 1)


def diffusion_step(config: GaudaConfig, classes: int, device: torch.device, precision: str):
    dc = config.diffusion
    channels, side = latent_shape(config)
    model = DiffusionUNet(channels, classes, side, dc).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), dc.learning_rate, betas=dc.betas)
    z = torch.randn(dc.batch_size, channels, side, side, device=device)
    t = torch.randint(0, dc.num_train_timesteps, (dc.batch_size,), device=device)
    condition = (torch.rand(dc.batch_size, classes, device=device) < 0.3).float()
    null = torch.rand(dc.batch_size, device=device) < dc.p_uncond

    def step() -> float:
        with autocast(device, precision):
            prediction = model(z, t, condition, null)
        loss = F.mse_loss(prediction.float(), z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, dc.batch_size


def segmenter_step(config: GaudaConfig, model_name: str, classes: int, device: torch.device, precision: str):
    sc = replace(config.segmentation, model=model_name)
    size = config.data.image_size or 128
    model = build_segmenter(sc, in_channels=3, num_classes=classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=sc.learning_rate)
    members = model.num_members
    images = torch.rand(members, sc.batch_size, 3, size, size, device=device)
    masks = torch.randint(0, classes, (members, sc.batch_size, size, size), device=device)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> float:
        with autocast(device, precision):
            loss, _ = model.training_loss(images, masks, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        optimizer.step()
        return loss.item()

    return step, members * sc.batch_size


def fit_part(config: GaudaConfig, classes: int, device: torch.device, steps: int) -> dict[str, Any]:
    stages: dict[str, Callable[[str], tuple[Callable[[], float], int]]] = {
        "image autoencoder": lambda p: autoencoder_step(config, "image", classes, device, p),
        "mask autoencoder": lambda p: autoencoder_step(config, "mask", classes, device, p),
        "diffusion": lambda p: diffusion_step(config, classes, device, p),
        "phiseg": lambda p: segmenter_step(config, "phiseg", classes, device, p),
        "ensemble": lambda p: segmenter_step(config, "ensemble", classes, device, p),
    }
    rows = []
    for stage, build in stages.items():
        for precision in ("fp32", "bf16"):
            reset_memory(device)
            row: dict[str, Any] = {"stage": stage, "precision": precision}
            try:
                step, batch = build(precision)
                seconds, losses = timed_steps(step, steps, device)
                row.update(fits=True, batch=batch, images_per_second=round(batch / seconds, 2),
                           finite_loss=all(math.isfinite(v) for v in losses),
                           peak_gib=peak_gib(device))  # fmt: skip
            except Exception as error:
                if not out_of_memory(error):
                    raise
                row.update(fits=False, error="out of memory", peak_gib=peak_gib(device))
            rows.append(row)
            step = None  # the model, optimiser and batch go before the next stage is built
    return {"rows": rows, "all_fit": all(r["fits"] and r["finite_loss"] for r in rows)}


# -- part 2: sampling ---------------------------------------------------------------------------------------


def sampling_part(config: GaudaConfig, classes: int, device: torch.device, batches: list[int],
                  compile_backend: str | None) -> dict[str, Any]:  # fmt: skip
    channels, side = latent_shape(config)
    image_ae = VQGAN(3, 3, config.image_autoencoder).to(device).eval()
    mask_ae = VQGAN(classes, classes, config.mask_autoencoder).to(device).eval()
    eager = DiffusionUNet(channels, classes, side, config.diffusion).to(device).eval()
    models = {"eager": eager}
    if compile_backend:
        compiled = copy.deepcopy(eager)
        compiled.compile(backend=compile_backend)  # in place: as_denoiser's calls go through it
        models[f"torch.compile ({compile_backend})"] = compiled
    sampling, betas = Sampling("dpmpp", 20, 2.0), config_betas(config.diffusion)
    rows = []
    for name, model in models.items():
        for batch in batches:
            conditions = torch.zeros(batch, classes, device=device)
            conditions[torch.arange(batch), torch.arange(batch) % classes] = 1

            @torch.no_grad()
            def run(model=model, conditions=conditions, batch=batch) -> float:
                generator = torch.Generator(device=device).manual_seed(0)
                with autocast(device, "bf16"):
                    z = sample_latents(model, conditions, batch, sampling, betas, generator)
                    decode_pairs(z.float(), image_ae, mask_ae, config.image_autoencoder.latent_channels)
                return 0.0

            reset_memory(device)
            warm = time.perf_counter()
            run()  # the warm-up includes the compilation
            synchronize(device)
            warm = time.perf_counter() - warm
            seconds, _ = timed_steps(run, 1, device)
            rows.append({"model": name, "batch": batch, "pairs_per_second": round(batch / seconds, 2),
                         "first_call_seconds": round(warm, 1), "peak_gib": peak_gib(device)})  # fmt: skip
    best = max(r["pairs_per_second"] for r in rows)
    return {"sampler": "dpmpp", "steps": 20, "guidance": 2.0, "precision": "bf16", "rows": rows,
            "best_pairs_per_second": best, "goal_100_pairs_per_second": best >= 100,
            "denoiser": denoiser_utilisation(eager, classes, device, max(batches))}  # fmt: skip


@torch.no_grad()
def denoiser_utilisation(
    model: DiffusionUNet, classes: int, device: torch.device, batch: int
) -> dict[str, Any]:
    """FLOP/s of the denoiser's bf16 forward pass at ``batch`` and its fraction of the device's peak."""
    z = torch.randn(batch, model.in_channels, model.latent_size, model.latent_size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    condition = torch.eye(classes, device=device)[torch.arange(batch, device=device) % classes]
    counter = FlopCounterMode(display=False)
    with counter, autocast(device, "bf16"):
        model(z, t, condition)
    flops = counter.get_total_flops()

    def forward() -> float:
        with autocast(device, "bf16"):
            model(z, t, condition)
        return 0.0

    seconds, _ = timed_steps(forward, 5 if device.type == "cuda" else 1, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = next((value for key, value in BF16_PEAKS.items() if key in name), None)
    achieved = flops / seconds
    return {"batch": batch, "gflop_per_forward": float(f"{flops / 1e9:.4g}"),
            "tflops": float(f"{achieved / 1e12:.4g}"),
            "bf16_peak_tflops": peak / 1e12 if peak else None,
            "fraction_of_peak": round(achieved / peak, 3) if peak else None}  # fmt: skip


# -- part 3: GAUDA's overhead ----------------------------------------------------------------------


def gauda_part(config: GaudaConfig, out: Path, steps: int, val_every: int) -> dict[str, Any]:
    from gauda.augmentation.training import train_segmenter
    from gauda.autoencoders.trainer import train_autoencoder
    from gauda.diffusion.trainer import train_diffusion

    generator = out / "generator"
    for modality in ("image", "mask"):
        if not (generator / modality / "model.safetensors").is_file():
            train_autoencoder(config, modality, generator / modality, progress=False)
    if not (generator / "diffusion" / "model.safetensors").is_file():
        train_diffusion(
            config, generator / "diffusion", generator / "image", generator / "mask", progress=False
        )
    variants = {
        "default": {"name": "default"},
        "gauda (asynchronous)": {"name": "gauda", "asynchronous": True},
        "gauda (synchronous)": {"name": "gauda", "asynchronous": False},
    }
    rows = []
    for name, scheme in variants.items():
        run_config = replace(
            config,
            segmentation=replace(config.segmentation, steps=steps, val_every=val_every),
            scheme=replace(config.scheme, generator=str(generator / "diffusion"), **scheme),
        )
        run = out / "runs" / name.replace(" (", "-").rstrip(")")  # runs/default, runs/gauda-asynchronous
        shutil.rmtree(run, ignore_errors=True)
        summary = train_segmenter(run_config, run, progress=False)
        rows.append({"scheme": name, "wall_seconds": summary["wall_seconds"],
                     "waited_seconds": summary.get("synthetic_wait_seconds"),
                     "generating_seconds": summary.get("generation_seconds")})  # fmt: skip
    base = rows[0]["wall_seconds"]
    for row in rows:
        row["ratio_to_default"] = round(row["wall_seconds"] / base, 3)
    return {"steps": steps, "val_every": val_every, "rows": rows,
            "goal_at_most_10_percent": rows[1]["ratio_to_default"] <= 1.10}  # fmt: skip


# -- part 4: torchrun ----------------------------------------------------------------------------------------


def distributed_part(overrides: list[str], out: Path, device: str) -> dict[str, Any]:
    run = out / "distributed"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", "-m",
               "gauda", "train", "autoencoder", "--modality", "mask", "--out", str(run)]  # fmt: skip
    for override in [*overrides, f"mask_autoencoder.device={device}"]:
        command += ["--set", override]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    seconds = time.perf_counter() - began
    result = {"command": " ".join(command[2:]), "returncode": done.returncode, "seconds": round(seconds, 1),
              "backend": "nccl" if device.startswith("cuda") else "gloo",
              "model_written": (run / "model.safetensors").is_file()}  # fmt: skip
    if done.returncode != 0:
        result["stderr_tail"] = done.stderr[-2000:]
    return result


# -- report ------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    about, parts = results["about"], results["parts"]
    sizes = "smoke, toy sizes" if about["smoke"] else "paper sizes"
    lines = [f"# GPU suite on {about['device_name']} ({sizes})", "",
             f"torch {about['torch']}, {about['classes']} classes",
             f"command `{about['command']}`", ""]  # fmt: skip
    for name, part in parts.items():
        lines += [f"## {name} ({part['seconds']} s)", ""]
        if "error" in part:
            lines += [f"**failed**: `{part['error']}`", ""]
            continue
        rows = part.get("rows")
        if rows:
            keys = list(dict.fromkeys(k for row in rows for k in row))
            lines += ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
            lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
            lines.append("")
        extra = {k: v for k, v in part.items() if k not in ("rows", "seconds")}
        lines += [f"- {k}: `{json.dumps(v)}`" for k, v in extra.items()] + [""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_suite.json and gpu_suite.md")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU: the same code, fast")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, among {', '.join(PARTS)}")
    parser.add_argument(
        "--classes", type=int, default=None, help="mask classes (default 17, CaDIS II; smoke 9)"
    )
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts {','.join(unknown)}: expected some of {', '.join(PARTS)}")
    device_name = args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    device = torch.device(device_name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible; use --smoke on a CPU")
        torch.backends.cudnn.benchmark = True
    classes = args.classes or (9 if args.smoke else 17)
    overrides = SMOKE if args.smoke else []
    stage_devices = [f"{s}.device={device_name}" for s in
                     ("image_autoencoder", "mask_autoencoder", "diffusion", "segmentation")]  # fmt: skip
    paper = resolve_config("paper", overrides=[*overrides, *stage_devices])
    cache = [f"data.cache_dir={args.out / 'cache'}"]
    # mid-size: the tiny preset's networks at 64 px on 20 rendered videos (rendering runs on the CPU)
    mid = resolve_config("tiny", overrides=[*cache, *stage_devices, *(overrides or MID)])
    about = {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpus": os.cpu_count(),
        "smoke": args.smoke, "torch": torch.__version__, "classes": classes,
        "command": " ".join(["benchmarks/gpu_suite.py", *sys.argv[1:]]),
    }  # fmt: skip
    suite = Suite(args.out, about)
    torch.manual_seed(0)
    if "fit" in parts:
        suite.run("fit", lambda: fit_part(paper, classes, device, steps=1 if args.smoke else 3))
    if "sampling" in parts:
        batches = [2, 4] if args.smoke else [64, 256]
        backend = "eager" if args.smoke else "inductor"
        suite.run("sampling", lambda: sampling_part(paper, classes, device, batches, backend))
    if "gauda" in parts:
        steps, val_every = (4, 2) if args.smoke else (300, 100)
        suite.run("gauda", lambda: gauda_part(mid, args.out / "gauda", steps, val_every))
    if "distributed" in parts:
        few_steps = overrides or [*MID, "mask_autoencoder.steps=5", "mask_autoencoder.checkpoint_every=5"]
        suite.run("distributed", lambda: distributed_part([*few_steps, *cache], args.out, device_name))
    print(f"written: {args.out / 'gpu_suite.json'}, {args.out / 'gpu_suite.md'}")


if __name__ == "__main__":
    main()
