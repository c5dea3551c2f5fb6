"""Configuration of the demo's own stages: the per-class samples, the generator's evaluation and the
simulation (every training stage keeps its own slice: autoencoders, diffusion, segmentation, ...)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gauda.config import check

SCHEME_NAMES: tuple[str, ...] = ("default", "adaptive", "gauda")
SCALED_SLICES: tuple[str, ...] = ("mask_autoencoder", "image_autoencoder", "diffusion", "segmentation")


@dataclass(frozen=True)
class DemoConfig:
    """What ``gauda demo`` runs beyond the training stages' own configuration."""

    schemes: tuple[str, ...] = SCHEME_NAMES  # segmenters trained, one per scheme, with segmentation.*
    samples_per_class: int = 8  # generated pairs conditioned on each class alone (grid and hit rate)
    sample_batch_size: int = 16
    # The generator's evaluation (gauda evaluate generator): pairs per guidance scale, the scales (the
    # first is the main evaluation, the diffusion run's guidance when empty), Synthetic-Only segmenter.
    generator_num_samples: int = 256
    guidance_sweep: tuple[float, ...] = (2.0, 1.0, 4.0)
    synthetic_only: bool = True
    toy_seeds: int = 5  # seeds of the 2D simulation (toy.seeds is the CLI's own default)
    # Training steps of the autoencoders, the diffusion model and the segmenters, as a multiple of their
    # slices' steps (``gauda.pipeline.budget``; below 1 fewer, above 1 more): the demo's time budget,
    # models unchanged.
    training_scale: float = 1.0
    # The same for one training slice (null: training_scale), so that the time goes where the story is
    mask_autoencoder_scale: float | None = None
    image_autoencoder_scale: float | None = None
    diffusion_scale: float | None = None
    segmentation_scale: float | None = None  # every scheme's segmenter and the Synthetic-Only one
    # The schemes after the first start from its state just before the first validation: every scheme
    # trains the same steps until then, so each is the run trained from step 0, less that time
    fork_segmenters: bool = True
    # A `gauda experiment --out` folder (or its experiment.json): the report cites its scores over seeds
    # beside the demo's one seed (read when the report is written; no stage depends on it)
    experiment: str | None = None
    # Stages run side by side in this many worker processes, each with 1/jobs of the torch threads
    # (``gauda.workers``); 1 runs them one after another in this process.
    jobs: int = 1

    def __post_init__(self) -> None:
        check(
            len(self.schemes) >= 1 and set(self.schemes) <= set(SCHEME_NAMES)
            and len(set(self.schemes)) == len(self.schemes),
            "schemes", f"distinct names among {', '.join(SCHEME_NAMES)}", list(self.schemes),
        )  # fmt: skip
        check(self.samples_per_class >= 1, "samples_per_class", "an integer >= 1", self.samples_per_class)
        check(self.sample_batch_size >= 1, "sample_batch_size", "an integer >= 1", self.sample_batch_size)
        check(
            self.generator_num_samples >= 2,
            "generator_num_samples",
            "an integer >= 2",
            self.generator_num_samples,
        )
        check(all(w >= 0 for w in self.guidance_sweep), "guidance_sweep", "numbers >= 0",
              list(self.guidance_sweep))  # fmt: skip
        check(self.toy_seeds >= 1, "toy_seeds", "an integer >= 1", self.toy_seeds)
        check(self.jobs >= 1, "jobs", "an integer >= 1", self.jobs)
        for name in ("training_scale", *(f"{stage}_scale" for stage in SCALED_SLICES)):
            value = getattr(self, name)
            if value is not None or name == "training_scale":
                check(value is not None and value > 0, name, "a number > 0", value)

    def scale_of(self, slice_name: str) -> float:
        """The training scale of a training slice (one of ``SCALED_SLICES``)."""
        specific = getattr(self, f"{slice_name}_scale")
        return self.training_scale if specific is None else specific


# The paper's evaluation sizes: 1000 generated pairs per guidance scale and the sweep of its Fig. 5.
_PAPER = DemoConfig(generator_num_samples=1000, guidance_sweep=(2.0, 1.0, 1.5, 3.0, 4.0, 6.0))
# A 2-core CPU: a few pairs per class, 90 pairs per guidance scale (10 per class), three scales, and two
# stages at a time with one thread each; the mask autoencoder trains the whole tiny preset (the rarest
# class needs it), the segmenters a quarter more (500 steps: the default scheme 0.595 -> 0.633, so that
# the comparison starts from a segmenter that learns), the image autoencoder and the diffusion model, the
# longest chain, three quarters and 65 % of theirs: the pipeline fits 15 minutes (BENCHMARKS.md; at 0.75
# for the diffusion model it took 900 s on a slow day).
_TINY = replace(
    _PAPER,
    samples_per_class=8,
    generator_num_samples=90,
    guidance_sweep=(4.0, 1.0, 2.0),
    image_autoencoder_scale=0.75,
    diffusion_scale=0.65,
    segmentation_scale=1.25,
    jobs=2,
)

DEMO_PRESETS: dict[str, DemoConfig] = {"tiny": _TINY, "paper": _PAPER}
