"""PHiSeg (Baumgartner et al. 2019): a hierarchical conditional VAE whose latent draws are posterior samples.

Three networks share the resolution levels k = 0 (full size) .. K-1, each halving the one before;
Gaussian latents z_l live on the coarsest ``latent_levels`` of them (latent level l at resolution
level l + K - latent_levels; l = 0 the finest):

- prior p(z | x): image features at every level, then z_l drawn coarse to fine, each conditioned on
  the upsampled z_{l+1};
- posterior q(z | x, y): the same network on (x, one_hot(y) - 0.5); used in training only;
- likelihood p(y | z): the features of each z_l brought up to resolution level l, merged coarse to
  fine, one logit map per level; the logits accumulate coarse to fine, s_l = sum_{j >= l} logits_j
  (each upsampled to full size), and s_0 is the prediction.

Loss: the residual multinoulli term sum_l CE(s_l, y) plus the KL(q(z_l | z_{>l}, x, y) || p(z_l | z_{>l}, x))
of each level weighted kl_weight_base ** l (the paper: 4 ** l), with the prior conditioned on the
posterior's draws. Prediction (Eq. 7): the mean of softmax(s_0) over N draws z ~ p(z | x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gauda.data.classes import IGNORE_INDEX
from gauda.nn.blocks import Downsample, Upsample, group_norm
from gauda.segmentation.unet import check_divisible, masked_cross_entropy, residual_stage

_MIN_SIGMA = 1e-5  # keeps log(sigma) in the KL finite


@dataclass
class Latents:
    """Gaussian parameters and draws of every latent level, each (B, latent_channels, h_l, w_l); index l."""

    mu: list[torch.Tensor]
    sigma: list[torch.Tensor]
    z: list[torch.Tensor]


def gaussian_kl(
    mu_q: torch.Tensor, sigma_q: torch.Tensor, mu_p: torch.Tensor, sigma_p: torch.Tensor
) -> torch.Tensor:
    """Element-wise KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2))
    = log(sigma_p / sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2."""
    return torch.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5


def phiseg_loss_terms(
    accumulated_logits: Sequence[torch.Tensor],
    masks: torch.Tensor,
    posterior: Latents,
    prior: Latents,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual cross-entropies and the KL terms of every latent level.

    Args:
        accumulated_logits: s_l per latent level, each (B, C, H, W).
        masks: (B, H, W) class ids; ``ignore_index`` pixels are left out of the cross-entropy.
        posterior: q's parameters per level.
        prior: p's parameters per level (conditioned on the posterior's draws).

    Returns:
        cross_entropy (L,): CE(s_l, y), the mean over valid pixels;
        kl (L,): the KL of level l summed over its latent elements, per full-size pixel (divided by H * W,
        so that both terms are per-pixel quantities of the same negative ELBO), averaged over the batch.
    """
    pixels = masks.shape[-2] * masks.shape[-1]
    cross_entropy = torch.stack(
        [masked_cross_entropy(s[None], masks[None], ignore_index)[0] for s in accumulated_logits]
    )  # (L,)
    kl = torch.stack(
        [
            gaussian_kl(mu_q, sigma_q, mu_p, sigma_p).sum(dim=(1, 2, 3)).mean() / pixels
            for mu_q, sigma_q, mu_p, sigma_p in zip(
                posterior.mu, posterior.sigma, prior.mu, prior.sigma, strict=True
            )
        ]
    )  # (L,)
    return cross_entropy, kl


def phiseg_loss(
    cross_entropy: torch.Tensor, kl: torch.Tensor, kl_weight_base: float = 4.0, kl_weight: float = 1.0
) -> torch.Tensor:
    """sum_l CE_l + kl_weight * sum_l kl_weight_base^l KL_l (l = 0 the finest level)."""
    weights = kl_weight_base ** torch.arange(len(kl), dtype=kl.dtype, device=kl.device)
    return cross_entropy.sum() + kl_weight * (weights * kl).sum()


class LatentHierarchy(nn.Module):
    """The prior (on x) or the posterior (on x and y) net: features per level, then latents coarse to fine."""

    def __init__(
        self, in_channels: int, channels: Sequence[int], latent_levels: int, latent_channels: int, blocks: int
    ) -> None:
        super().__init__()
        self.latent_levels = latent_levels
        self.offset = len(channels) - latent_levels  # resolution level of latent level 0
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.features = nn.ModuleList(
            residual_stage(channels[max(k - 1, 0)], c, blocks) for k, c in enumerate(channels)
        )
        self.downsample = nn.ModuleList(Downsample(c) for c in channels[:-1])
        latent_sized = channels[self.offset :]  # feature channels at each latent level
        # z_{l+1} upsampled to level l's resolution, merged with level l's features
        self.latent_input = nn.ModuleList(Upsample(latent_channels, c) for c in latent_sized[:-1])
        self.merge = nn.ModuleList(residual_stage(2 * c, c, blocks) for c in latent_sized[:-1])
        self.gaussian = nn.ModuleList(
            nn.Sequential(group_norm(c), nn.SiLU(), nn.Conv2d(c, 2 * latent_channels, 1))
            for c in latent_sized
        )

    def image_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """Features of every resolution level k, each (B, channels[k], H / 2**k, W / 2**k)."""
        h = self.stem(inputs)
        features = []
        for k, stage in enumerate(self.features):
            h = stage(h if k == 0 else self.downsample[k - 1](h))
            features.append(h)
        return features

    def latents(
        self,
        features: list[torch.Tensor],
        given: list[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> Latents:
        """Gaussians of every latent level, coarse to fine.

        Args:
            features: from ``image_features``.
            given: draws to condition each level on (the posterior's, when this is the prior in training);
                None draws z_l ~ N(mu_l, sigma_l^2) here and conditions on those.
            generator: random stream of the draws.
        """
        count = self.latent_levels
        mu: list[torch.Tensor] = [torch.empty(0)] * count
        sigma, z = list(mu), list(mu)
        for level in reversed(range(count)):
            h = features[level + self.offset]
            if level < count - 1:
                below = given[level + 1] if given is not None else z[level + 1]
                h = self.merge[level](torch.cat([h, self.latent_input[level](below)], dim=1))
            mu[level], raw = self.gaussian[level](h).chunk(2, dim=1)
            sigma[level] = F.softplus(raw) + _MIN_SIGMA
            if given is not None:
                z[level] = given[level]
            else:  # reparameterised draw
                noise = torch.randn(mu[level].shape, generator=generator, device=h.device, dtype=h.dtype)
                z[level] = mu[level] + sigma[level] * noise
        return Latents(mu, sigma, z)


class Likelihood(nn.Module):
    """p(y | z): logits of every latent level, accumulated coarse to fine (the residual logits s_l)."""

    def __init__(
        self, num_classes: int, channels: Sequence[int], latent_levels: int, latent_channels: int, blocks: int
    ) -> None:
        super().__init__()
        offset = len(channels) - latent_levels
        self.latent_features = nn.ModuleList()
        for level in range(latent_levels):
            k = level + offset
            layers: list[nn.Module] = [nn.Conv2d(latent_channels, channels[k], 3, padding=1)]
            layers += list(residual_stage(channels[k], channels[k], blocks))
            # from resolution level k up to resolution level l
            layers += [Upsample(channels[j], channels[j - 1]) for j in range(k, level, -1)]
            self.latent_features.append(nn.Sequential(*layers))
        merged = channels[: latent_levels - 1]  # levels that merge with the level below
        self.upsample = nn.ModuleList(Upsample(channels[k + 1], c) for k, c in enumerate(merged))
        self.merge = nn.ModuleList(residual_stage(2 * c, c, blocks) for c in merged)
        self.heads = nn.ModuleList(
            nn.Sequential(group_norm(c), nn.SiLU(), nn.Conv2d(c, num_classes, 1))
            for c in channels[:latent_levels]
        )

    def forward(self, z: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Accumulated logits s_l, each (B, C, H, W) at full size; s_0 is the prediction."""
        count = len(z)
        h: list[torch.Tensor] = [torch.empty(0)] * count
        h[count - 1] = self.latent_features[count - 1](z[count - 1])
        for level in reversed(range(count - 1)):
            merged = torch.cat(
                [self.latent_features[level](z[level]), self.upsample[level](h[level + 1])], dim=1
            )
            h[level] = self.merge[level](merged)  # (B, channels[l], H / 2**l, W / 2**l)
        logits = [self.heads[0](h[0])] + [
            F.interpolate(
                self.heads[level](h[level]), scale_factor=2**level, mode="bilinear", align_corners=False
            )
            for level in range(1, count)
        ]
        accumulated = list(logits)
        for level in reversed(range(count - 1)):
            accumulated[level] = logits[level] + accumulated[level + 1]  # s_l = logits_l + s_{l+1}
        return accumulated


def centred_one_hot(masks: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """one_hot(y) - 0.5 as (B, C, H, W); an ignored pixel is -0.5 in every channel (no class)."""
    labels = torch.where(masks == ignore_index, num_classes, masks)
    one_hot = F.one_hot(labels, num_classes + 1)[..., :num_classes]  # (B, H, W, C)
    return one_hot.permute(0, 3, 1, 2).float() - 0.5


class PHiSeg(nn.Module):
    """Prior, posterior and likelihood nets of PHiSeg, with the shared Bayesian segmenter interface.

    Args:
        in_channels: image channels.
        num_classes: C.
        channels: feature channels per resolution level (the paper's: 32, 64, 128, 192, 192, 192, 192).
        latent_levels: latent levels on the coarsest resolution levels (the paper: 5).
        latent_channels: channels of each latent (the paper: 2).
        blocks_per_level: residual blocks per level in each net.
        kl_weight_base: the KL of latent level l is weighted kl_weight_base ** l (the paper: 4).
        kl_weight: overall weight of the KL terms.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int],
        latent_levels: int,
        latent_channels: int = 2,
        blocks_per_level: int = 1,
        kl_weight_base: float = 4.0,
        kl_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if not 1 <= latent_levels <= len(channels):
            raise ValueError(
                f"PHiSeg: latent_levels {latent_levels}; expected 1..{len(channels)} (one per level)"
            )
        self.num_classes = num_classes
        self.levels = len(channels)
        self.kl_weight_base, self.kl_weight = kl_weight_base, kl_weight
        sizes = (channels, latent_levels, latent_channels, blocks_per_level)
        self.prior = LatentHierarchy(in_channels, *sizes)
        self.posterior = LatentHierarchy(in_channels + num_classes, *sizes)
        self.likelihood = Likelihood(num_classes, *sizes)

    @property
    def num_members(self) -> int:
        return 1

    def loss_terms(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual cross-entropies (L,) and KL terms (L,) for images (B, 3, H, W) and masks (B, H, W)."""
        check_divisible(images, self.levels, "PHiSeg")
        posterior_in = torch.cat([images, centred_one_hot(masks, self.num_classes)], dim=1)
        posterior = self.posterior.latents(self.posterior.image_features(posterior_in), generator=generator)
        prior = self.prior.latents(self.prior.image_features(images), given=posterior.z)
        return phiseg_loss_terms(self.likelihood(posterior.z), masks, posterior, prior)

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The negative ELBO with PHiSeg's weights, for images (1, B, 3, H, W) and masks (1, B, H, W)."""
        if images.shape[0] != 1 or masks.shape[0] != 1:
            raise ValueError(
                f"PHiSeg trains on one batch per step; got {images.shape[0]} (images (1, B, 3, H, W))"
            )
        cross_entropy, kl = self.loss_terms(images[0], masks[0], generator)
        loss = phiseg_loss(cross_entropy, kl, self.kl_weight_base, self.kl_weight)
        logs = {"cross_entropy": float(cross_entropy[0].detach()), "kl": float(kl.detach().sum())}
        return loss, logs

    @torch.no_grad()
    def sample_posterior(
        self, images: torch.Tensor, num_samples: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """softmax(s_0) of N draws z ~ p(z | x), (N, B, C, H, W).

        Args:
            images: (B, 3, H, W).
            num_samples: N (the reference: 16 for validation, 50 for testing).
            generator: random stream of the draws.
        """
        if num_samples is None or num_samples < 1:
            raise ValueError(
                f"PHiSeg draws num_samples posterior samples; expected an integer >= 1, got {num_samples}"
            )
        check_divisible(images, self.levels, "PHiSeg")
        features = self.prior.image_features(images)  # computed once, shared by the N draws
        samples = [
            torch.softmax(self.likelihood(self.prior.latents(features, generator=generator).z)[0], dim=1)
            for _ in range(num_samples)
        ]
        return torch.stack(samples)
