"""What an autoencoder keeps of what a segmenter needs (``gauda evaluate autoencoder``).

PSNR and SSIM can read well while the thin, rare structures that matter for segmentation are gone (a
blurred grasper costs few pixels). So an image autoencoder is judged by a segmenter trained on real
frames: its per-class IoU on the reconstructions against its IoU on the originals, the same frames and
the same posterior draws. A mask autoencoder is judged by per-class reconstruction IoU, reported with
the number of frames each class occurs in, so that a class seen in three frames is read as such.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gauda.autoencoders.evaluate import evaluate_autoencoder
from gauda.autoencoders.runs import load_autoencoder
from gauda.autoencoders.vqgan import VQGAN, image_to_input, output_to_image
from gauda.config import ConfigError, from_dict
from gauda.data.config import DataConfig
from gauda.data.dataset import DataSplits, load_splits
from gauda.data.figures import colour_mask, save_image_rows
from gauda.data.splits import SPLITS
from gauda.device import resolve_device
from gauda.io import atomic_write_json
from gauda.metrics.segmentation import SegmentationScores, SegmentationTable
from gauda.segmentation.bayesian import BayesianSegmenter, predict
from gauda.segmentation.config import SegmentationConfig
from gauda.segmentation.evaluate import checkpoint_path, load_segmenter

logger = logging.getLogger(__name__)

FIGURE_FILE = "reconstruction_segmentation.png"


@dataclass(frozen=True)
class ReconstructionSegmentation:
    """One segmenter on the same frames as they are and through an image autoencoder."""

    original: SegmentationTable
    reconstructed: SegmentationTable
    rows: list[list[np.ndarray]]  # pictures: originals, reconstructions, truth, both predictions

    def per_class(self) -> dict[str, dict[str, float | None]]:
        """Per class: IoU on the originals, on the reconstructions, and their ratio (None: no estimate)."""
        result = {}
        original, reconstructed = self.original.to_json(), self.reconstructed.to_json()
        for name in self.original.class_names:
            a, b = original["per_class"][name]["iou"], reconstructed["per_class"][name]["iou"]
            ratio = b / a if a is not None and b is not None and a > 0 else None
            result[name] = {"iou_original": a, "iou_reconstructed": b, "ratio": ratio}
        return result


def class_frame_counts(dataset: Dataset, num_classes: int) -> torch.Tensor:
    """(C,) number of frames of ``dataset`` whose mask holds each class."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    for batch in DataLoader(dataset, batch_size=64):
        masks = batch["mask"]  # (B, H, W)
        for c in range(num_classes):
            counts[c] += (masks == c).flatten(1).any(1).sum()
    return counts


@torch.no_grad()
def segment_reconstructions(
    autoencoder: VQGAN,
    segmenter: BayesianSegmenter,
    dataset: Dataset,
    class_names: tuple[str, ...],
    num_samples: int | None,
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    num_pictures: int = 8,
    progress: bool = False,
    frame_frequency: torch.Tensor | None = None,
) -> ReconstructionSegmentation:
    """Segment every frame of ``dataset`` as it is and after ``autoencoder`` (Eq. 7 means of N samples).

    Both passes draw the same posterior samples (one generator seed each), so the difference is the
    reconstruction's alone. The pictures show the frames holding the rarest classes of the split
    (``frame_frequency``: each class's frames, ``class_frame_counts``; counted here when not given).
    """
    autoencoder.eval()
    segmenter.eval()
    num_classes = len(class_names)
    original, reconstructed = SegmentationScores(class_names), SegmentationScores(class_names)
    generators = [torch.Generator(device=device).manual_seed(seed) for _ in range(2)]
    kept: list[tuple[int, list[np.ndarray]]] = []  # (rarity rank, pictures) of the frames shown
    frequency = class_frame_counts(dataset, num_classes) if frame_frequency is None else frame_frequency
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc="evaluate", disable=not progress):
        images, masks = batch["image"].to(device), batch["mask"].to(device)  # (B, 3, H, W), (B, H, W)
        output, _, _ = autoencoder(image_to_input(images))
        rebuilt = output_to_image(output)  # (B, 3, H, W) in [0, 1]
        predictions = []
        for pictures, scores, generator in zip(
            (images, rebuilt), (original, reconstructed), generators, strict=True
        ):
            _, y_bar = predict(segmenter, pictures, num_samples, generator)  # (B, C, H, W)
            scores.update(y_bar.argmax(1), masks, batch["name"])
            predictions.append(y_bar.argmax(1))
        for i in range(len(images)):
            present = [c for c in range(num_classes) if (masks[i] == c).any()]
            rarity = min(int(frequency[c]) for c in present) if present else len(dataset)
            if len(kept) == num_pictures and rarity >= kept[-1][0]:
                continue  # not among the rarest seen so far: draw nothing
            kept.append((rarity, _pictures(images[i], rebuilt[i], masks[i], predictions, i, num_classes)))
            kept = sorted(kept, key=lambda item: item[0])[:num_pictures]
    rows = [list(column) for column in zip(*(pictures for _, pictures in kept), strict=True)]
    return ReconstructionSegmentation(original.compute(), reconstructed.compute(), rows)


def _pictures(
    image: torch.Tensor,
    rebuilt: torch.Tensor,
    mask: torch.Tensor,
    predictions: list[torch.Tensor],
    index: int,
    num_classes: int,
) -> list[np.ndarray]:
    def rgb(x: torch.Tensor) -> np.ndarray:
        return (x.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)

    def labels(m: torch.Tensor) -> np.ndarray:
        return colour_mask(m.cpu().numpy().astype(np.uint8), num_classes)

    return [rgb(image), rgb(rebuilt), labels(mask), *(labels(p[index]) for p in predictions)]


def evaluate_autoencoder_run(
    run: str | Path,
    data: DataConfig,
    segmenter_run: str | Path | None = None,
    split: str = "test",
    out: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Score the autoencoder of ``run`` on a split of ``data`` and write the JSON (and the figure).

    Args:
        run: a run folder of ``gauda train autoencoder``.
        data: the data slice to score on: the run's own, or changed (``data.synthetic.seed``) to score on
            newly rendered synthetic videos that no model has seen.
        segmenter_run: a run folder of ``gauda train segmenter`` trained on real frames: an image
            autoencoder's per-class segmentation figures; not used for a mask autoencoder.
        split: train, val or test.
        out: the JSON file to write (default ``RUN/evaluation_<split>.json``); the figure goes beside it.
        device: where the models run (auto: cuda when available).
        progress: show progress bars.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    run = Path(run)
    torch_device = resolve_device(device)
    autoencoder, info = load_autoencoder(run, device=str(torch_device))
    modality = info["modality"]
    splits = load_splits(data, progress=progress)
    if tuple(info["class_names"]) != splits.class_names:
        raise ConfigError(
            f"--run {run}: trained on classes {list(info['class_names'])}, the dataset has "
            f"{list(splits.class_names)}"
        )
    dataset = getattr(splits, split)
    num_classes = len(splits.class_names)
    batch_size = info["config"].batch_size
    metrics = evaluate_autoencoder(
        autoencoder, dataset, modality, splits.class_names, batch_size, torch_device
    )
    frames = class_frame_counts(dataset, num_classes)
    result: dict[str, Any] = {
        "run": str(run),
        "modality": modality,
        "split": split,
        "data": {"dataset": data.dataset, "synthetic_seed": data.synthetic.seed, "size": data.image_size},
        "num_frames": len(dataset),
        "class_frames": dict(zip(splits.class_names, frames.tolist(), strict=True)),
        **metrics,
    }
    out = Path(out) if out is not None else run / f"evaluation_{split}.json"
    if modality == "image":
        if segmenter_run is None:
            logger.info("no --segmenter: PSNR/SSIM only, no per-class segmentation figures")
        else:
            result.update(
                _segmentation(
                    autoencoder, Path(segmenter_run), dataset, splits, frames, out, torch_device, progress
                )
            )
    elif segmenter_run is not None:
        logger.info("--segmenter is not used for a mask autoencoder (its IoU is measured directly)")
    atomic_write_json(out, result)
    return result


def _segmentation(
    autoencoder: VQGAN,
    segmenter_run: Path,
    dataset: Dataset,
    splits: DataSplits,
    frame_frequency: torch.Tensor,
    out: Path,
    device: torch.device,
    progress: bool,
) -> dict[str, Any]:
    path = checkpoint_path(segmenter_run, "best")
    segmenter, state = load_segmenter(path, device)
    if tuple(state["class_names"]) != splits.class_names:
        raise ConfigError(
            f"--segmenter {segmenter_run}: trained on classes {state['class_names']}, the autoencoder's "
            f"dataset has {list(splits.class_names)}"
        )
    segmentation = from_dict(SegmentationConfig, state["config"]["segmentation"], "segmentation")
    evaluation = segment_reconstructions(
        autoencoder,
        segmenter,
        dataset,
        splits.class_names,
        segmentation.num_samples("test"),
        segmentation.eval_batch_size,
        device,
        seed=segmentation.seed,
        progress=progress,
        frame_frequency=frame_frequency,
    )
    figure = out.parent / FIGURE_FILE
    save_image_rows(
        figure,
        evaluation.rows,
        ("original", "reconstruction", "ground truth", "segmenter on original", "on reconstruction"),
        title="frames with the rarest classes: the real-trained segmenter on each",
    )
    return {
        "segmenter": str(segmenter_run),
        "per_class": evaluation.per_class(),
        "label_mean_iou_original": evaluation.original.label_mean_iou,
        "label_mean_iou_reconstructed": evaluation.reconstructed.label_mean_iou,
        "figure": str(figure),
    }
