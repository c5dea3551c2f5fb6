"""The forward noising process as pure functions of tensors (paper Eq. 1): betas, alpha_bar, q_sample.

The same betas drive training (``q_sample``) and every sampler (they are handed to diffusers' schedulers
as ``trained_betas``), so the two can never disagree about the schedule.
"""

from __future__ import annotations

import math

import torch

from gauda.diffusion.config import DiffusionConfig


def beta_schedule(
    schedule: str, num_timesteps: int, beta_start: float = 0.0015, beta_end: float = 0.0195
) -> torch.Tensor:
    """(T,) float64 variances beta_t of the forward process.

    Args:
        schedule: ``linear`` (beta linear in t), ``scaled_linear`` (sqrt(beta) linear in t: LDM's
            "linear"), or ``cosine`` (Nichol & Dhariwal 2021; beta_start/beta_end unused).
        num_timesteps: T.
        beta_start: beta_1.
        beta_end: beta_T.
    """
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    if schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    if schedule == "cosine":
        t = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # alpha_bar of the continuous schedule
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"beta_schedule {schedule!r}: expected 'linear', 'scaled_linear' or 'cosine'")


def config_betas(config: DiffusionConfig) -> torch.Tensor:
    """(T,) float64 betas of a diffusion configuration."""
    return beta_schedule(config.beta_schedule, config.num_train_timesteps, config.beta_start, config.beta_end)


def alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """(T,) alpha_bar_t = prod_{s <= t} (1 - beta_s) (Eq. 1)."""
    return torch.cumprod(1 - betas, dim=0)


def v_target(z0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) z0 (Salimans & Ho 2022); alpha_bar_t (B,)."""
    a = alpha_bar_t.to(z0.dtype).reshape(-1, *([1] * (z0.dim() - 1)))  # (B, 1, 1, 1)
    return a.sqrt() * eps - (1 - a).sqrt() * z0


def eps_from_v(z_t: torch.Tensor, v: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """The noise eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) z_t of a v-prediction at z_t."""
    a = alpha_bar_t.to(z_t.dtype).reshape(-1, *([1] * (z_t.dim() - 1)))  # (B, 1, 1, 1)
    return a.sqrt() * v + (1 - a).sqrt() * z_t


def q_sample(z0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """z_t = sqrt(alpha_bar_t) z0 + sqrt(1 - alpha_bar_t) eps (Eq. 1), alpha_bar_t of shape (B,)."""
    a = alpha_bar_t.to(z0.dtype).reshape(-1, *([1] * (z0.dim() - 1)))  # (B, 1, 1, 1)
    return a.sqrt() * z0 + (1 - a).sqrt() * eps
