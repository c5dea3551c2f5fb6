"""Where computations run: ``device: auto`` in a configuration means CUDA when present, else the CPU;
``precision: bf16`` runs the forward passes under autocast (mixed precision), ``fp32`` as they are."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Mixed precision for a forward pass: bfloat16 autocast for ``bf16``, nothing for ``fp32``.

    Losses are taken in float32 outside it; bf16 needs no loss scaling (its exponent is float32's).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
