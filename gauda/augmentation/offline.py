"""Offline GAUDA (``gauda augment``): a trained segmenter's class-wise uncertainty picks the classes, the
generator makes N pairs of them, and the real dataset plus those pairs is written for any segmenter
(nnU-Net or one's own) to train on, without gauda's training loop.

The signal is the online scheme's (``scheme.uncertainty_pooling``, ``uncertainty_quantity``,
``missed_ratio`` on the validation split, the ``top_k`` classes, ``condition`` and the presence filter);
``draw="data"`` is the unguided control of the same size: unconditional pairs, which follow the training
data's own class balance (the pre-train augmentation of the paper's Supp. 8.3).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from gauda.augmentation.config import SchemeConfig
from gauda.augmentation.curation import presence_keep
from gauda.augmentation.selection import pair_conditions, top_k_uncertain
from gauda.config import ConfigError
from gauda.data.config import DataConfig
from gauda.data.dataset import DataSplits, load_splits
from gauda.data.figures import save_pair_grid
from gauda.data.folder import check_output_folder
from gauda.data.transforms import resize_pairs
from gauda.data.writers import DatasetFormat, check_format, write_dataset
from gauda.device import resolve_device
from gauda.generation.generator import PairGenerator
from gauda.generation.sample import class_hit_rates, to_arrays
from gauda.io import atomic_write_json
from gauda.segmentation.config import SegmentationConfig
from gauda.segmentation.evaluate import checkpoint_path, evaluate_split, load_segmenter
from gauda.uncertainty.estimates import classwise_estimate

logger = logging.getLogger(__name__)

Draw = Literal["uncertainty", "data"]
DRAWS: tuple[str, ...] = ("uncertainty", "data")
RECORD_FILE = "augment.json"
GRID_FILE = "generated_grid.png"
MAX_OFFERED = 4  # generate at most this many times N pairs before giving up on the presence filter


@dataclass
class GeneratedPairs:
    """The kept pairs (images (N, 3, H, W) in [0, 1], masks (N, H, W)) and the tally."""

    images: torch.Tensor
    masks: torch.Tensor
    offered: int = 0
    seconds: float = 0.0
    absent: int = 0
    sampling: dict[str, Any] = field(default_factory=dict)


def class_choice(uncertainty: torch.Tensor, top_k: int) -> list[int]:
    """The classes asked for: the ``top_k`` of largest UE_c (+inf: missed classes first); an error
    when no class has an estimate."""
    classes = top_k_uncertain(uncertainty, top_k)
    if not classes:
        raise ConfigError(
            "gauda augment: no class has an uncertainty estimate on the validation split (the segmenter "
            "predicts nothing there?); expected a trained segmenter"
        )
    return classes


def generate_pairs(
    generator: PairGenerator,
    conditions: torch.Tensor | None,
    num_pairs: int,
    scheme: SchemeConfig,
    seed: int,
    batch_size: int,
    progress: bool = True,
) -> GeneratedPairs:
    """``num_pairs`` pairs for the condition rows (cycled), or unconditional ones (``conditions`` None).

    With ``scheme.presence_pixels``, a conditioned pair whose mask lacks its class is dropped and more are
    generated, up to ``MAX_OFFERED * num_pairs`` in all (fewer pairs come back, with a warning, past that).
    """
    sampling = generator.sampling(scheme.sampler, scheme.sampling_steps, scheme.guidance)
    device = generator.device
    noise = torch.Generator(device).manual_seed(seed)
    images, masks = [], []
    kept, offered, absent = 0, 0, 0
    began = time.perf_counter()
    bar = tqdm(
        total=num_pairs, desc=f"generating ({sampling.sampler}, {sampling.steps} steps)", disable=not progress
    )
    while kept < num_pairs and offered < MAX_OFFERED * num_pairs:
        count = min(batch_size, num_pairs - kept)
        rows = None
        if conditions is not None:
            rows = conditions[torch.arange(offered, offered + count) % len(conditions)]
        image, mask = generator.generate(
            None if rows is None else rows.to(device), sampling, noise, num_samples=count
        )
        image, mask = image.cpu(), mask.cpu()
        offered += count
        if rows is not None and scheme.presence_pixels > 0:
            keep = presence_keep(mask, rows, scheme.presence_pixels)
            absent += int((~keep).sum())
            image, mask = image[keep], mask[keep]
        images.append(image)
        masks.append(mask)
        kept += len(image)
        bar.update(len(image))
    bar.close()
    if kept < num_pairs:
        logger.warning(
            "the presence filter kept %d of %d pairs after %d generated; writing %d",
            kept,
            num_pairs,
            offered,
            kept,
        )
    return GeneratedPairs(
        torch.cat(images),
        torch.cat(masks),
        offered,
        time.perf_counter() - began,
        absent,
        {"sampler": sampling.sampler, "steps": sampling.steps, "guidance": sampling.guidance},
    )


def _write(
    out: Path,
    splits: DataSplits,
    pairs: GeneratedPairs,
    size: int | None,
    format: DatasetFormat,
    overwrite: bool,
    record: dict[str, Any],
    progress: bool,
) -> None:
    """The real frames of every split, then the generated pairs (each its own video, in train)."""
    images, masks = pairs.images, pairs.masks
    if size is not None:  # the dataset's size (None: native, which generated pairs have no other of)
        images, masks = resize_pairs(images, masks, (size, size))
    pictures, labels = to_arrays(images, masks)
    names = [f"generated_{i:05d}" for i in range(len(pictures))]
    summary = dict(splits.summary)
    summary["videos"] = {**summary["videos"], "train": [*summary["videos"]["train"], *names]}
    summary["frames"] = {**summary["frames"], "train": summary["frames"]["train"] + len(names)}
    summary["generated"] = len(names)
    real = (splits.train, splits.val, splits.test)
    total = sum(len(dataset) for dataset in real)
    with write_dataset(
        out, splits.class_names, format, overwrite, split=summary, always_train=names
    ) as writer:
        with tqdm(total=total + len(names), desc=f"writing {out.name}", disable=not progress) as bar:
            for dataset in real:
                for index in dataset.indices:
                    record_ = dataset.source.records[index]
                    writer.add(record_.name, record_.video, *dataset.frames.read(index))
                    bar.update()
            for i, name in enumerate(names):
                writer.add(name, name, pictures[i], labels[i])
                bar.update()
        shown = min(len(names), 16)
        if shown:
            save_pair_grid(writer.staging / GRID_FILE, list(pictures[:shown]), list(labels[:shown]),
                           splits.class_names, titles=names[:shown])  # fmt: skip
        atomic_write_json(writer.staging / RECORD_FILE, record)


def augment_dataset(
    segmenter: str | Path,
    generator: str | Path,
    num_pairs: int,
    out: str | Path,
    data: DataConfig,
    segmentation: SegmentationConfig,
    scheme: SchemeConfig,
    draw: Draw = "uncertainty",
    format: DatasetFormat = "folder",
    checkpoint: str = "best",
    seed: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the real dataset plus ``num_pairs`` generated pairs to ``out``; returns the record of what
    was drawn and why (also ``out/augment.json``).

    Args:
        segmenter: a ``gauda train segmenter`` run; its ``checkpoint`` scores the validation split.
        generator: a ``gauda train diffusion`` run of the same classes.
        num_pairs: generated pairs to add (to the train split).
        out: the dataset to write.
        data, segmentation, scheme: the segmenter run's configuration slices (``scheme``: the signal,
            ``top_k``, ``condition``, sampling and the presence filter).
        draw: ``uncertainty`` (GAUDA's classes) or ``data`` (unconditional pairs: the unguided control).
        format: ``folder`` or ``nnunet``.
        checkpoint: best or last.
        seed: of the generated pairs.
        batch_size: pairs per sampler call.
        device: auto, cpu, cuda, ...
        overwrite: replace an existing dataset at ``out``.
        progress: show progress bars.
    """
    check_format(format)
    if draw not in DRAWS:
        raise ConfigError(f"--draw {draw!r}: expected one of {', '.join(DRAWS)}")
    if num_pairs < 1 or batch_size < 1:
        raise ConfigError(f"--num {num_pairs}, --batch-size {batch_size}: expected integers >= 1")
    inputs = [segmenter, generator, *([data.root] if data.root else [])]
    out = check_output_folder(out, overwrite, inputs=inputs)
    path = checkpoint_path(segmenter, checkpoint)
    torch_device = resolve_device(device)
    model, state = load_segmenter(path, torch_device)
    splits = load_splits(data, progress=progress)
    names = splits.class_names
    if tuple(state["class_names"]) != names:
        raise ConfigError(f"{path}: trained on classes {state['class_names']}, the dataset has {list(names)}")
    pair_generator = PairGenerator.load(generator, device=torch_device)
    if pair_generator.class_names != names:
        raise ConfigError(
            f"--generator {generator}: trained on classes {list(pair_generator.class_names)}; the segmenter "
            f"data has {list(names)}; expected a diffusion run of the same dataset"
        )
    evaluation = evaluate_split(model, splits.val, names, segmentation.num_samples("val"),
                                segmentation.eval_batch_size, torch_device, seed=segmentation.seed,
                                progress=progress)  # fmt: skip
    assert evaluation.estimates is not None
    uncertainty = classwise_estimate(
        evaluation.estimates, scheme.uncertainty_pooling, scheme.uncertainty_quantity, scheme.missed_ratio
    )
    classes = class_choice(uncertainty, scheme.top_k) if draw == "uncertainty" else []
    conditions = pair_conditions(classes, num_pairs, len(names), scheme.condition) if classes else None
    logger.info("asking the generator for %s", ", ".join(names[c] for c in classes) or "unconditional pairs")
    pairs = generate_pairs(pair_generator, conditions, num_pairs, scheme, seed, batch_size, progress)
    reported = classes or list(range(len(names)))
    record = {
        "segmenter": str(segmenter),
        "checkpoint": path.name,
        "step": state["step"],
        "generator": str(generator),
        "draw": draw,
        "signal": {
            "split": "val",
            "pooling": scheme.uncertainty_pooling,
            "quantity": scheme.uncertainty_quantity,
            "missed_ratio": scheme.missed_ratio,
            "top_k": scheme.top_k,
            "condition": scheme.condition,
        },
        "uncertainty": {
            n: (v if math.isfinite(v) else None if v != v else "inf")
            for n, v in zip(names, uncertainty.tolist(), strict=True)
        },
        "val_iou": {
            n: (None if v != v else v) for n, v in zip(names, evaluation.table.iou.tolist(), strict=True)
        },
        "classes": [names[c] for c in classes],
        "num_pairs": len(pairs.images),
        "requested_pairs": num_pairs,
        "offered": pairs.offered,
        "dropped_without_class": pairs.absent,
        "generated_fraction": {
            names[c]: hit for c, hit in zip(reported, class_hit_rates(pairs.masks, reported), strict=True)
        },
        "sampling": pairs.sampling,
        "seed": seed,
        "generation_seconds": round(pairs.seconds, 2),
        "format": format,
    }
    _write(out, splits, pairs, data.image_size, format, overwrite, record, progress)
    logger.info("wrote %d real frames and %d generated pairs to %s", sum(splits.summary["frames"].values()),
                len(pairs.images), out)  # fmt: skip
    return record
