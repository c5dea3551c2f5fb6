"""How thin each class is at the training resolution, to read a mask autoencoder's per-class IoU against.

    .venv/bin/python benchmarks/mask_thinness.py [--preset tiny] [--set data.image_size=128]

For every class on the validation split it prints the frames that contain it, the fraction of its pixels
that are interior (their whole 3x3 neighbourhood is the class; 0 for a line one or two pixels wide),
and the IoU of its masks against the same masks grown by one pixel all round. The last figure is the
IoU a reconstruction gets when it places every boundary one pixel too far out: a class whose figure
is low loses most of its IoU to sub-pixel boundary errors, whatever the autoencoder's capacity.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from gauda.data.dataset import load_splits
from gauda.presets import resolve_config


def thinness(masks: torch.Tensor, num_classes: int) -> list[tuple[int, float, float]]:
    """(N, H, W) class ids -> per class (frames containing it, interior fraction, IoU vs 1-px dilation)."""
    rows = []
    for c in range(num_classes):
        m = (masks == c).float()[:, None]
        area = m.sum()
        if area == 0:
            rows.append((0, float("nan"), float("nan")))
            continue
        eroded = -F.max_pool2d(-m, 3, 1, 1)  # 3x3 erosion: 1 where the whole neighbourhood is the class
        grown = F.max_pool2d(m, 3, 1, 1)  # 3x3 dilation; it contains m, so the IoU is |m| / |grown|
        frames = int((m.flatten(1).sum(1) > 0).sum())
        rows.append((frames, float(eroded.sum() / area), float(area / grown.sum())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", action="append", default=[], help="configuration override KEY=VALUE")
    args = parser.parse_args()
    config = resolve_config(args.preset, overrides=args.set)
    splits = load_splits(config.data, progress=False)
    val = splits.val
    masks = torch.stack([torch.from_numpy(val.frames.read(i)[1]).long() for i in val.indices])
    print(f"validation split: {len(masks)} frames of {masks.shape[-2]}x{masks.shape[-1]} px\n")
    print("| class | frames | interior pixels | IoU against a 1-px dilation |\n| --- | --- | --- | --- |")
    for name, (frames, interior, grown) in zip(
        splits.class_names, thinness(masks, len(splits.class_names)), strict=True
    ):
        if frames:
            print(f"| {name} | {frames} | {interior:.2f} | {grown:.2f} |")


if __name__ == "__main__":
    main()
