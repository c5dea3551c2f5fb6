"""Conditioning hit rate per class and sampler speed/quality of the `tiny` diffusion model.

    .venv/bin/python benchmarks/samplers.py --out runs/bench-diffusion

Trains (or, with --image-autoencoder/--mask-autoencoder/--diffusion, reuses) the tiny image and mask
VQ-GANs and the tiny diffusion model on the synthetic dataset, then on that one model prints Markdown:

1. for every class c: the fraction of --num pairs conditioned on {c} (default sampler, steps and
   guidance of the run) whose mask contains c, beside c's frame frequency in the training split
   (goal, issue 4: >= 80 % for every class, the rarest included);
2. for DDPM-1000, DDIM-50, DPM-Solver++ at 10 and 20 steps and SDE-DPM-Solver++ at 20 steps: wall time
   per pair (unconditional, one network call per step; guidance doubles it) and a quality figure: the
   Frechet distance between --num-fd sampled joint latents and as many training latents, both
   average-pooled to (8, 4, 4) (lower is better; the training latents against the validation latents
   give the floor), and the mean absolute difference between the generated and the training frame
   frequency of each class; with --segmenter RUN (a segmenter trained on the real data), the mask-image
   agreement: its sample-mean IoU on the generated pairs (Real-Only IoU per pair, higher is better).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gauda.autoencoders.runs import load_autoencoder
from gauda.autoencoders.trainer import train_autoencoder
from gauda.data.dataset import load_splits
from gauda.diffusion.condition import multi_hot
from gauda.diffusion.latents import decode_pairs, encode_dataset
from gauda.diffusion.runs import load_diffusion
from gauda.diffusion.schedule import config_betas
from gauda.diffusion.trainer import train_diffusion
from gauda.evaluation.generator_eval import GeneratedPairs, load_segmenter_run, real_only_evaluation
from gauda.generation.generator import Sampling, resolve_sampling, sample_latents
from gauda.generation.sample import class_hit_rates
from gauda.presets import resolve_config

SAMPLERS = (("ddpm", 1000), ("ddim", 50), ("dpmpp", 10), ("dpmpp", 20), ("dpmpp_sde", 20))


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to the rows of x (N, F) and y (M, F)."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = torch.cov(x.T.double()), torch.cov(y.T.double())
    # trace of sqrt(cov_x cov_y) from the eigenvalues of sqrt(cov_x) cov_y sqrt(cov_x)
    values, vectors = torch.linalg.eigh(cov_x)
    root_x = vectors @ values.clamp(min=0).sqrt().diag() @ vectors.T
    middle = torch.linalg.eigvalsh(root_x @ cov_y @ root_x).clamp(min=0).sqrt().sum()
    return float((mu_x - mu_y).double().pow(2).sum() + cov_x.trace() + cov_y.trace() - 2 * middle)


def pooled(z: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(z, 4).flatten(1)  # (N, D * 16)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-diffusion"))
    parser.add_argument("--image-autoencoder", type=Path)
    parser.add_argument("--mask-autoencoder", type=Path)
    parser.add_argument("--diffusion", type=Path, help="a trained diffusion run to reuse")
    parser.add_argument("--num", type=int, default=64, help="pairs per class for the hit rate")
    parser.add_argument("--num-fd", type=int, default=128, help="samples per sampler for the quality figure")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--set", action="append", default=[], help="configuration override KEY=VALUE")
    parser.add_argument(
        "--guidance",
        type=float,
        action="append",
        help="guidance w of the hit rate (repeatable; default: the run's)",
    )
    parser.add_argument(
        "--segmenter", type=Path, help="a segmenter run on the real data: mask-image agreement of the samples"
    )
    parser.add_argument(
        "--hit-rate-only", action="store_true", help="measure the hit rates and skip the samplers' table"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    config = resolve_config("tiny", overrides=args.set)
    timings: dict[str, float] = {}
    image_run = args.image_autoencoder or args.out / "image"
    mask_run = args.mask_autoencoder or args.out / "mask"
    for modality, run in (("image", image_run), ("mask", mask_run)):
        if not (run / "model.safetensors").is_file():
            start = time.perf_counter()
            train_autoencoder(config, modality, run, progress=False)
            timings[f"train {modality} autoencoder"] = time.perf_counter() - start
    diffusion_run = args.diffusion or args.out / "diffusion"
    if not (diffusion_run / "model.safetensors").is_file():
        start = time.perf_counter()
        train_diffusion(config, diffusion_run, image_run, mask_run, progress=False)
        timings["train diffusion"] = time.perf_counter() - start
    model, info = load_diffusion(diffusion_run)
    image_ae, _ = load_autoencoder(info["autoencoders"]["image"])
    mask_ae, _ = load_autoencoder(info["autoencoders"]["mask"])
    diffusion_config, names = info["config"], info["class_names"]
    betas = config_betas(diffusion_config)
    segmenter = load_segmenter_run(args.segmenter) if args.segmenter else None
    results: dict = {
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "hit_rate": {},
        "samplers": {},
    }

    guidances = args.guidance or [diffusion_config.guidance]
    samplings = [resolve_sampling(diffusion_config, guidance=w) for w in guidances]
    print(f"## Hit rate ({diffusion_config.sampler}, {diffusion_config.sampling_steps} steps, "
          f"{args.num} pairs per class)\n")  # fmt: skip
    print(
        "| class | " + " | ".join(f"hit rate, w = {w:g}" for w in guidances) + " | training frame frequency |"
    )
    print("| --- |" + " --- |" * (len(guidances) + 1))
    for c, name in enumerate(names):
        hits = []
        for sampling in samplings:
            generator = torch.Generator().manual_seed(c)
            masks = []
            for start in range(0, args.num, args.batch_size):
                count = min(args.batch_size, args.num - start)
                conditions = multi_hot([c], len(names)).expand(count, -1)
                z = sample_latents(model, conditions, count, sampling, betas, generator)
                masks.append(decode_pairs(z, image_ae, mask_ae, info["image_channels"])[1])
            hits.append(class_hit_rates(torch.cat(masks), [c])[0])
        frequency = float(info["class_frequency"][c])
        results["hit_rate"][name] = {
            "hit": dict(zip(map(str, guidances), hits, strict=True)),
            "training": frequency,
        }
        print(f"| {name} | " + " | ".join(f"{hit:.1%}" for hit in hits) + f" | {frequency:.1%} |", flush=True)

    if args.hit_rate_only:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        return
    splits = load_splits(config.data, progress=False)
    train_latents = encode_dataset(splits.train, image_ae, mask_ae, progress=False)
    val_latents = encode_dataset(splits.val, image_ae, mask_ae, progress=False)
    real = pooled(torch.cat([train_latents["image"], train_latents["mask"]], 1))
    held_out = pooled(torch.cat([val_latents["image"], val_latents["mask"]], 1))
    reference = real[torch.randperm(len(real))[: args.num_fd]]
    floor = frechet_distance(held_out, reference)
    frequency = info["class_frequency"]
    print(f"\n## Samplers ({args.num_fd} unconditional samples each, batch {args.batch_size}; "
          f"latent FD of validation vs training latents: {floor:.2f})\n")  # fmt: skip
    print("| sampler | steps | seconds per pair | latent FD | class frequency error | mask-image agreement |")
    print("| --- | --- | --- | --- | --- | --- |")
    for sampler, steps in SAMPLERS:
        generator = torch.Generator().manual_seed(0)
        latents, masks = [], []
        start_time = time.perf_counter()
        for start in range(0, args.num_fd, args.batch_size):
            count = min(args.batch_size, args.num_fd - start)
            sampling = Sampling(sampler, steps, 1.0)
            latents.append(sample_latents(model, None, count, sampling, betas, generator))
        seconds = (time.perf_counter() - start_time) / args.num_fd
        images = []
        for z in latents:
            image, mask = decode_pairs(z, image_ae, mask_ae, info["image_channels"])
            images.append(image)
            masks.append(mask)
        agreement = None
        if segmenter is not None:  # the real-data segmenter's frame IoU against the generated masks
            net, _, seg_config, device = segmenter
            pairs = GeneratedPairs(torch.cat(images), torch.cat(masks), names)
            agreement = real_only_evaluation(net, pairs, seg_config, names, device).table.sample_mean_iou
        generated = torch.tensor(class_hit_rates(torch.cat(masks), list(range(len(names)))))
        error = float((generated - frequency).abs().mean())
        fd = frechet_distance(pooled(torch.cat(latents)), reference)
        results["samplers"][f"{sampler}-{steps}"] = {
            "seconds_per_pair": seconds,
            "latent_fd": fd,
            "frequency_error": error,
            "mask_image_agreement": agreement,
        }
        shown = "–" if agreement is None else f"{agreement:.3f}"
        print(f"| {sampler} | {steps} | {seconds:.3f} | {fd:.2f} | {error:.3f} | {shown} |", flush=True)
    results["latent_fd_floor"] = floor
    results["load_average"] = os.getloadavg()[0]
    print(f"\nload average at the end: {results['load_average']:.1f}; timings: {results['timings_seconds']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
