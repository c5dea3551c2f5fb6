"""Does a diffusion run's sampler reproduce the spread of its training latents? (the v-prediction check)

    .venv/bin/python benchmarks/latent_spread.py --diffusion runs/demo/diffusion

Prints Markdown for one trained run: (1) the denoiser's noise-prediction MSE on its cached training
latents at several timesteps t, beside the MSE of simply returning z_t as the noise (what a network
that cannot do better at the noisiest steps should at least match), and (2) the standard deviation of
joint latents sampled unconditionally with DDPM-1000 and DPM-Solver++ 20, against the training
latents' (1 by construction), and of the z0 estimate at the first DDIM-50 step.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from gauda.diffusion.latents import LATENTS_FILE
from gauda.diffusion.runs import load_diffusion
from gauda.diffusion.schedule import config_betas, q_sample
from gauda.generation.generator import Sampling, sample_latents
from gauda.generation.samplers import make_scheduler

TIMESTEPS = (10, 100, 500, 900, 999)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--diffusion", type=Path, required=True, help="a gauda train diffusion run folder")
    parser.add_argument("--num", type=int, default=64, help="training latents and samples per figure")
    args = parser.parse_args()
    model, info = load_diffusion(args.diffusion)
    denoiser, abar = model.as_denoiser(), model.alpha_bar
    cached = load_file(args.diffusion / LATENTS_FILE)
    z0 = torch.cat([cached["state.image"], cached["state.mask"]], 1)[: args.num].float()  # (N, D, s, s)
    print(f"prediction: {info['config'].prediction}; training latents std {z0.std():.3f}\n")
    print("| t | noise MSE of the denoiser | noise MSE of returning z_t |\n| --- | --- | --- |")
    generator = torch.Generator().manual_seed(0)
    for t0 in TIMESTEPS:
        t = torch.full((len(z0),), t0)
        eps = torch.randn(z0.shape, generator=generator)
        z_t = q_sample(z0, eps, abar[t])
        mse = ((denoiser(z_t, t, None) - eps) ** 2).mean()
        print(f"| {t0} | {mse:.4f} | {((z_t - eps) ** 2).mean():.4f} |")
    print("\n| sampler | std of sampled latents |\n| --- | --- |")
    betas = config_betas(info["config"])
    for sampler, steps in (("ddpm", 1000), ("dpmpp", 20)):
        z = sample_latents(
            model, None, args.num, Sampling(sampler, steps, 1.0), betas, torch.Generator().manual_seed(0)
        )
        print(f"| {sampler}-{steps} | {z.std():.3f} |")
    scheduler = make_scheduler("ddim", betas, 50)
    first = int(scheduler.timesteps[0])
    z_t = torch.randn(z0.shape, generator=torch.Generator().manual_seed(1))
    eps = denoiser(z_t, torch.full((len(z0),), first), None)
    a = abar[first]
    z0_estimate = (z_t - (1 - a).sqrt() * eps) / a.sqrt()
    print(f"\nz0 estimate at the first DDIM-50 step (t = {first}): std {z0_estimate.std():.3f}")


if __name__ == "__main__":
    main()
