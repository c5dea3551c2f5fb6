"""A frozen generator: a diffusion run and its two autoencoders, class conditions in, decoded pairs out.

This is what every consumer of generated data holds (``gauda sample``, GAUDA's training scheme, the
generator's evaluation): it loads once, then ``generate`` turns one condition per pair into images and
masks. The sampler stays a plain function (``gauda.generation.samplers``); this class only wires it to
the networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gauda.autoencoders.runs import load_autoencoder
from gauda.autoencoders.vqgan import VQGAN, image_to_input, mask_to_input
from gauda.config import ConfigError, finite_number
from gauda.device import resolve_device
from gauda.diffusion.config import DiffusionConfig
from gauda.diffusion.denoiser import DiffusionUNet
from gauda.diffusion.latents import decode_pairs
from gauda.diffusion.runs import load_diffusion
from gauda.diffusion.schedule import config_betas
from gauda.generation.samplers import SAMPLERS, sampler_function

DEFAULT_STEPS: dict[str, int] = {name: steps for name, (_, steps) in SAMPLERS.items()}


@dataclass(frozen=True)
class Sampling:
    """How to sample: the sampler, its steps and the guidance w of Eq. 6 (1 = unguided)."""

    sampler: str
    steps: int
    guidance: float

    @property
    def network_calls(self) -> int:
        """Denoiser evaluations per batch (guidance other than 1 costs two per step)."""
        return self.steps * (1 if self.guidance == 1 else 2)


def resolve_sampling(
    config: DiffusionConfig,
    sampler: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
) -> Sampling:
    """Sampling options, each defaulting to the diffusion run's ``config``, checked against its schedule.

    Default steps: the run's ``sampling_steps`` for the run's own sampler, else 1000 for ddpm, 50 for
    ddim and 20 for dpmpp. Errors start with the option's name (``sampler``, ``steps``, ``guidance``).
    """
    if sampler is not None and sampler not in DEFAULT_STEPS:
        raise ConfigError(f"sampler {sampler!r}: expected one of {', '.join(DEFAULT_STEPS)}")
    sampler = sampler or config.sampler
    if steps is None:
        steps = config.sampling_steps if sampler == config.sampler else DEFAULT_STEPS[sampler]
    guidance = config.guidance if guidance is None else guidance
    if not 1 <= steps <= config.num_train_timesteps:
        raise ConfigError(
            f"steps {steps}: expected 1..{config.num_train_timesteps} (the run's num_train_timesteps)"
        )
    guidance = finite_number(guidance, "guidance", 0, "a finite number >= 0 (1 = unguided)")
    return Sampling(sampler, steps, guidance)


@torch.no_grad()
def sample_latents(
    model: DiffusionUNet,
    conditions: torch.Tensor | None,
    num_samples: int,
    sampling: Sampling,
    betas: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """(num_samples, D, s, s) joint latents from one batch of noise drawn from ``generator``.

    Args:
        model: the denoiser.
        conditions: (num_samples, C) multi-hot classes per sample, or None for unconditional samples.
        num_samples: batch size.
        sampling: sampler, steps, guidance.
        betas: the training schedule's betas.
        generator: seeded generator on the model's device.
    """
    device = next(model.parameters()).device
    shape = (num_samples, model.in_channels, model.latent_size, model.latent_size)
    noise = torch.randn(shape, generator=generator, device=device)  # (B, D, s, s)
    if conditions is not None:
        conditions = conditions.to(device)
    return sampler_function(sampling.sampler)(
        model.as_denoiser(),
        noise,
        conditions,
        sampling.steps,
        sampling.guidance,
        betas=betas,
        generator=generator,
    )


class PairGenerator:
    """The EMA denoiser of a diffusion run with the run's image and mask autoencoders, frozen.

    Args:
        model: the denoiser.
        image_autoencoder, mask_autoencoder: the VQ-GANs whose latents the denoiser models.
        info: the run's information (``load_diffusion``).
    """

    def __init__(
        self, model: DiffusionUNet, image_autoencoder: VQGAN, mask_autoencoder: VQGAN, info: dict
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.image_autoencoder = image_autoencoder.eval().requires_grad_(False)
        self.mask_autoencoder = mask_autoencoder.eval().requires_grad_(False)
        self.info = info
        self.config: DiffusionConfig = info["config"]
        self.class_names: tuple[str, ...] = tuple(info["class_names"])
        self.class_frequency: torch.Tensor = torch.as_tensor(info["class_frequency"], dtype=torch.float64)
        self.betas = config_betas(self.config)

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "auto") -> PairGenerator:
        """The generator of a finished ``gauda train diffusion`` run, on ``device``."""
        torch_device = resolve_device(str(device))
        model, info = load_diffusion(run, device=str(torch_device))
        image_ae, _ = load_autoencoder(info["autoencoders"]["image"], device=str(torch_device))
        mask_ae, _ = load_autoencoder(info["autoencoders"]["mask"], device=str(torch_device))
        return cls(model, image_ae, mask_ae, info)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sampling(
        self, sampler: str | None = None, steps: int | None = None, guidance: float | None = None
    ) -> Sampling:
        """The sampling options, each defaulting to the run's (``resolve_sampling``)."""
        return resolve_sampling(self.config, sampler, steps, guidance)

    @torch.no_grad()
    def generate(
        self,
        conditions: torch.Tensor | None,
        sampling: Sampling,
        generator: torch.Generator,
        num_samples: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of pairs: images (B, 3, H, W) in [0, 1] and masks (B, H, W) of class ids, on the
        generator's device.

        Args:
            conditions: (B, C) multi-hot classes, one row per pair; None for B unconditional pairs.
            sampling: sampler, steps and guidance (``sampling()``).
            generator: seeded generator on the generator's device; it fixes the pairs.
            num_samples: B when ``conditions`` is None.
        """
        if conditions is None:
            if num_samples is None:
                raise ValueError("generate: give conditions or num_samples")
            count = num_samples
        else:
            if conditions.dim() != 2 or conditions.shape[1] != self.num_classes:
                raise ValueError(
                    f"conditions {tuple(conditions.shape)}: expected (B, {self.num_classes}) multi-hot rows"
                )
            count = conditions.shape[0]
        z = sample_latents(self.model, conditions, count, sampling, self.betas, generator)
        return decode_pairs(z, self.image_autoencoder, self.mask_autoencoder, self.info["image_channels"])

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real pairs through both autoencoders, the way generated latents are decoded: images
        (B, 3, H, W) in [0, 1] and masks (B, H, W) in, their reconstructions out (255 becomes a class).

        What a perfect diffusion model could at best produce on these autoencoders."""
        device = self.device
        z = torch.cat(
            [
                self.image_autoencoder.encode(image_to_input(images.to(device))),
                self.mask_autoencoder.encode(mask_to_input(masks.to(device), self.num_classes)),
            ],
            dim=1,
        )  # (B, D_x + D_y, s, s), the joint latent the denoiser models
        return decode_pairs(z, self.image_autoencoder, self.mask_autoencoder, self.info["image_channels"])
