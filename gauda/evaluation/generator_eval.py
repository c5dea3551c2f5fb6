"""The generator's evaluation (paper, Sec. 5.1, Fig. 5 and Table 5): FID and KID of generated frames against
real ones, Real-Only IoU (the real-data segmenter scored on generated pairs), Synthetic-Only IoU (a
segmenter trained on generated pairs alone, scored on the real test split), the per-class conditioning
hit rate, and all but SO IoU again for each guidance scale w of a sweep.

Pair i is conditioned on one class, round robin over a seeded order of the classes, so every class gets
a hit rate (the fraction of its pairs whose mask contains it). Every guidance scale samples from the
same seed, so the sweep compares the same noise under different guidance.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gauda.augmentation.config import SegmenterStageConfig, segmenter_run_config
from gauda.checkpoint import CheckpointError
from gauda.config import ConfigError, to_dict
from gauda.data.classes import IGNORE_INDEX
from gauda.data.dataset import DataSplits, Sample, classes_present, load_splits
from gauda.data.splits import SPLITS
from gauda.data.transforms import resize_pairs
from gauda.device import resolve_device
from gauda.evaluation.features import choose_extractor, extract_features, image_batches
from gauda.generation.generator import PairGenerator, Sampling
from gauda.generation.sample import class_hit_rates
from gauda.io import atomic_path, atomic_write_json
from gauda.metrics.generative import KID_SUBSETS, fid, kid
from gauda.segmentation.bayesian import build_segmenter
from gauda.segmentation.evaluate import SplitEvaluation, evaluate_split, load_segmenter
from gauda.segmentation.trainer import SegmentationTrainer

logger = logging.getLogger(__name__)

RESULT_FILE = "generator_evaluation.json"
FIGURE_FILE = "guidance_sweep.png"
SYNTHETIC_ONLY_RUN = "synthetic_only"  # the run folder of the Synthetic-Only segmenter, inside --out
AUTOENCODER_ONLY_RUN = "autoencoder_only"  # the segmenter trained on reconstructed real pairs, inside --out


class GeneratedPairs(Dataset):
    """Pairs in memory as the samples of a ``PairedDataset``: image (3, H, W) in [0, 1], mask (H, W) int64,
    classes (C,) multi-hot, video and name (each pair its own "video")."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, class_names: Sequence[str]) -> None:
        if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"images {tuple(images.shape)} and masks {tuple(masks.shape)}: not pairs")
        self.images, self.masks = images.float().cpu(), masks.long().cpu()
        self.class_names = tuple(class_names)
        self.epoch = 0  # set by the trainer; generated pairs are not augmented

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, item: int) -> Sample:
        name = f"generated_{item:05d}"
        mask = self.masks[item]
        classes = classes_present(mask, len(self.class_names))
        return Sample(image=self.images[item], mask=mask, classes=classes, video=name, name=name)


def round_robin_conditions(num_samples: int, num_classes: int, seed: int) -> torch.Tensor:
    """(N, C) one-hot conditions: pair i gets class order[i mod C] of a seeded permutation ``order``."""
    order = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))
    return F.one_hot(order[torch.arange(num_samples) % num_classes], num_classes).float()


def conditioned_hit_rates(
    masks: torch.Tensor, conditions: torch.Tensor, class_names: Sequence[str]
) -> dict[str, float | None]:
    """For each class, the fraction of the masks (N, H, W) conditioned on it (conditions (N, C)) that
    contain it; None for a class no pair was conditioned on."""
    rates: dict[str, float | None] = {}
    for c, name in enumerate(class_names):
        chosen = conditions[:, c] > 0
        rates[name] = class_hit_rates(masks[chosen], [c])[0] if chosen.any() else None
    return rates


def generate_pairs(
    pair_generator: PairGenerator,
    conditions: torch.Tensor,
    sampling: Sampling,
    seed: int,
    batch_size: int,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, H, W) in [0, 1] and masks (N, H, W) on the CPU, one per condition row (N, C)."""
    generator = torch.Generator(pair_generator.device).manual_seed(seed)
    images, masks = [], []
    bar = tqdm(
        total=len(conditions),
        desc=f"generating ({sampling.sampler}, {sampling.steps} steps, w={sampling.guidance:g})",
        disable=not progress,
    )
    for batch in conditions.split(batch_size):
        image, mask = pair_generator.generate(batch, sampling, generator)
        images.append(image.cpu())
        masks.append(mask.cpu())
        bar.update(len(batch))
    bar.close()
    return torch.cat(images), torch.cat(masks)


@torch.no_grad()
def reconstructed_pairs(
    pair_generator: PairGenerator, dataset: Dataset, batch_size: int, progress: bool = True
) -> GeneratedPairs:
    """Every real pair of ``dataset`` through the generator's two autoencoders (ignored pixels stay
    ignored): what a perfect diffusion model could at best produce on these autoencoders."""
    images, masks = [], []
    loader = DataLoader(dataset, batch_size=batch_size)
    for batch in tqdm(loader, desc="reconstructing", disable=not progress):
        image, mask = pair_generator.reconstruct(batch["image"], batch["mask"])
        images.append(image.cpu())
        masks.append(torch.where(batch["mask"] == IGNORE_INDEX, IGNORE_INDEX, mask.cpu()))
    return GeneratedPairs(torch.cat(images), torch.cat(masks), pair_generator.class_names)


def real_only_evaluation(
    model: torch.nn.Module,
    pairs: Dataset,
    config: SegmenterStageConfig,
    class_names: Sequence[str],
    device: torch.device,
) -> SplitEvaluation:
    """Real-Only: the segmenter trained on real data, scored on generated pairs (as on a test split)."""
    segmentation = config.segmentation
    samples, batch_size = segmentation.num_samples("test"), segmentation.eval_batch_size
    names, seed = tuple(class_names), segmentation.seed
    return evaluate_split(model, pairs, names, samples, batch_size, device, seed=seed)


def synthetic_only_evaluation(
    pairs: GeneratedPairs,
    splits: DataSplits,
    config: SegmenterStageConfig,
    run_dir: Path,
    progress: bool = True,
) -> SplitEvaluation:
    """Synthetic-Only: a segmenter of ``config.segmentation`` trained on the generated pairs alone (validated
    on the real val split, which picks its best checkpoint), scored on the real test split."""
    segmentation = config.segmentation
    network = build_segmenter(segmentation, in_channels=3, num_classes=len(splits.class_names))
    trainer = SegmentationTrainer(
        network,
        segmentation,
        pairs,
        splits.val,
        splits.class_names,
        run_dir,
        to_dict(config),
        progress=progress,
    )
    trainer.fit()
    best = run_dir / "best.safetensors"
    model, _ = load_segmenter(best if best.is_file() else run_dir / "last.safetensors", trainer.device)
    samples, batch_size = segmentation.num_samples("test"), segmentation.eval_batch_size
    return evaluate_split(
        model, splits.test, splits.class_names, samples, batch_size, trainer.device, seed=segmentation.seed,
        progress=progress,
    )  # fmt: skip


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _least_span(axis: Any) -> None:
    """Widen a panel whose values are (nearly) equal, e.g. one w, to 10 % of their size: its ticks then
    read the value instead of an offset like 1e-13 + 5.86e-2."""
    low, high = axis.get_ylim()
    centre, least = (low + high) / 2, 0.1 * max(abs(low + high) / 2, 1e-6)
    if high - low < least:
        axis.set_ylim(centre - least / 2, centre + least / 2)


def save_sweep_figure(path: str | Path, sweep: Sequence[dict[str, Any]], feature_extractor: str) -> Path:
    """The metrics against the guidance scale w (as the paper's Fig. 5), a PNG."""
    rows = sorted(sweep, key=lambda entry: entry["guidance"])
    w = [entry["guidance"] for entry in rows]

    def values(key: str) -> list[float]:
        return [math.nan if entry[key] is None else entry[key] for entry in rows]

    figure = Figure(figsize=(10, 6.5), dpi=110)
    FigureCanvasAgg(figure)
    panels = figure.subplots(2, 2, sharex=True)
    panels[0, 0].plot(w, values("fid"), "o-")
    panels[0, 0].set_ylabel("FID")
    panels[0, 1].errorbar(w, values("kid_mean"), yerr=values("kid_std"), fmt="o-", capsize=3)
    panels[0, 1].set_ylabel("KID (mean ± std over subsets)")
    panels[1, 0].plot(w, values("ro_iou"), "o-", label="RO IoU")
    panels[1, 0].plot(w, values("ro_dice"), "s--", label="RO Dice")
    panels[1, 0].set_ylabel("Real-Only score")
    panels[1, 0].legend(fontsize=8)
    panels[1, 1].plot(w, values("mean_hit_rate"), "o-")
    panels[1, 1].set_ylabel("conditioning hit rate (class mean)")
    for axis in panels[1]:
        axis.set_xlabel("guidance w  (eps_null + w (eps_c - eps_null))")
    for axis in panels.flat:
        axis.grid(alpha=0.3)
        _least_span(axis)
    figure.suptitle(f"generator against guidance; FID/KID features: {feature_extractor}", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def load_segmenter_run(
    run: Path, overrides: Sequence[str] = (), device: str | None = None
) -> tuple[torch.nn.Module, dict[str, Any], SegmenterStageConfig, torch.device]:
    """The best checkpoint of a segmenter run, its state, the run's configuration (with ``overrides`` and,
    when given, ``device``) and the device."""
    config_file, checkpoint = run / "config.yaml", run / "best.safetensors"
    for needed in (config_file, checkpoint):
        if not needed.is_file():
            raise ConfigError(
                f"--segmenter {run}: {needed} not found; expected a run folder of gauda train segmenter"
            )
    config = segmenter_run_config(config_file, overrides)  # the run's own data, model and scheme
    torch_device = resolve_device(device or config.segmentation.device)
    segmentation = dataclasses.replace(config.segmentation, device=str(torch_device))
    config = dataclasses.replace(config, segmentation=segmentation)
    try:
        model, state = load_segmenter(checkpoint, torch_device)
    except CheckpointError as error:
        raise ConfigError(f"--segmenter {run}: {error}") from None
    return model, state, config, torch_device


def sweep_point(
    pair_generator: PairGenerator,
    sampling: Sampling,
    conditions: torch.Tensor,
    size: tuple[int, ...],
    model: torch.nn.Module,
    config: SegmenterStageConfig,
    extractor: Any,
    real_features: torch.Tensor,
    seed: int,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> tuple[dict[str, Any], GeneratedPairs, SplitEvaluation]:
    """One guidance scale of the sweep: its pairs, FID and KID against the real features, the real-trained
    segmenter's IoU on them (Real-Only) and the hit rates; returns the sweep entry, the pairs and RO."""
    began = time.perf_counter()
    images, masks = generate_pairs(pair_generator, conditions, sampling, seed, batch_size, progress)
    images, masks = resize_pairs(images, masks, size)
    pairs = GeneratedPairs(images, masks, pair_generator.class_names)
    features = extract_features(extractor, image_batches(images, batch_size), device)  # (N, D)
    distance = kid(real_features, features, KID_SUBSETS, seed=seed)
    ro_evaluation = real_only_evaluation(model, pairs, config, pair_generator.class_names, device)
    ro = ro_evaluation.table
    hits = conditioned_hit_rates(masks, conditions, pair_generator.class_names)
    known = [rate for rate in hits.values() if rate is not None]
    entry = {
        "guidance": sampling.guidance,
        "fid": _number(fid(real_features, features)),
        "kid_mean": distance.mean,
        "kid_std": distance.std,
        "kid_subset_size": distance.subset_size,
        "ro_iou": _number(ro.label_mean_iou),
        "ro_dice": _number(ro.to_json()["label_mean_dice"]),
        "hit_rate": hits,
        "mean_hit_rate": sum(known) / len(known) if known else None,
        "seconds": round(time.perf_counter() - began, 3),
    }
    return entry, pairs, ro_evaluation


def evaluate_generator(
    run: str | Path,
    segmenter_run: str | Path,
    out: str | Path,
    num_samples: int = 256,
    guidance: Sequence[float] | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    inception_weights: str | Path | None = None,
    seed: int = 0,
    batch_size: int = 16,
    real_split: str = "train",
    synthetic_only: bool = True,
    autoencoder_only: bool = False,
    overrides: Sequence[str] = (),
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a diffusion run's pairs; write ``generator_evaluation.json`` and the figure into ``out``.

    Args:
        run: run folder of ``gauda train diffusion``.
        segmenter_run: run folder of ``gauda train segmenter`` trained on the real data; its
            ``config.yaml`` names the real data and the Synthetic-Only segmenter's settings and steps.
        out: folder for the JSON, the figure and the Synthetic-Only run.
        num_samples: pairs generated per guidance scale.
        guidance: guidance scales w of the sweep; the first is the main evaluation (with SO IoU). None:
            the run's own.
        sampler, steps: the sampler and its steps (default: the run's).
        inception_weights: FID Inception weights; None: ``GAUDA_INCEPTION_WEIGHTS``, else the segmenter's
            encoder (in-domain, not the standard FID).
        seed: seeds the class order of the conditions and the noise (the same for every w).
        batch_size: pairs sampled at once, and frames per feature batch.
        real_split: the real frames FID and KID compare with.
        synthetic_only: train the Synthetic-Only segmenter (``segmentation.steps`` of its configuration).
        autoencoder_only: also train one on the real training pairs through both autoencoders and score
            it on the test split: the autoencoders' share of what Synthetic-Only loses (the rest is the
            diffusion model's).
        overrides: ``KEY=VALUE`` changes to the segmenter run's configuration (e.g. segmentation.steps).
        device: where everything runs (default: the segmenter configuration's ``segmentation.device``).
        progress: show progress bars.
    """
    if num_samples < 2 or batch_size < 1:
        raise ConfigError(f"--num {num_samples}, --batch-size {batch_size}: expected >= 2 and >= 1")
    if real_split not in SPLITS:
        raise ConfigError(f"--real-split {real_split!r}: expected one of {', '.join(SPLITS)}")
    run, segmenter_run, out = Path(run), Path(segmenter_run), Path(out)
    model, state, config, torch_device = load_segmenter_run(segmenter_run, overrides, device)
    extractor = choose_extractor(inception_weights, model, torch_device)  # a bad weight file fails early
    pair_generator = PairGenerator.load(run, torch_device)
    class_names = pair_generator.class_names
    if tuple(state["class_names"]) != class_names:
        raise ConfigError(
            f"--segmenter {segmenter_run}: trained on classes {list(state['class_names'])}; "
            f"the generator --run {run} on {list(class_names)}"
        )
    try:
        samplings = [pair_generator.sampling(sampler, steps, w) for w in dict.fromkeys(guidance or [None])]
    except ConfigError as error:
        raise ConfigError(f"--{error}") from None
    if num_samples < len(class_names):
        logger.warning("--num %d < %d classes: some classes get no pairs and no hit rate",
                       num_samples, len(class_names))  # fmt: skip

    data = dataclasses.replace(config.data, augment=dataclasses.replace(config.data.augment, enabled=False))
    splits = load_splits(data, progress=progress)
    if splits.class_names != class_names:
        raise ConfigError(f"--segmenter {segmenter_run}: its data has classes {list(splits.class_names)}")
    real = getattr(splits, real_split)
    real_features = extract_features(
        extractor, image_batches(real, batch_size), torch_device, -(-len(real) // batch_size), progress
    )  # (N_real, D)
    size = tuple(real[0]["image"].shape[-2:])
    conditions = round_robin_conditions(num_samples, len(class_names), seed)  # (N, C)

    sweep: list[dict[str, Any]] = []
    main_pairs: GeneratedPairs | None = None
    main_ro: SplitEvaluation | None = None
    for sampling in samplings:
        entry, pairs, ro_evaluation = sweep_point(
            pair_generator, sampling, conditions, size, model, config, extractor, real_features, seed,
            batch_size, torch_device, progress,
        )  # fmt: skip
        if main_pairs is None:  # the first guidance scale is the main evaluation
            main_pairs, main_ro = pairs, ro_evaluation
        sweep.append(entry)
        logger.info("guidance %g: FID %.3f, KID %.4f, RO IoU %s", sampling.guidance, entry["fid"],
                    entry["kid_mean"], entry["ro_iou"])  # fmt: skip

    main = sweep[0]
    assert main_pairs is not None and main_ro is not None  # samplings is never empty
    so_table = None
    if synthetic_only:
        so_table = synthetic_only_evaluation(main_pairs, splits, config, out / SYNTHETIC_ONLY_RUN, progress)
    ae_table = None
    if autoencoder_only:
        ae_pairs = reconstructed_pairs(pair_generator, splits.train, batch_size, progress)
        ae_table = synthetic_only_evaluation(ae_pairs, splits, config, out / AUTOENCODER_ONLY_RUN, progress)
    segmentation = config.segmentation
    real_table = evaluate_split(
        model, splits.test, class_names, segmentation.num_samples("test"), segmentation.eval_batch_size,
        torch_device, seed=segmentation.seed,
    )  # fmt: skip
    result: dict[str, Any] = {
        "run": str(run),
        "segmenter": str(segmenter_run),
        "feature_extractor": extractor.name,
        "fid": main["fid"],
        "kid_mean": main["kid_mean"],
        "kid_std": main["kid_std"],
        "ro_iou": main["ro_iou"],
        "ro_dice": main["ro_dice"],
        "so_iou": _number(so_table.table.label_mean_iou) if so_table is not None else None,
        "ae_only_iou": _number(ae_table.table.label_mean_iou) if ae_table is not None else None,
        "real_iou": _number(real_table.table.label_mean_iou),
        "hit_rate": main["hit_rate"],
        "guidance": main["guidance"],
        "guidance_form": "eps_null + w * (eps_cond - eps_null)",
        "sampler": samplings[0].sampler,
        "steps": samplings[0].steps,
        "num_samples": num_samples,
        "seed": seed,
        "real_split": real_split,
        "num_real": len(real),
        "feature_dim": real_features.shape[1],
        "kid_subset_size": main["kid_subset_size"],
        "kid_subsets": KID_SUBSETS,
        "sweep": sweep,
        "ro_evaluation": main_ro.to_json(),
        "so_evaluation": so_table.to_json() if so_table is not None else None,
        "so_run": str(out / SYNTHETIC_ONLY_RUN) if so_table is not None else None,
        "ae_only_evaluation": ae_table.to_json() if ae_table is not None else None,
        "real_evaluation": real_table.to_json(),
        "figure": FIGURE_FILE,
    }
    out.mkdir(parents=True, exist_ok=True)
    save_sweep_figure(out / FIGURE_FILE, sweep, extractor.name)
    atomic_write_json(out / RESULT_FILE, result)
    return result
