"""Building blocks shared by every network in gauda (VQ-GAN encoders/decoders, the denoiser, UNets).

All blocks take and return (B, C, H, W) tensors. ``ResidualBlock`` optionally takes an embedding
(B, E) that drives adaptive group norm (Dhariwal & Nichol 2021): the normalised activations are
scaled and shifted per channel by a linear map of the embedding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides ``channels``."""
    return nn.GroupNorm(math.gcd(max_groups, channels), channels, eps=1e-6)


class ResidualBlock(nn.Module):
    """norm -> SiLU -> conv -> norm (adaptive if an embedding is given) -> SiLU -> dropout -> conv, plus skip.

    Args:
        in_channels: channels in.
        out_channels: channels out (a 1x1 convolution matches the skip when they differ).
        embedding_channels: size of the embedding for adaptive group norm; None for a plain block.
        dropout: dropout probability before the second convolution.
    """

    def __init__(
        self, in_channels: int, out_channels: int, embedding_channels: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.embedding = None
        if embedding_channels is not None:
            self.embedding = nn.Linear(embedding_channels, 2 * out_channels)
            nn.init.zeros_(self.embedding.weight)  # start as a plain block: scale 1, shift 0
            nn.init.zeros_(self.embedding.bias)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.embedding is not None:
            if embedding is None:
                raise ValueError("ResidualBlock was built with embedding_channels; pass an embedding (B, E)")
            scale, shift = self.embedding(F.silu(embedding))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift  # adaptive group norm
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"SelfAttention: channels {channels} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        q, k, v = (
            self.qkv(self.norm(x)).reshape(batch, 3, self.num_heads, channels // self.num_heads, -1).unbind(1)
        )
        # (B, heads, head_dim, HW) -> (B, heads, HW, head_dim) for scaled_dot_product_attention
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(h.transpose(-1, -2).reshape(batch, channels, height, width))


class Downsample(nn.Module):
    """Halve H and W with a strided 3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels or in_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour upsampling, then a 3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels or in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
