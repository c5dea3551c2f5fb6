"""Configuration of the training schemes: default, Adaptive Sampling and GAUDA (paper Sec. 2.1, 3.3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from gauda.config import check, resolve, to_dict
from gauda.data.config import DATA_PRESETS, DataConfig
from gauda.diffusion.config import SamplerName
from gauda.segmentation.config import SEGMENTATION_PRESETS, SEGMENTER_SLICES, SegmentationConfig
from gauda.uncertainty.estimates import POOLINGS, QUANTITIES, Pooling, Quantity

SchemeName = Literal["default", "adaptive", "uncertainty", "gauda"]
SCHEME_NAMES: tuple[str, ...] = ("default", "adaptive", "uncertainty", "gauda")


@dataclass(frozen=True)
class SchemeConfig:
    """How the segmentation training loop uses its validation points.

    ``default`` trains on the real batches as drawn. ``adaptive`` turns each validation's per-class IoU
    into frame sampling weights. ``uncertainty`` turns each class's uncertainty UE_c into frame sampling
    weights instead (Supp. 8.2 on images). ``gauda`` asks the frozen generator of a diffusion run
    (``generator``) for pairs of the ``top_k`` most uncertain classes and mixes them into the following
    batches, and (``real_sampling``) draws the real frames by uncertainty too.
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
    # replace: the pairs take the place of real frames (the paper's); append: as many pairs are added to
    # each member's batch, so no real frame is displaced (a step costs that share more)
    mixing: Literal["replace", "append"] = "replace"
    condition: Literal["each", "joint"] = "each"  # one chosen class per pair (round robin), or all at once
    sampler: SamplerName | None = None  # None: the diffusion run's own
    sampling_steps: int | None = None  # None: the run's for its sampler, else the sampler's default
    guidance: float | None = None  # classifier-free guidance w of Eq. 6; None: the run's
    generation_batch_size: int = 16  # pairs per sampler call (one chunk of the producer)
    asynchronous: bool = True  # generate the next chunks in a background thread while training runs
    # Opt-in, biased: dropping pairs the current model disagrees with drops the rare-class pairs it misses
    curation_threshold: float = 0.0  # drop pairs whose mask agrees with the model below this IoU; 0 = off
    # -- the class-wise uncertainty UE_c (gauda.uncertainty.estimates); the paper's literal Eq. 8 is
    # predicted / variance / no missed_ratio
    uncertainty_pooling: Pooling = "predicted"  # P_c: pixels predicted as c, labelled c, or either (union)
    uncertainty_quantity: Quantity = "variance"  # or mutual_information
    # a class labelled on the validation split but predicted on at most this share of its labelled pixels
    # counts as the most uncertain (+inf); null: no such rule (a never-predicted class has no estimate)
    missed_ratio: float | None = None
    class_choice: Literal["uncertainty", "random"] = "uncertainty"  # random: the control of the signal
    # gauda: real frames drawn uniformly, by UE_c (the uncertainty scheme's weights), or by validation
    # IoU (Adaptive Sampling's weights: GAUDA as generated pairs on top of Adaptive Sampling)
    real_sampling: Literal["uniform", "uncertainty", "adaptive"] = "uniform"
    presence_pixels: int = 0  # keep a generated pair only if its requested class has >= this many pixels
    keep_requested_frames: bool = False  # never replace a real frame that holds a requested class
    # a generated pair supervises all its pixels (null, the paper's), or only those within this many pixels
    # of its requested classes (the rest ignored): it teaches what it was asked for, not the frequent
    # organs that the real frames teach better
    pair_label_margin: int | None = None

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
            self.uncertainty_pooling in POOLINGS,
            "uncertainty_pooling",
            "one of " + ", ".join(POOLINGS),
            self.uncertainty_pooling,
        )
        check(
            self.uncertainty_quantity in QUANTITIES,
            "uncertainty_quantity",
            "one of " + ", ".join(QUANTITIES),
            self.uncertainty_quantity,
        )
        check(
            self.missed_ratio is None or 0 <= self.missed_ratio < 1,
            "missed_ratio",
            "a number in [0, 1) or null",
            self.missed_ratio,
        )
        check(
            self.pair_label_margin is None or self.pair_label_margin >= 0,
            "pair_label_margin",
            "an integer >= 0 or null",
            self.pair_label_margin,
        )
        check(self.presence_pixels >= 0, "presence_pixels", "an integer >= 0", self.presence_pixels)
        check(
            0 <= self.curation_threshold <= 1,
            "curation_threshold",
            "a number in [0, 1] (0 = off)",
            self.curation_threshold,
        )


# The paper: top 5 classes, a batch of synthetic pairs per validation, DDPM-1000 (here: the run's sampler).
# GAUDA's choices beyond the paper's text, in both presets (the dataclass defaults stay the literal
# reading, which the gauda-literal variant restores; BENCHMARKS.md, "Training schemes"):
_GAUDA = {
    "uncertainty_pooling": "union",  # a class the model misses still has an estimate
    "missed_ratio": 0.1,  # a class labelled but predicted on <= 10 % of its pixels is the most uncertain
    "real_sampling": "adaptive",  # GAUDA "extends Adaptive Sampling" (Sec. 2.1); beat the other weights
    "presence_pixels": 4,  # a generated pair is kept only if its mask holds the class asked for
    "keep_requested_frames": True,  # and never replaces a real frame of a requested class
}
_PAPER = replace(SchemeConfig(), **_GAUDA)
# A 2-core CPU: 3 of the 9 classes, 64 pairs per request (about a second), one pair in each batch of 8.
_TINY = replace(_PAPER, top_k=3, num_pairs=64, generation_batch_size=16, replace_fraction=0.125)

SCHEME_PRESETS: dict[str, SchemeConfig] = {"tiny": _TINY, "paper": _PAPER}


# Named variants of a scheme for `gauda experiment`: the controls and ablations of GAUDA, each a base
# scheme with some fields changed; a run folder and a table column carry the variant's name.
SCHEME_VARIANTS: dict[str, tuple[SchemeName, dict[str, Any]]] = {
    # the control of the signal: k classes drawn at random at each validation
    "gauda-random": ("gauda", {"class_choice": "random"}),
    # the paper read literally: Eq. 8 over predicted pixels, no real-frame weighting, no pair filters
    "gauda-literal": (
        "gauda",
        {
            "uncertainty_pooling": "predicted",
            "uncertainty_quantity": "variance",
            "missed_ratio": None,
            "real_sampling": "uniform",
            "presence_pixels": 0,
            "keep_requested_frames": False,
        },
    ),
    # ablations: generated pairs alone (uniform real frames); no presence filter or frame protection
    "gauda-pairs-only": ("gauda", {"real_sampling": "uniform"}),
    "gauda-unfiltered": ("gauda", {"presence_pixels": 0, "keep_requested_frames": False}),
    # the real frames by UE_c (the uncertainty scheme's weights) instead of Adaptive Sampling's
    "gauda-uncertainty-weights": ("gauda", {"real_sampling": "uncertainty"}),
}
EXPERIMENT_SCHEMES: tuple[str, ...] = SCHEME_NAMES + tuple(SCHEME_VARIANTS)


def scheme_variant(scheme: SchemeConfig, name: str) -> SchemeConfig:
    """``scheme`` as the scheme or variant ``name`` (one of ``EXPERIMENT_SCHEMES``)."""
    if name in SCHEME_NAMES:
        return replace(scheme, name=name)  # type: ignore[arg-type]
    if name not in SCHEME_VARIANTS:
        raise ValueError(f"scheme {name!r}: expected one of {', '.join(EXPERIMENT_SCHEMES)}")
    base, changes = SCHEME_VARIANTS[name]
    return replace(scheme, name=base, **changes)


def base_scheme(name: str) -> str:
    """The scheme a variant name runs (the name itself for a plain scheme)."""
    return SCHEME_VARIANTS[name][0] if name in SCHEME_VARIANTS else name


class SegmenterStageConfig(Protocol):
    """The slices a segmenter run reads (the whole ``GaudaConfig`` is one): data, model and scheme."""

    @property
    def data(self) -> DataConfig: ...

    @property
    def segmentation(self) -> SegmentationConfig: ...

    @property
    def scheme(self) -> SchemeConfig: ...


@dataclass(frozen=True)
class SegmenterRunConfig:
    """A segmenter run's configuration as a stage below the presets reads it back: the slices of
    ``SegmenterStageConfig`` over the ``tiny`` presets (as the command line resolves a run's file)."""

    data: DataConfig = field(default_factory=lambda: DATA_PRESETS["tiny"])
    segmentation: SegmentationConfig = field(default_factory=lambda: SEGMENTATION_PRESETS["tiny"])
    scheme: SchemeConfig = field(default_factory=lambda: SCHEME_PRESETS["tiny"])


def segmenter_defaults() -> dict[str, Any]:
    """The defaults of the options a segmenter run reads, as a configuration dictionary: what a run
    trained before an option existed did (``run_changes``)."""
    return to_dict(SegmenterRunConfig(DataConfig(), SegmentationConfig(), SchemeConfig()))


def segmenter_run_config(config_file: str | Path, overrides: Sequence[str] = ()) -> SegmenterRunConfig:
    """The data, segmentation and scheme slices of a run's ``config.yaml`` (others it holds are left
    alone), changed by ``KEY=VALUE`` overrides."""
    return resolve(
        SegmenterRunConfig, SegmenterRunConfig(), config_file, overrides, file_keys=SEGMENTER_SLICES
    )
