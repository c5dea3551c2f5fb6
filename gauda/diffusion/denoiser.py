"""The joint denoiser eps_theta(z_t, t, c) of Eq. 5: a UNet on concat(z_image, z_mask).

Every residual block uses adaptive group norm driven by one embedding per sample: the sinusoidal time
embedding through an MLP, plus the embedding of the condition (a linear map of the multi-hot class
vector, or a learned null embedding for the unconditional model of classifier-free guidance).
Multi-head self-attention runs at the configured feature resolutions. Built from ``gauda.nn.blocks``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gauda.diffusion.config import DiffusionConfig
from gauda.diffusion.schedule import alpha_bar, config_betas, eps_from_v
from gauda.nn.blocks import Downsample, ResidualBlock, SelfAttention, Upsample, group_norm


def timestep_embedding(t: torch.Tensor, channels: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, channels) sinusoidal embedding (Vaswani et al.; as in DDPM)."""
    half = channels // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)  # (half,)
    angles = t.float()[:, None] * frequencies[None]  # (B, half)
    embedding = torch.cat([angles.cos(), angles.sin()], dim=1)
    return F.pad(embedding, (0, channels % 2))


class ConditionEmbedding(nn.Module):
    """Multi-hot classes (B, C) -> (B, E) by a linear map; the null condition is a learned vector."""

    def __init__(self, num_classes: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_classes, channels)
        self.null = nn.Parameter(torch.zeros(channels))

    def forward(
        self, classes: torch.Tensor | None, null: torch.Tensor | None, batch_size: int
    ) -> torch.Tensor:
        if classes is None:  # every row unconditional
            return self.null.expand(batch_size, -1)
        embedding = self.linear(classes.float())  # (B, E)
        if null is None:
            return embedding
        return torch.where(null[:, None], self.null.expand_as(embedding), embedding)


class AttentionResidual(nn.Module):
    """A residual block with adaptive group norm, optionally followed by self-attention."""

    def __init__(
        self, in_channels: int, out_channels: int, embedding: int, heads: int | None, dropout: float
    ):
        super().__init__()
        self.block = ResidualBlock(in_channels, out_channels, embedding_channels=embedding, dropout=dropout)
        self.attention = SelfAttention(out_channels, heads) if heads else None

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        x = self.block(x, embedding)
        return self.attention(x) if self.attention is not None else x


def attention_heads(config: DiffusionConfig, channels: int) -> int:
    """Heads of the self-attention on ``channels`` features: channels // head_channels, or num_heads."""
    if config.head_channels is not None:
        if channels % config.head_channels:
            raise ValueError(
                f"diffusion.head_channels {config.head_channels}: must divide the level's {channels} channels"
            )
        return channels // config.head_channels
    if channels % config.num_heads:
        raise ValueError(
            f"diffusion.num_heads {config.num_heads}: must divide the {channels} channels of every level "
            "with attention; change num_heads or set head_channels"
        )
    return config.num_heads


class DiffusionUNet(nn.Module):
    """eps_theta(z_t, t, c): (B, in_channels, s, s) noisy joint latents -> (B, in_channels, s, s) noise.

    Args:
        in_channels: latent channels of the image plus the mask autoencoder.
        num_classes: length of the multi-hot condition.
        latent_size: side s of the latents (with ``patch_size`` p, the features start at s / p and
            attention runs where s / p / 2^level is in ``attention_resolutions``).
        config: architecture (channels, num_res_blocks, attention_resolutions, heads, dropout, patch_size).
    """

    def __init__(self, in_channels: int, num_classes: int, latent_size: int, config: DiffusionConfig) -> None:
        super().__init__()
        levels, patch = len(config.channels), config.patch_size
        if latent_size % (patch * 2 ** (levels - 1)):
            raise ValueError(
                f"latent size {latent_size}: must be divisible by diffusion.patch_size {patch} x "
                f"2^{levels - 1} for {levels} levels of diffusion.channels {list(config.channels)}"
            )
        self.in_channels, self.num_classes, self.latent_size = in_channels, num_classes, latent_size
        self.patch_size = patch
        self.prediction = config.prediction
        # alpha_bar of the schedule, to turn a v-prediction into the eps that samplers take (not saved)
        self.register_buffer("alpha_bar", alpha_bar(config_betas(config)).float(), persistent=False)
        base = config.channels[0]
        embedding = 4 * base
        self.time_channels = base
        self.time_mlp = nn.Sequential(nn.Linear(base, embedding), nn.SiLU(), nn.Linear(embedding, embedding))
        self.condition = ConditionEmbedding(num_classes, embedding)

        def heads(level: int, channels: int) -> int | None:
            resolution = latent_size // patch // 2**level
            return attention_heads(config, channels) if resolution in config.attention_resolutions else None

        self.stem = nn.Conv2d(in_channels * patch**2, base, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [base]
        previous = base
        for level, channels in enumerate(config.channels):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks):
                blocks.append(
                    AttentionResidual(previous, channels, embedding, heads(level, channels), config.dropout)
                )
                previous = channels
                skips.append(channels)
            self.down.append(blocks)
            if level < levels - 1:
                self.downsample.append(Downsample(previous))
                skips.append(previous)
        top = config.channels[-1]
        self.middle = nn.ModuleList(
            [
                AttentionResidual(top, top, embedding, attention_heads(config, top), config.dropout),
                AttentionResidual(top, top, embedding, None, config.dropout),
            ]
        )
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(levels)):
            channels = config.channels[level]
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks + 1):  # one more block to take the downsampling's skip
                blocks.append(
                    AttentionResidual(
                        previous + skips.pop(), channels, embedding, heads(level, channels), config.dropout
                    )
                )
                previous = channels
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(Upsample(previous))
        self.norm = group_norm(previous)
        self.head = nn.Conv2d(previous, in_channels * patch**2, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # start by predicting zero noise
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        classes: torch.Tensor | None = None,
        null: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise (or v, with ``prediction: v``) of ``z`` (B, D, s, s) at timesteps ``t`` (B,).

        Args:
            z: noisy joint latents.
            t: integer timesteps in [0, T).
            classes: (B, C) multi-hot condition; None = the null condition for every row.
            null: (B,) bool, rows that get the null condition instead of ``classes``.
        """
        embedding = self.time_mlp(timestep_embedding(t, self.time_channels))  # (B, E)
        embedding = embedding + self.condition(classes, null, z.shape[0])
        h = self.stem(F.pixel_unshuffle(z, self.patch_size))  # (B, c0, s / p, s / p)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, embedding)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)  # (B, c, s / 2^(level+1), ...)
                skips.append(h)
        for block in self.middle:
            h = block(h, embedding)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return F.pixel_shuffle(self.head(F.silu(self.norm(h))), self.patch_size)  # (B, D, s, s)

    def as_denoiser(self):
        """The network as a sampler's ``denoiser(z_t, t, condition, null=None) -> eps`` (condition None:
        every row null; ``null`` (B,) bool: these rows null), so that a guided step makes its conditional
        and unconditional predictions in one batch; a v-predicting network's output is converted to eps."""

        def denoiser(
            z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None, null: torch.Tensor | None = None
        ) -> torch.Tensor:
            output = self(z, t, condition, null)
            return output if self.prediction == "epsilon" else eps_from_v(z, output, self.alpha_bar[t])

        denoiser.accepts_null = True  # type: ignore[attr-defined]
        return denoiser
