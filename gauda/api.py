"""gauda from Python: the three things users script, named as the command line names them.

    >>> import gauda
    >>> generator = gauda.load_generator("runs/diffusion")                         # gauda train diffusion
    >>> images, masks = gauda.sample(generator, classes=["Grasper"], num=8)         # gauda sample
    >>> summary = gauda.train_segmenter("runs/seg", scheme="gauda", generator="runs/diffusion")
    >>> table = gauda.evaluate_masks(predicted, masks, generator.class_names)       # gauda evaluate masks

``sample`` returns tensors (images (N, 3, H, W) in [0, 1], masks (N, H, W) of class ids) instead of
writing a dataset; ``train_segmenter`` takes the options of ``gauda train segmenter`` as arguments and
``--set`` overrides as ``overrides``; ``evaluate_masks`` scores predicted against true masks with the
paper's table (``SegmentationTable``: ``iou``, ``dice``, ``label_mean_iou``, ``to_json()``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gauda.augmentation.training import check_image_size, check_scheme
from gauda.augmentation.training import train_segmenter as _train
from gauda.config import ConfigError
from gauda.generation.generator import PairGenerator
from gauda.generation.sample import parse_classes, sample_batches
from gauda.metrics.segmentation import SegmentationScores, SegmentationTable
from gauda.presets import resolve_config

__all__ = ["evaluate_masks", "load_generator", "sample", "train_segmenter"]


def load_generator(run: str | Path, device: str = "auto") -> PairGenerator:
    """The frozen generator of a ``gauda train diffusion`` run (with its two autoencoders) on ``device``."""
    return PairGenerator.load(run, device=device)


def sample(
    generator: PairGenerator | str | Path,
    classes: str | Sequence[str] | None = None,
    num: int = 16,
    sampler: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    batch_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` generated pairs conditioned on ``classes`` (names; all at once in every pair; None:
    unconditional), as CPU tensors: images (num, 3, H, W) in [0, 1] and masks (num, H, W) of class ids.

    ``sampler``, ``steps`` and ``guidance`` default to the run's (as ``gauda sample``); the same seed and
    batch size give the same pairs. ``generator``: a ``load_generator`` result, or a run folder.
    """
    if num < 1 or batch_size < 1:
        raise ConfigError(f"num {num}, batch_size {batch_size}: expected integers >= 1")
    if not isinstance(generator, PairGenerator):
        generator = load_generator(generator)
    names = classes if classes is None or isinstance(classes, str) else ",".join(classes)
    class_ids = parse_classes(names, generator.class_names)
    sampling = generator.sampling(sampler, steps, guidance)
    return sample_batches(generator, class_ids, num, sampling, seed, batch_size)


def train_segmenter(
    out: str | Path,
    scheme: str = "default",
    generator: str | Path | None = None,
    preset: str = "tiny",
    dataset: str | None = None,
    root: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a Bayesian segmenter into ``out`` with a scheme (default, adaptive, uncertainty, gauda: which
    needs ``generator``, a diffusion run), as ``gauda train segmenter``; returns its summary (steps, best
    and last validation label mean IoU, wall time). ``overrides``: ``--set`` values, e.g.
    ``["segmentation.steps=200"]``; ``resume`` continues the run in ``out`` with its ``config.yaml``."""
    out = Path(out)
    updates: dict[str, Any] = {"scheme": {"name": scheme}}
    if generator is not None:
        updates["scheme"]["generator"] = str(generator)
    data = {key: str(value) for key, value in (("dataset", dataset), ("root", root)) if value is not None}
    if data:
        updates["data"] = data
    config = resolve_config(preset, out / "config.yaml" if resume else None, overrides, updates)
    check_image_size(config)
    check_scheme(config)
    return _train(config, out, resume=resume, progress=progress)


def evaluate_masks(
    predicted: torch.Tensor | np.ndarray,
    truth: torch.Tensor | np.ndarray,
    class_names: Sequence[str],
    names: Sequence[str] | None = None,
) -> SegmentationTable:
    """The paper's table of predicted against true masks, both (N, H, W) of class ids (truth: 255 =
    ignore), as ``gauda evaluate masks`` computes it for PNG folders; ``names`` label the frames."""
    predicted, truth = torch.as_tensor(np.asarray(predicted)), torch.as_tensor(np.asarray(truth))
    if predicted.shape != truth.shape or predicted.dim() != 3:
        raise ConfigError(
            f"evaluate_masks: predicted {tuple(predicted.shape)} and truth {tuple(truth.shape)}; expected "
            "two (N, H, W) arrays of one shape"
        )
    scores = SegmentationScores(class_names)
    try:
        scores.update(predicted.long(), truth.long(), list(names or (f"frame{i}" for i in range(len(truth)))))
    except ValueError as error:  # values that are not class ids
        raise ConfigError(f"evaluate_masks: {error}") from None
    return scores.compute()
