"""The skeleton the autoencoder and diffusion trainers share: the run folder's resume guard, a train state
that saves and restores (networks, optimisers, RNG, step, wall time), and the checkpoint cadence.

A checkpoint is ``last.safetensors`` (``gauda.checkpoint``): each network and optimiser under its own key
(``model``, ``ema``, ``discriminator``, ``optimizer``, ...), ``stage``, ``step``, ``seconds``, ``rng`` and
what the trainer adds (its configuration). A resumed run restores all of it and continues at ``step``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gauda.checkpoint import (
    LAST_FILE,
    check_stage,
    load_checkpoint,
    load_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from gauda.config import ConfigError


def check_run_folder(out: Path, stage: str, resume: bool) -> Path:
    """The path of ``out``'s last checkpoint, after the resume guard: a folder holding a run is refused
    unless ``resume``; ``resume`` needs a checkpoint there, of this ``stage`` (checked before anything is
    written into another stage's run)."""
    last = out / LAST_FILE
    if last.exists() and not resume:
        raise ConfigError(
            f"--out {out}: holds a run already ({LAST_FILE}); pass --resume or choose another folder"
        )
    if resume and not last.exists():
        raise ConfigError(f"--resume: {out} has no {LAST_FILE} to continue from")
    if resume:
        check_stage(last, stage)
    return last


@dataclass
class TrainState:
    """What a checkpoint holds and a resume restores.

    Args:
        stage: the checkpoint's ``stage`` (``check_stage`` compares it on resume).
        modules: networks by checkpoint key, each with the name an error gives it
            (``{"model": ("denoiser", net), "ema": ("EMA denoiser", ema)}``).
        optimizers: optimisers by checkpoint key.
    """

    stage: str
    modules: Mapping[str, tuple[str, torch.nn.Module]]
    optimizers: Mapping[str, torch.optim.Optimizer]
    step: int = 0  # completed steps
    seconds: float = 0.0  # training wall time up to the last checkpoint
    _began: float = field(default_factory=time.perf_counter, repr=False)

    def state_dict(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        state: dict[str, Any] = {"stage": self.stage}
        state.update({key: module.state_dict() for key, (_, module) in self.modules.items()})
        state.update({key: optimizer.state_dict() for key, optimizer in self.optimizers.items()})
        return {**state, "step": self.step, "seconds": self.seconds, "rng": rng_state(), **(extra or {})}

    def lap(self, step: int) -> None:
        """``step`` steps are complete: count the time since the last lap (or ``start_clock``)."""
        now = time.perf_counter()
        self.step, self.seconds, self._began = step, self.seconds + now - self._began, now

    def save(self, path: Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the state (as of the last ``lap``) to ``path`` atomically."""
        return save_checkpoint(path, self.state_dict(extra))

    def restore(
        self, path: Path, device: str | torch.device, loaded: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Load what ``path`` holds (or ``loaded``, the checkpoint read already) into the networks,
        optimisers and RNGs; returns the checkpoint."""
        state = dict(loaded) if loaded is not None else load_checkpoint(path, device=device)
        for key, (name, module) in self.modules.items():
            load_weights(module, state[key], path, name)
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[key])
        set_rng_state(state["rng"])
        # checkpoints of segmenters written before TrainState carry no time
        self.step, self.seconds = int(state["step"]), float(state.get("seconds", 0.0))
        self._began = time.perf_counter()
        return state

    def start_clock(self) -> None:
        """Start timing the training (after the set-up that is not training time)."""
        self._began = time.perf_counter()


def checkpoint_due(step: int, every: int, last: int) -> bool:
    """Whether the state after ``step`` (0-based) is saved: every ``every`` steps and after the ``last``."""
    return (step + 1) % every == 0 or step + 1 == last
