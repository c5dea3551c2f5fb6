"""What each stage's training step costs under other sizes, side by side with a preset (one process).

    .venv/bin/python benchmarks/grid_cost.py --variant "16x16=image_autoencoder.channels=[16, 32, 64];\
mask_autoencoder.channels=[16, 32, 64];diffusion.channels=[32, 64, 128]"

Each ``--variant NAME=KEY=VALUE;KEY=VALUE`` is the preset with those overrides (``;`` between them);
the preset itself is always the first column. For the image autoencoder, the mask autoencoder and the
denoiser, one training step of every variant is timed in turn (after a warm-up each), ``--repeats``
times, so that a change of load hits every variant alike; medians are reported with their ratio to
the preset. Random weights and batches of the configured shapes: a step's cost does not depend on them.
The autoencoder steps include the adversarial term (their heaviest).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from gpu_suite import autoencoder_step, diffusion_step, latent_shape  # beside this script
from throughput import side_by_side

from gauda.presets import GaudaConfig, resolve_config


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=KEY=VALUE;KEY=VALUE`` -> (NAME, [KEY=VALUE, ...])."""
    name, separator, overrides = text.partition("=")
    if not separator or not name or "=" not in overrides:
        raise SystemExit(f"--variant {text!r}: expected NAME=KEY=VALUE[;KEY=VALUE...]")
    return name, [item.strip() for item in overrides.split(";") if item.strip()]


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--variant", action="append", default=[], help="NAME=KEY=VALUE[;KEY=VALUE...]")
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    configs: dict[str, GaudaConfig] = {args.preset: resolve_config(args.preset)}
    for text in args.variant:
        name, overrides = parse_variant(text)
        configs[name] = resolve_config(args.preset, overrides=overrides)
    builders: dict[str, Callable[[GaudaConfig], Callable[[], float]]] = {
        "image autoencoder": lambda c: autoencoder_step(c, "image", args.classes, device, "fp32")[0],
        "mask autoencoder": lambda c: autoencoder_step(c, "mask", args.classes, device, "fp32")[0],
        "denoiser": lambda c: diffusion_step(c, args.classes, device, "fp32")[0],
    }
    print(f"threads {torch.get_num_threads()}, {args.repeats} repeats; seconds per training step (ratio)")
    for name, config in configs.items():
        channels, side = latent_shape(config)
        print(f"  {name}: latents {channels} x {side} x {side}")
    print(f"{'stage':<20}" + "".join(f"{name:>24}" for name in configs))
    for stage, build in builders.items():
        steps = {name: build(config) for name, config in configs.items()}
        seconds = side_by_side(steps, device, args.repeats)
        base = seconds[args.preset]
        cells = "".join(f"{value:>15.3f} ({value / base:4.2f}x)" for value in seconds.values())
        print(f"{stage:<20}{cells}")


if __name__ == "__main__":
    main()
