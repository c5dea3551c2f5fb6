"""Which image autoencoder keeps what a segmenter needs: several runs side by side on held-out frames.

    .venv/bin/python benchmarks/autoencoder_keeps.py --segmenter runs/seg --run runs/ae-a --run runs/ae-b

Scores each image autoencoder run with ``gauda evaluate autoencoder`` (the real-trained segmenter's
per-class IoU on the reconstructions against the originals) on newly rendered synthetic videos
(``--seed``, default 1: 640 frames of the ``tiny`` preset's train split, videos no model has seen), and
prints one Markdown table: PSNR, SSIM, and each class's IoU on reconstructions with its ratio to the
originals. Mask runs get their per-class reconstruction IoU instead. The goal of the image autoencoder:
ratio >= 0.9 for every class the segmenter segments at >= 0.5.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gauda.evaluation.reconstruction import evaluate_autoencoder_run
from gauda.presets import resolve_config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, action="append", required=True, help="autoencoder run folder")
    parser.add_argument("--segmenter", type=Path, help="real-trained segmenter run (image runs)")
    parser.add_argument("--seed", type=int, default=1, help="data.synthetic.seed of the held-out videos")
    parser.add_argument("--split", default="train", help="split of the held-out videos to score")
    args = parser.parse_args()
    results = {}
    for run in args.run:
        config = resolve_config("tiny", run / "config.yaml", [f"data.synthetic.seed={args.seed}"])
        out = run / f"evaluation_seed{args.seed}_{args.split}.json"
        results[run] = evaluate_autoencoder_run(
            run, config.data, args.segmenter, args.split, out, device="cpu", progress=False
        )
    first = next(iter(results.values()))
    names = list(first["class_frames"])
    print(
        f"held-out videos: data.synthetic.seed={args.seed}, {args.split} split, {first['num_frames']} frames"
    )
    print("| run | " + " | ".join(names) + " | quality |")
    print("| --- " * (len(names) + 2) + "|")
    print("| frames | " + " | ".join(str(first["class_frames"][n]) for n in names) + " | |")
    for run, result in results.items():
        if result["modality"] == "mask":
            cells = [_cell(result["per_class_iou"][n]) for n in names]
            quality = f"mean IoU {result['mean_iou']:.3f}"
        elif "per_class" in result:
            rows = result["per_class"]
            cells = [f"{_cell(rows[n]['iou_reconstructed'])} ({_cell(rows[n]['ratio'], 2)})" for n in names]
            quality = f"{result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}"
        else:
            cells, quality = ["" for _ in names], f"{result['psnr']:.2f} dB"
        print(f"| {run.name} | " + " | ".join(cells) + f" | {quality} |")
    if "per_class" in first:
        rows = first["per_class"]
        print("| (originals) | " + " | ".join(_cell(rows[n]["iou_original"]) for n in names) + " | |")


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
