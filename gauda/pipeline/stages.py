"""What each stage of the demo does: one function per stage, from the configuration and the folders of
the stages before it to the stage's own folder and a JSON-ready result.

Every function writes only into ``context.folder`` (a work folder that the runner renames into place
when the stage finishes) and reads earlier stages from their finished folders, ``context.inputs``.
With ``context.resume`` a training stage continues from the checkpoint in its work folder.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gauda.autoencoders.trainer import train_autoencoder
from gauda.data.dataset import load_splits
from gauda.data.figures import save_pair_grid
from gauda.data.inspection import grid_indices, inspect_dataset
from gauda.data.splits import save_split
from gauda.diffusion.runs import load_diffusion
from gauda.diffusion.trainer import train_diffusion
from gauda.evaluation.generator_eval import evaluate_generator
from gauda.evaluation.reconstruction import evaluate_autoencoder_run
from gauda.experiment.runner import RunSpec, run_config, train_and_evaluate
from gauda.generation.sample import GRID_FILE, sample_pairs
from gauda.io import atomic_write_json
from gauda.presets import GaudaConfig
from gauda.segmentation.curves import SplitCurve
from gauda.segmentation.trainer import FORK_FILE
from gauda.toy.experiment import run_toy, summarize
from gauda.toy.figures import save_figures

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageContext:
    """What a stage gets: the whole configuration, its work folder and the finished inputs it reads."""

    config: GaudaConfig
    folder: Path
    inputs: Mapping[str, Path]
    resume: bool = False
    progress: bool = True


StageFunction = Callable[[StageContext], dict[str, Any]]


def data_stage(context: StageContext) -> dict[str, Any]:
    """Inspect the dataset, draw a sample grid, fix the split and fill the resized-frame cache."""
    config, folder, progress = context.config, context.folder, context.progress
    report = inspect_dataset(config.data, size=config.data.image_size, progress=progress)
    report_json = report.to_json()
    if report.problems:
        logger.warning("the dataset has %d problem(s); see %s", len(report.problems), folder / "inspect.json")
    splits = load_splits(config.data, progress=progress)
    save_split(splits.summary, folder)
    frames = splits.train.frames
    indices = [i for i in grid_indices(report, 12) if i < len(frames)]
    pairs = [frames.read(i) for i in indices]
    save_pair_grid(
        folder / "samples.png",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        splits.class_names,
        titles=[splits.train.source.records[i].name for i in indices],
    )
    report_json["grid"] = "samples.png"
    atomic_write_json(folder / "inspect.json", report_json)
    return report_json


def _resume(context: StageContext) -> bool:
    return context.resume and (context.folder / "last.safetensors").is_file()


def autoencoder_stage(modality: str) -> StageFunction:
    """Train the ``modality`` VQ-GAN; the result is its ``metrics.json``."""

    def run(context: StageContext) -> dict[str, Any]:
        return train_autoencoder(
            context.config, modality, context.folder, resume=_resume(context), progress=context.progress
        )

    run.__doc__ = f"Train the {modality} VQ-GAN (Eq. {3 if modality == 'image' else 4})."
    return run


def diffusion_stage(context: StageContext) -> dict[str, Any]:
    """Train the joint latent diffusion model (Eq. 5) on both autoencoders' latents."""
    return train_diffusion(
        context.config,
        context.folder,
        context.inputs["autoencoder_image"],
        context.inputs["autoencoder_mask"],
        resume=_resume(context),
        progress=context.progress,
    )


def samples_stage(context: StageContext) -> dict[str, Any]:
    """Pairs conditioned on each class alone, with the run's sampler: a grid and a hit rate per class."""
    config, folder, demo = context.config, context.folder, context.config.demo
    run = context.inputs["diffusion"]
    class_names = load_diffusion(run)[1]["class_names"]
    classes = []
    for index, name in enumerate(class_names):
        report = sample_pairs(
            run,
            folder / f"class_{index:02d}",
            classes=name,
            num_samples=demo.samples_per_class,
            seed=config.diffusion.seed + index,
            batch_size=demo.sample_batch_size,
            device=config.diffusion.device,
            overwrite=True,
            progress=context.progress,
        )
        entry = report["classes"][0]
        classes.append(
            {
                "class": name,
                "generated_fraction": entry["generated_fraction"],
                "training_frame_frequency": entry["training_frame_frequency"],
                "grid": f"class_{index:02d}/{GRID_FILE}",
                "seconds_per_pair": report["seconds_per_pair"],
            }
        )
    first = report
    return {
        "num_samples_per_class": demo.samples_per_class,
        "sampler": first["sampler"],
        "steps": first["steps"],
        "guidance": first["guidance"],
        "classes": classes,
    }


def segmentation_stage(scheme: str) -> StageFunction:
    """Train the segmenter with ``scheme`` and score it on the test split; the result is the test
    evaluation (as ``gauda evaluate segmenter --json``) with the training summary under ``training``."""

    def run(context: StageContext) -> dict[str, Any]:
        config = context.config
        generator = str(context.inputs["diffusion"]) if scheme == "gauda" else None
        spec = RunSpec(scheme, config.data.augment.enabled, config.segmentation.seed)
        first = config.demo.schemes[0]  # the others start from its state before the first validation
        fork = context.inputs.get(f"segmentation_{first}") if config.demo.fork_segmenters else None
        evaluation = train_and_evaluate(
            run_config(config, spec, generator),
            context.folder,
            resume=_resume(context),
            progress=context.progress,
            extra_hooks=[SplitCurve(config.data, "test")],  # the report's per-class curves
            fork=fork / FORK_FILE if fork is not None and scheme != first else None,
            save_fork=scheme == first,
        )
        evaluation.pop("frames", None)  # kept in the run folder's evaluation_test.json
        return evaluation

    run.__doc__ = f"Train the segmenter with the {scheme} scheme and score it on the test split."
    return run


def reconstruction_stage(context: StageContext) -> dict[str, Any]:
    """What the autoencoders keep (``gauda evaluate autoencoder``): the real-trained default segmenter on
    image reconstructions against the originals, and the mask reconstructions' per-class IoU, each with
    the frames that hold every class; on the synthetic dataset on the 640 frames of newly rendered videos
    (the training split of the next ``data.synthetic.seed``), so that the rarest class counts, otherwise
    on the test split."""
    config, folder = context.config, context.folder
    folder.mkdir(parents=True, exist_ok=True)
    segmenter = context.inputs[f"segmentation_{config.demo.schemes[0]}"]
    data, split = config.data, "test"
    if data.dataset == "synthetic":
        data, split = replace(data, synthetic=replace(data.synthetic, seed=data.synthetic.seed + 1)), "train"
    return {
        modality: evaluate_autoencoder_run(
            context.inputs[f"autoencoder_{modality}"],
            data,
            segmenter_run=segmenter if modality == "image" else None,
            split=split,
            out=folder / f"{modality}.json",
            device=config.segmentation.device,
            progress=context.progress,
        )
        for modality in ("image", "mask")
    }


def generator_stage(context: StageContext) -> dict[str, Any]:
    """``gauda evaluate generator`` of the diffusion run against the first scheme's segmenter."""
    config, demo = context.config, context.config.demo
    segmenter = context.inputs[f"segmentation_{demo.schemes[0]}"]
    result = evaluate_generator(
        context.inputs["diffusion"],
        segmenter,
        context.folder,
        num_samples=demo.generator_num_samples,
        guidance=list(demo.guidance_sweep) or None,
        seed=config.diffusion.seed,
        batch_size=demo.sample_batch_size,
        synthetic_only=demo.synthetic_only,
        device=config.segmentation.device,
        progress=context.progress,
    )
    return result


def toy_stage(context: StageContext) -> dict[str, Any]:
    """The paper's 2D simulation (Supplementary 8.2 and 8.3): ``toy.json`` and its figures."""
    toy = dataclasses.replace(context.config.toy, seeds=context.config.demo.toy_seeds)
    results = run_toy(toy, progress=context.progress)
    summary = summarize(results)
    atomic_write_json(context.folder / "toy.json", summary)
    summary["figures"] = [path.name for path in save_figures(context.folder, results)]
    return summary
