"""Vector quantisation with a straight-through gradient, codebook health tracking and dead-code restarts.

The codebook and commitment terms are those of Eq. 3/4 (van den Oord et al. 2017):
``codebook = || sg[z_e] - z_q ||^2`` moves the codes toward the encoder outputs, and
``commitment = beta * || z_e - sg[z_q] ||^2`` keeps the encoder near its codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code for each row of ``z`` (M, D) in ``codebook`` (K, D) -> (M,)."""
    # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; ||z||^2 does not change the argmin
    distances = codebook.pow(2).sum(1)[None, :] - 2 * z @ codebook.t()
    return distances.argmin(dim=1)


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the code usage distribution: K for uniform use, 1 for a collapsed codebook."""
    p = counts.float() / counts.sum().clamp(min=1)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-10))).sum())


class VectorQuantizer(nn.Module):
    """Quantise (B, D, H, W) latents to the nearest of ``codebook_size`` codes of dimension D.

    Args:
        codebook_size: number of codes K.
        dim: code dimension D (the latent channels).
        commitment_weight: beta of the commitment term.
    """

    def __init__(self, codebook_size: int, dim: int, commitment_weight: float = 0.25) -> None:
        super().__init__()
        self.commitment_weight = commitment_weight
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        )
        # Usage since the last dead-code check; a buffer so that it is saved with the model.
        self.register_buffer("usage", torch.zeros(codebook_size, dtype=torch.long))

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[0]

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, H, W) indices of the nearest codes."""
        batch, dim, height, width = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, dim)
        return nearest_codes(flat, self.codebook.detach()).reshape(batch, height, width)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, H, W) indices -> (B, D, H, W) codes."""
        return self.codebook[indices].permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Return the quantised latents (straight-through), the indices, and the loss terms."""
        indices = self.indices(z)  # (B, H, W)
        z_q = self.lookup(indices)  # (B, D, H, W)
        losses = {
            "codebook": F.mse_loss(z_q, z.detach()),
            "commitment": self.commitment_weight * F.mse_loss(z, z_q.detach()),
        }
        if self.training:
            self.usage += torch.bincount(indices.flatten(), minlength=self.codebook_size)
        z_q = z + (z_q - z).detach()  # straight-through: the decoder's gradient reaches the encoder
        return z_q, indices, losses

    @torch.no_grad()
    def restart_dead_codes(self, z: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Re-initialise the codes unused since the last call to random encoder outputs ``z`` (B, D, H, W).

        Returns the number of codes restarted; used codes are left exactly as they are. Resets the usage.
        """
        dead = (self.usage == 0).nonzero().flatten()
        if len(dead) > 0:
            candidates = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            picks = torch.randint(0, len(candidates), (len(dead),), generator=generator, device="cpu")
            noise = 0.01 * candidates.std() * torch.randn(len(dead), z.shape[1], generator=generator)
            self.codebook[dead] = candidates[picks.to(candidates.device)] + noise.to(candidates.device)
        self.usage.zero_()
        return len(dead)
