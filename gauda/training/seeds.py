"""Seeds derived from keys, so that every random draw of a run is a function of (seed, step, ...) and a
resumed run draws exactly what an uninterrupted one would.

Two derivations, kept as they are because published runs depend on them: ``mixed_seed`` (numpy's
SeedSequence over any number of keys), used by the segmentation loop and GAUDA, and ``step_seed`` (an
affine map of (seed, step)), used by the autoencoder and diffusion trainers for their per-step draws.
"""

from __future__ import annotations

import numpy as np
import torch

_STEP_STRIDE = 1_000_003  # a prime above any step count: (seed, step) pairs do not collide in practice


def mixed_seed(*keys: int) -> int:
    """One seed from several non-negative integer keys. Tuples of one length never collide, but trailing
    zeros are padding to SeedSequence: (1, 2) and (1, 2, 0) give one seed, so GAUDA's chunk 2 of a
    request shares its key with that step's mixing stream (different draws of different generators;
    left so, since published runs depend on these seeds)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def keyed_generator(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by ``mixed_seed(*keys)``."""
    return torch.Generator(device=device).manual_seed(mixed_seed(*keys))


def step_seed(seed: int, step: int) -> int:
    """The seed of a trainer's draws at ``step`` (the autoencoder's and diffusion model's streams)."""
    return seed * _STEP_STRIDE + step


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of a trainer's random draws at ``step``: the same in a resumed run."""
    return torch.Generator().manual_seed(step_seed(seed, step))
