"""Which image autoencoder keeps what a segmenter needs: several runs side by side on held-out frames.

    .venv/bin/python benchmarks/autoencoder_keeps.py --segmenter runs/seg --run runs/ae-a --run runs/ae-b

Scores each image autoencoder run with ``gauda evaluate autoencoder`` (the real-trained segmenter's
per-class IoU on the reconstructions against the originals) on newly rendered synthetic videos
(``--seed``, default 1: 640 frames of the ``tiny`` preset's train split, videos no model has seen), and
prints one Markdown table: PSNR, SSIM, and each class's IoU on reconstructions with its ratio to the
originals. Mask runs get their per-class reconstruction IoU instead. The goal of the image autoencoder:
ratio >= 0.9 for every class the segmenter segments at >= 0.5.

``--unquantised`` adds, for each image run, the segmenter's IoU on decoder(encoder(x)) without the
vector quantiser: whether the codebook or the encoder and decoder lose what is lost.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gauda.autoencoders.runs import load_autoencoder
from gauda.autoencoders.vqgan import VQGAN
from gauda.data.dataset import load_splits
from gauda.evaluation.reconstruction import evaluate_autoencoder_run, segment_reconstructions
from gauda.presets import resolve_config
from gauda.segmentation.evaluate import load_segmenter


class _Unquantised(torch.nn.Module):
    """An autoencoder's decoder applied to its encoder's continuous output (the VQGAN's signature)."""

    def __init__(self, model: VQGAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None, dict]:
        return self.model.decoder(self.model.encoder(x)), None, {}


def unquantised_label_mean(run: Path, segmenter_run: Path, data, split: str) -> tuple[dict, float]:
    """Per-class IoU and label mean of the segmenter on the run's unquantised reconstructions."""
    model, _ = load_autoencoder(run)
    cpu = torch.device("cpu")
    segmenter, _ = load_segmenter(segmenter_run / "best.safetensors", cpu)
    splits = load_splits(data, progress=False)
    frames = getattr(splits, split)
    names = splits.class_names
    result = segment_reconstructions(_Unquantised(model), segmenter, frames, names, None, 32, cpu)
    ious = {name: row["iou_reconstructed"] for name, row in result.per_class().items()}
    return ious, result.reconstructed.label_mean_iou


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, action="append", required=True, help="autoencoder run folder")
    parser.add_argument("--segmenter", type=Path, help="real-trained segmenter run (image runs)")
    parser.add_argument("--seed", type=int, default=1, help="data.synthetic.seed of the held-out videos")
    parser.add_argument("--split", default="train", help="split of the held-out videos to score")
    parser.add_argument("--unquantised", action="store_true", help="image runs without the quantiser too")
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
        if args.unquantised and result["modality"] == "image" and args.segmenter is not None:
            config = resolve_config("tiny", run / "config.yaml", [f"data.synthetic.seed={args.seed}"])
            ious, mean = unquantised_label_mean(run, args.segmenter, config.data, args.split)
            cells = [_cell(ious[n]) for n in names]
            print(f"| {run.name}, unquantised | " + " | ".join(cells) + f" | label mean {mean:.3f} |")
    if "per_class" in first:
        rows = first["per_class"]
        print("| (originals) | " + " | ".join(_cell(rows[n]["iou_original"]) for n in names) + " | |")


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
