"""Configuration of the training schemes: default, Adaptive Sampling and GAUDA (paper Sec. 2.1, 3.3)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from gauda.config import check
from gauda.diffusion.config import SamplerName

SchemeName = Literal["default", "adaptive", "gauda"]
SCHEME_NAMES: tuple[str, ...] = ("default", "adaptive", "gauda")


@dataclass(frozen=True)
class SchemeConfig:
    """How the segmentation training loop uses its validation points.

    ``default`` trains on the real batches as drawn. ``adaptive`` turns each validation's per-class IoU
    into frame sampling weights. ``gauda`` asks the frozen generator of a diffusion run (``generator``)
    for pairs of the ``top_k`` most uncertain classes (Eq. 8) and mixes them into the following batches.
    """

    name: SchemeName = "default"
    # -- Adaptive Sampling: class weight w_c from the validation IoU_c, frame weight from its classes
    weight_rule: Literal["softmax", "linear"] = "softmax"  # softmax((1 - IoU) / T), or 1 - IoU + floor
    temperature: float = 0.2  # of the softmax rule
    linear_floor: float = 0.05  # of the linear rule, so that a perfect class keeps some weight
    frame_weight: Literal["max", "mean"] = "max"  # over the classes a frame contains
    # -- GAUDA
    generator: str | None = None  # a `gauda train diffusion` run folder
    top_k: int = 5  # most uncertain classes asked for at each validation (paper: 5)
    num_pairs: int = 100  # synthetic pairs generated at each validation
    replace_fraction: float = 0.25  # of each member's real batch, replaced by synthetic pairs
    condition: Literal["each", "joint"] = "each"  # one chosen class per pair (round robin), or all at once
    sampler: SamplerName | None = None  # None: the diffusion run's own
    sampling_steps: int | None = None  # None: the run's for its sampler, else the sampler's default
    guidance: float | None = None  # classifier-free guidance w of Eq. 6; None: the run's
    generation_batch_size: int = 16  # pairs per sampler call (one chunk of the producer)
    asynchronous: bool = True  # generate the next chunks in a background thread while training runs
    curation_threshold: float = 0.0  # drop pairs whose mask agrees with the model below this IoU; 0 = off

    def __post_init__(self) -> None:
        check(self.temperature > 0, "temperature", "a number > 0", self.temperature)
        check(self.linear_floor >= 0, "linear_floor", "a number >= 0", self.linear_floor)
        check(self.top_k >= 1, "top_k", "an integer >= 1", self.top_k)
        check(self.num_pairs >= 1, "num_pairs", "an integer >= 1", self.num_pairs)
        check(0 < self.replace_fraction <= 1, "replace_fraction", "a number in (0, 1]", self.replace_fraction)
        check(
            self.sampling_steps is None or self.sampling_steps >= 1,
            "sampling_steps",
            "an integer >= 1 or null",
            self.sampling_steps,
        )
        check(self.guidance is None or self.guidance >= 0, "guidance", "a number >= 0 or null", self.guidance)
        check(
            self.generation_batch_size >= 1,
            "generation_batch_size",
            "an integer >= 1",
            self.generation_batch_size,
        )
        check(
            0 <= self.curation_threshold <= 1,
            "curation_threshold",
            "a number in [0, 1] (0 = off)",
            self.curation_threshold,
        )


# The paper: top 5 classes, a batch of synthetic pairs per validation, DDPM-1000 (here: the run's sampler).
_PAPER = SchemeConfig()
# A 2-core CPU: fewer pairs per validation and three classes of the nine synthetic ones.
_TINY = replace(_PAPER, top_k=3, num_pairs=32, generation_batch_size=16)

SCHEME_PRESETS: dict[str, SchemeConfig] = {"tiny": _TINY, "paper": _PAPER}
