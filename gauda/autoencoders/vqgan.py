"""The VQ-GAN autoencoder (encoder, vector quantiser, decoder) and the latent interface of diffusion.

``encode(x)`` gives the continuous latents before quantisation divided by ``scale`` (so that they have
unit variance over the training set); ``decode(z)`` multiplies back, quantises and decodes. The
diffusion stage works on these continuous latents and relies on the quantiser to snap its samples
back onto the codebook.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gauda.autoencoders.config import AutoencoderConfig
from gauda.autoencoders.quantizer import VectorQuantizer
from gauda.nn.blocks import Downsample, ResidualBlock, Upsample, group_norm


class Encoder(nn.Module):
    """(B, in_channels, H, W) -> (B, latent_channels, H / 2^(L-1), W / 2^(L-1)) for L = len(channels)."""

    def __init__(
        self, in_channels: int, channels: tuple[int, ...], num_res_blocks: int, latent_channels: int
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        layers: list[nn.Module] = []
        previous = channels[0]
        for level, width in enumerate(channels):
            for _ in range(num_res_blocks):
                layers.append(ResidualBlock(previous, width))
                previous = width
            if level < len(channels) - 1:
                layers.append(Downsample(width))
        self.levels = nn.Sequential(*layers)
        self.middle = ResidualBlock(previous, previous)
        self.head = nn.Sequential(
            group_norm(previous), nn.SiLU(), nn.Conv2d(previous, latent_channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.middle(self.levels(self.stem(x))))


class Decoder(nn.Module):
    """Mirror of ``Encoder`` with one more residual block per level."""

    def __init__(
        self, out_channels: int, channels: tuple[int, ...], num_res_blocks: int, latent_channels: int
    ) -> None:
        super().__init__()
        widths = channels[::-1]
        self.stem = nn.Conv2d(latent_channels, widths[0], 3, padding=1)
        self.middle = ResidualBlock(widths[0], widths[0])
        layers: list[nn.Module] = []
        previous = widths[0]
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks + 1):
                layers.append(ResidualBlock(previous, width))
                previous = width
            if level < len(widths) - 1:
                layers.append(Upsample(width))
        self.levels = nn.Sequential(*layers)
        self.norm = group_norm(previous)
        self.head = nn.Conv2d(previous, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(F.silu(self.norm(self.levels(self.middle(self.stem(z))))))


class VQGAN(nn.Module):
    """Encoder, vector quantiser and decoder for images (3 -> 3) or one-hot masks (C -> C logits).

    Args:
        in_channels: 3 for images, the number of classes for masks.
        out_channels: 3 for images, the number of classes for masks (logits).
        config: architecture sizes.
    """

    def __init__(self, in_channels: int, out_channels: int, config: AutoencoderConfig) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.encoder = Encoder(in_channels, config.channels, config.num_res_blocks, config.latent_channels)
        self.quantizer = VectorQuantizer(
            config.codebook_size, config.latent_channels, config.commitment_weight
        )
        self.decoder = Decoder(out_channels, config.channels, config.num_res_blocks, config.latent_channels)
        self.register_buffer("scale", torch.ones(()))  # latent standard deviation, set after training

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruct ``x``: returns (output, code indices (B, h, w), vector-quantisation losses)."""
        z_q, indices, losses = self.quantizer(self.encoder(x))
        return self.decoder(z_q), indices, losses

    def last_layer(self) -> torch.Tensor:
        """Weight of the decoder's last layer (for VQ-GAN's adaptive adversarial weight)."""
        return self.decoder.head.weight

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> continuous, unit-variance latents (B, D, h, w), before quantisation."""
        return self.encoder(x) / self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, D, h, w) -> quantised -> decoded output (B, out_channels, H, W)."""
        return self.decoder(self.quantizer.lookup(self.quantizer.indices(z * self.scale)))


def mask_to_input(mask: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """(B, H, W) class ids -> (B, C, H, W) one-hot floats; ignored pixels are all-zero vectors."""
    valid = mask != ignore_index
    one_hot = F.one_hot(torch.where(valid, mask, 0), num_classes).permute(0, 3, 1, 2).float()
    return one_hot * valid[:, None]


def image_to_input(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1], the range the image autoencoder works in."""
    return image * 2 - 1


def output_to_image(output: torch.Tensor) -> torch.Tensor:
    """Decoder output in [-1, 1] -> images in [0, 1]."""
    return ((output + 1) / 2).clamp(0, 1)
