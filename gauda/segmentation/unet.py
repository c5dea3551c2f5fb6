"""The UNet of the ensemble (Ronneberger 2015), built from gauda's shared residual blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gauda.nn.blocks import Downsample, ResidualBlock, Upsample, group_norm


def check_divisible(images: torch.Tensor, levels: int, owner: str) -> None:
    """Raise unless H and W can be halved ``levels - 1`` times."""
    multiple = 2 ** (levels - 1)
    height, width = images.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"{owner} with {levels} levels: image size {height}x{width}; expected sides divisible by "
            f"{multiple} (set data.image_size or segmentation.channels accordingly)"
        )


def residual_stage(in_channels: int, out_channels: int, blocks: int) -> nn.Sequential:
    """``blocks`` residual blocks, the first changing ``in_channels`` to ``out_channels``."""
    rest = (ResidualBlock(out_channels, out_channels) for _ in range(blocks - 1))
    return nn.Sequential(ResidualBlock(in_channels, out_channels), *rest)


class UNet(nn.Module):
    """Encoder-decoder with skip connections; level l works at 1 / 2**l of the input resolution.

    Args:
        in_channels: image channels (3 for RGB).
        num_classes: C, the logits per pixel.
        channels: feature channels of each level (the paper's: 32, 64, 128, 192, 192, 192, 192).
        blocks_per_level: residual blocks per level on each path.
    """

    def __init__(
        self, in_channels: int, num_classes: int, channels: Sequence[int], blocks_per_level: int = 1
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        self.levels = len(channels)
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.encoder = nn.ModuleList(
            residual_stage(channels[max(level - 1, 0)], c, blocks_per_level)
            for level, c in enumerate(channels)
        )
        self.downsample = nn.ModuleList(Downsample(c) for c in channels[:-1])
        self.upsample = nn.ModuleList(
            Upsample(channels[level + 1], channels[level]) for level in range(self.levels - 1)
        )
        self.decoder = nn.ModuleList(residual_stage(2 * c, c, blocks_per_level) for c in channels[:-1])
        self.head = nn.Sequential(group_norm(channels[0]), nn.SiLU(), nn.Conv2d(channels[0], num_classes, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, C, H, W) of images (B, in_channels, H, W)."""
        check_divisible(images, self.levels, "UNet")
        h = self.stem(images)
        skips = []
        for level, stage in enumerate(self.encoder):
            h = stage(h)  # (B, channels[level], H / 2**level, W / 2**level)
            if level < self.levels - 1:
                skips.append(h)
                h = self.downsample[level](h)
        for level in reversed(range(self.levels - 1)):
            h = self.decoder[level](torch.cat([self.upsample[level](h), skips[level]], dim=1))
        return self.head(h)


def masked_cross_entropy(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Cross-entropy over the valid pixels per leading index: (M, B, C, H, W), (M, B, H, W) -> (M,).

    A batch without a valid pixel contributes 0 (not NaN).
    """
    members = logits.shape[0]
    per_pixel = F.cross_entropy(
        logits.flatten(0, 1), masks.flatten(0, 1), ignore_index=ignore_index, reduction="none"
    )  # (M * B, H, W), 0 at ignored pixels
    valid = (masks != ignore_index).reshape(members, -1).sum(1)  # (M,)
    return per_pixel.reshape(members, -1).sum(1) / valid.clamp(min=1)
