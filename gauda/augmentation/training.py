"""Train a Bayesian segmenter with a training scheme: the library function behind ``gauda train
segmenter`` and the experiment runner (the CLI only parses options)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gauda.augmentation.adaptive import AdaptiveSampling
from gauda.augmentation.config import SegmenterStageConfig, segmenter_defaults
from gauda.augmentation.mixing import replaced_count
from gauda.augmentation.uncertainty_guided import UncertaintyGuidedAugmentation
from gauda.augmentation.uncertainty_sampling import UncertaintySampling
from gauda.config import ConfigError, to_dict
from gauda.data.dataset import load_splits
from gauda.data.splits import save_split
from gauda.device import resolve_device
from gauda.distributed import setup_distributed
from gauda.generation.generator import PairGenerator
from gauda.io import atomic_write_json
from gauda.runlock import folder_lock
from gauda.segmentation.bayesian import build_segmenter
from gauda.segmentation.trainer import SegmentationTrainer, TrainingHook
from gauda.training.state import check_run_folder

FORKED_FILE = "forked.json"  # where a forked run started, so that its resumed summary still says so

logger = logging.getLogger(__name__)


def check_image_size(config: SegmenterStageConfig) -> None:
    """Every level of the networks halves the frames: their side must be divisible by 2**(levels - 1)."""
    size, multiple = config.data.image_size, config.segmentation.min_size_multiple
    if size is not None and size % multiple:
        raise ConfigError(
            f"data.image_size {size}: expected a multiple of {multiple} for "
            f"{len(config.segmentation.channels)} levels (segmentation.channels)"
        )


def check_scheme(config: SegmenterStageConfig) -> None:
    """GAUDA needs a diffusion run to generate from; the other schemes must not be given one silently."""
    scheme = config.scheme
    if scheme.name == "gauda":
        if scheme.generator is None:
            raise ConfigError(
                "--generator: the gauda scheme needs a diffusion run (gauda train diffusion --out RUN), "
                "given as --generator RUN or scheme.generator"
            )
        batch_size = config.segmentation.batch_size
        if replaced_count(batch_size, scheme.replace_fraction) < 1:
            raise ConfigError(
                f"scheme.replace_fraction {scheme.replace_fraction}: gives no pair to a batch of "
                f"{batch_size} (segmentation.batch_size); expected at least {0.5 / batch_size:.3g}"
            )
        if not (Path(scheme.generator) / "config.yaml").is_file():
            raise ConfigError(
                f"--generator {scheme.generator}: no config.yaml there; expected a gauda train diffusion run"
            )


def scheme_hooks(config: SegmenterStageConfig, device: str | None = None) -> list[TrainingHook]:
    """The training hooks of ``config.scheme`` (none for the default scheme)."""
    scheme = config.scheme
    if scheme.name == "adaptive":
        return [AdaptiveSampling(scheme)]
    if scheme.name == "uncertainty":
        return [UncertaintySampling(scheme)]
    if scheme.name == "gauda":
        check_scheme(config)
        generator = PairGenerator.load(scheme.generator, device=device or config.segmentation.device)
        return [UncertaintyGuidedAugmentation(scheme, generator, config.segmentation.seed)]
    return []


def train_segmenter(
    config: SegmenterStageConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    extra_hooks: Sequence[TrainingHook] = (),
    fork: str | Path | None = None,
    save_fork: bool = False,
) -> dict[str, Any]:
    """Train ``config.segmentation``'s model on ``config.data`` with ``config.scheme`` into ``out``
    (``extra_hooks`` run after the scheme's, e.g. to record or stop a run).

    ``save_fork`` also writes the state just before the first validation (``FORK_FILE``); ``fork``, such a
    file of a run of the same data and model, starts this run there (any scheme: until its first
    validation every scheme trains the same steps), so that it skips them; a resumed run ignores it.

    Writes checkpoints, ``metrics.csv``, ``config.yaml`` and ``split.json`` (and the scheme's own files)
    into ``out``; returns a summary (steps, best and last validation scores, wall time, GAUDA's wait time).
    Under ``torchrun`` every process trains its share of the batches (``SegmentationTrainer``).
    """
    out = Path(out)
    check_image_size(config)
    check_scheme(config)
    ddp, _ = setup_distributed(resolve_device(config.segmentation.device))
    with folder_lock(out, enabled=ddp.is_main):
        return _train(config, out, ddp.is_main, resume, progress, extra_hooks, fork, save_fork)


def _train(
    config: SegmenterStageConfig,
    out: Path,
    is_main: bool,
    resume: bool,
    progress: bool,
    extra_hooks: Sequence[TrainingHook],
    fork: str | Path | None,
    save_fork: bool,
) -> dict[str, Any]:
    check_run_folder(out, "segmentation", resume)  # before split.json is written into another stage's run
    splits = load_splits(config.data, progress=progress)
    hooks = scheme_hooks(config)
    for hook in hooks:
        if isinstance(hook, UncertaintyGuidedAugmentation):
            hook.check_classes(splits.class_names)
    if is_main:
        save_split(splits.summary, out)
    network = build_segmenter(config.segmentation, in_channels=3, num_classes=len(splits.class_names))
    all_hooks = [*hooks, *extra_hooks]
    trainer = SegmentationTrainer(
        network,
        config.segmentation,
        splits.train,
        splits.val,
        splits.class_names,
        out,
        to_dict(config),
        hooks=all_hooks,
        progress=progress,
        save_fork=save_fork,
        config_defaults=segmenter_defaults(),
    )
    forked_path = out / FORKED_FILE
    forked = None
    if not resume and fork is not None:
        forked = {"forked_from": str(fork), "forked_at_step": trainer.first_validation_step}
    elif resume and forked_path.is_file():
        forked = json.loads(forked_path.read_text())
    if is_main and not resume:  # a fresh run says where it starts before its first checkpoint
        if forked is None:
            forked_path.unlink(missing_ok=True)
        else:
            atomic_write_json(forked_path, forked)
    start = time.perf_counter()
    results = trainer.fit(resume=resume, fork=None if resume or fork is None else Path(fork))
    summary: dict[str, Any] = {
        "run": str(out),
        "model": config.segmentation.model,
        "scheme": config.scheme.name,
        "step": trainer.step,
        "best_step": trainer.best_step,
        "best_val_label_mean_iou": trainer.best_score,
        "last_val_label_mean_iou": results.table.label_mean_iou if results is not None else None,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    summary.update(forked or {})
    for hook in hooks:
        if isinstance(hook, UncertaintyGuidedAugmentation):
            summary["synthetic_wait_seconds"] = round(hook.wait_seconds, 3)
            summary["generation_seconds"] = round(hook.producer.produce_seconds if hook.producer else 0.0, 3)
    return summary
