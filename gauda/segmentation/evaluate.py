"""Prediction over a split: the result table and the class-wise uncertainty (Eq. 8) of a Bayesian segmenter,
and loading a trained model back from a run folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm.auto import tqdm

from gauda.checkpoint import load_checkpoint
from gauda.config import ConfigError, from_dict
from gauda.data.classes import IGNORE_INDEX
from gauda.data.config import DataConfig
from gauda.data.dataset import load_splits
from gauda.data.splits import SPLITS
from gauda.device import resolve_device
from gauda.io import atomic_write_json
from gauda.metrics.segmentation import SegmentationScores, SegmentationTable
from gauda.segmentation.bayesian import BayesianSegmenter, build_segmenter, predict
from gauda.segmentation.config import SegmentationConfig
from gauda.uncertainty.estimates import ClasswiseEstimates, UncertaintySums, classwise_estimate

logger = logging.getLogger(__name__)

CHECKPOINT_NAMES: tuple[str, ...] = ("best", "last")


@dataclass(frozen=True)
class SplitEvaluation:
    """A model on one split: the paper's table and UE_c (Eq. 8), NaN for classes never predicted."""

    table: SegmentationTable
    uncertainty: torch.Tensor  # (C,) float64
    estimates: UncertaintySums | None = None  # every pooling and quantity (gauda.uncertainty.estimates)
    videos: dict[str, str] | None = None  # frame name -> its video (for statistics over videos)

    def to_json(self, frames: bool = False) -> dict[str, Any]:
        """The table's JSON with each class's ``uncertainty`` beside its scores (null: never predicted);
        with ``frames``, each frame's scores carry its ``video``."""
        summary = self.table.to_json(frames)
        if frames and self.videos is not None:
            for name, scores in summary["frames"].items():
                scores["video"] = self.videos.get(name)
        for name, value in zip(self.table.class_names, self.uncertainty.tolist(), strict=True):
            summary["per_class"][name]["uncertainty"] = None if value != value else value  # NaN -> null
        return summary


@torch.no_grad()
def evaluate_split(
    model: BayesianSegmenter,
    dataset: Dataset,
    class_names: tuple[str, ...],
    num_samples: int | None,
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    num_workers: int = 0,
    progress: bool = False,
) -> SplitEvaluation:
    """Predict every frame of ``dataset`` (mean of N posterior samples, Eq. 7) and score it.

    Args:
        model: a Bayesian segmenter on ``device``.
        dataset: samples with "image", "mask" and "name" (a ``PairedDataset``).
        class_names: names of the class ids.
        num_samples: posterior samples N (None: the model's own, all members of an ensemble).
        batch_size: frames per forward pass.
        device: where the model runs.
        seed: seeds the posterior draws, so that an evaluation is reproducible.
        num_workers: data-loading processes.
        progress: show a progress bar.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    scores = SegmentationScores(class_names)
    estimates = ClasswiseEstimates()
    videos: dict[str, str] = {}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    try:
        for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
            images = batch["image"].to(device)  # (B, 3, H, W)
            masks = batch["mask"].to(device)  # (B, H, W)
            samples, y_bar = predict(model, images, num_samples, generator)  # (N, B, C, H, W), (B, C, H, W)
            estimates.update(samples, masks, valid=masks != IGNORE_INDEX)  # Eq. 8 and its variants
            scores.update(y_bar.argmax(dim=1), masks, batch["name"], y_bar)
            if "video" in batch:
                videos.update(zip(batch["name"], batch["video"], strict=True))
    finally:
        model.train(was_training)
    pooled = estimates.compute()
    uncertainty = classwise_estimate(pooled, "predicted", "variance")  # the literal Eq. 8
    return SplitEvaluation(scores.compute(), uncertainty, pooled, videos or None)


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """The ``best`` or ``last`` checkpoint of a run; a clear error when it is not there."""
    if which not in CHECKPOINT_NAMES:
        raise ConfigError(f"--checkpoint {which!r}: expected one of {', '.join(CHECKPOINT_NAMES)}")
    path = Path(run_dir) / f"{which}.safetensors"
    if not path.is_file():
        raise ConfigError(
            f"--run {run_dir}: no checkpoint {path}; expected a run folder written by "
            "'gauda train segmenter --out RUN'"
        )
    return path


def load_segmenter(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of a training checkpoint, on ``device`` in eval mode, and the checkpoint's state."""
    state = load_checkpoint(path, device="cpu")
    for key in ("model", "config", "class_names", "in_channels"):
        if key not in state:
            raise ConfigError(
                f"{path}: a checkpoint without {key!r}; expected one written by the segmenter trainer"
            )
    config = from_dict(SegmentationConfig, state["config"]["segmentation"], "segmentation")
    model = build_segmenter(config, state["in_channels"], len(state["class_names"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


def evaluate_run(
    run: str | Path,
    data: DataConfig,
    segmentation: SegmentationConfig,
    split: str = "test",
    checkpoint: str = "best",
    progress: bool = True,
    name: str | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Score a training run's checkpoint on a split and write ``evaluation_<name>.json`` (with every
    frame's scores) into the run folder, or to ``out``; returns the summary without the frames.

    Args:
        run: a run folder of ``gauda train segmenter``.
        data, segmentation: the run's configuration slices (its ``config.yaml``), or ``data`` changed to
            score elsewhere (``data.synthetic.seed``: newly rendered videos that no model has seen).
        split: train, val, test, or all (every frame of ``data``, without augmentation).
        checkpoint: best or last.
        progress: show progress bars.
        name: the file's name part (default: ``split``).
        out: the file to write instead.
    """
    if split not in (*SPLITS, "all"):
        raise ConfigError(f"--split {split!r}: expected one of {', '.join(SPLITS)} or all")
    run = Path(run)
    path = checkpoint_path(run, checkpoint)
    device = resolve_device(segmentation.device)
    model, state = load_segmenter(path, device)
    if split == "all":
        data = replace(data, augment=replace(data.augment, enabled=False))
    splits = load_splits(data, progress=progress)
    if tuple(state["class_names"]) != splits.class_names:
        raise ConfigError(
            f"{path}: trained on classes {state['class_names']}, the dataset has {splits.class_names}"
        )
    frames = (
        ConcatDataset([splits.train, splits.val, splits.test]) if split == "all" else getattr(splits, split)
    )
    evaluation = evaluate_split(
        model,
        frames,
        splits.class_names,
        segmentation.num_samples("test" if split == "all" else split),
        segmentation.eval_batch_size,
        device,
        seed=segmentation.seed,
        num_workers=segmentation.num_workers,
        progress=progress,
    )
    about = {"run": str(run), "checkpoint": path.name, "step": state["step"], "split": split}
    file = Path(out) if out is not None else run / f"evaluation_{name or split}.json"
    atomic_write_json(file, {**about, **evaluation.to_json(frames=True)})
    return {**about, **evaluation.to_json()}
