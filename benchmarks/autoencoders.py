"""Reconstruction quality of the `tiny` image and mask autoencoders after their CPU training budget.

    .venv/bin/python benchmarks/autoencoders.py --out runs/bench-autoencoders

Trains both VQ-GANs with the `tiny` preset on the synthetic dataset (one after the other), and prints
a Markdown table: wall time, PSNR/SSIM/L1 (image), mean IoU and every class's IoU (mask), codebook
usage. Goal (issue 3): mask mean IoU >= 0.90 and image PSNR >= 25 dB, each within 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from gauda.autoencoders.trainer import train_autoencoder
from gauda.presets import resolve_config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-autoencoders"))
    parser.add_argument("--set", action="append", default=[], help="configuration override KEY=VALUE")
    parser.add_argument(
        "--modality", choices=("mask", "image", "both"), default="both", help="which autoencoder(s) to train"
    )
    args = parser.parse_args()
    config = resolve_config("tiny", overrides=args.set)
    results = {}
    modalities = ("mask", "image") if args.modality == "both" else (args.modality,)
    for modality in modalities:
        run = args.out / modality
        shutil.rmtree(run, ignore_errors=True)
        start = time.perf_counter()
        metrics = train_autoencoder(config, modality, run, progress=False)
        results[modality] = {**metrics, "wall_seconds": round(time.perf_counter() - start, 1)}
    load = os.getloadavg()[0]
    print(f"| modality | wall time (s) | quality | codebook usage |  (load average at the end: {load:.1f})")
    print("| --- | --- | --- | --- |")
    if "image" in results:
        image = results["image"]
        print(f"| image | {image['wall_seconds']} | PSNR {image['psnr']:.2f} dB, SSIM {image['ssim']:.3f}, "
              f"L1 {image['l1']:.4f} | {image['codebook_usage']:.2f} |")  # fmt: skip
    if "mask" in results:
        mask = results["mask"]
        print(f"| mask | {mask['wall_seconds']} | mean IoU {mask['mean_iou']:.3f} | "
              f"{mask['codebook_usage']:.2f} |")  # fmt: skip
        print("\n| class | mask reconstruction IoU |\n| --- | --- |")
        for name, iou in mask["per_class_iou"].items():
            print(f"| {name} | {'n/a' if iou is None else f'{iou:.3f}'} |")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
