"""The sampling job behind ``gauda sample``: classes -> CFG sampler -> joint latents -> decoded pairs.

It loads a diffusion run (and, through it, the two autoencoder runs), samples ``num_samples`` pairs in
batches from one seeded generator, decodes them and writes them as a ``folder`` (or nnU-Net) dataset, with
``grid.png`` (images beside their overlaid masks) and ``sample_report.json`` (for each requested class,
the fraction of generated masks that contain it, beside its frame frequency in the training split).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gauda.autoencoders.runs import load_autoencoder
from gauda.config import ConfigError
from gauda.data.figures import save_pair_grid
from gauda.data.folder import check_output_folder
from gauda.data.writers import DatasetFormat, check_format, write_dataset
from gauda.device import resolve_device
from gauda.diffusion.condition import multi_hot
from gauda.diffusion.runs import load_diffusion
from gauda.generation.generator import PairGenerator, Sampling, resolve_sampling

logger = logging.getLogger(__name__)
REPORT_FILE = "sample_report.json"
GRID_FILE = "grid.png"


def parse_classes(text: str | None, class_names: tuple[str, ...]) -> list[int]:
    """Class ids of a comma-separated list of names ("" or None: unconditional, no ids).

    Names match exactly or, failing that, ignoring case; anything else is an error listing the names.
    """
    ids = []
    for name in (part.strip() for part in (text or "").split(",")):
        if not name:
            continue
        matches = [i for i, known in enumerate(class_names) if known == name] or [
            i for i, known in enumerate(class_names) if known.lower() == name.lower()
        ]
        if not matches:
            raise ConfigError(
                f"--classes: unknown class {name!r}; expected comma-separated names from: "
                + ", ".join(class_names)
            )
        ids.append(matches[0])
    return sorted(set(ids))


def class_hit_rates(masks: torch.Tensor, class_ids: list[int]) -> list[float]:
    """For each class id, the fraction of masks (N, H, W) with at least one pixel of it."""
    return [float((masks == c).flatten(1).any(1).float().mean()) for c in class_ids]


def to_arrays(image: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(B, 3, H, W) in [0, 1] and (B, H, W) ids -> uint8 (B, H, W, 3) and uint8 (B, H, W)."""
    pictures = (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return pictures, mask.to(torch.uint8).cpu().numpy()


def sample_batches(
    pair_generator: PairGenerator,
    class_ids: list[int],
    num_samples: int,
    sampling: Sampling,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` pairs conditioned on all of ``class_ids`` at once (none: unconditional), in batches
    from one seeded generator: CPU images (N, 3, H, W) in [0, 1] and masks (N, H, W). The same seed and
    batch size give the same pairs."""
    condition = multi_hot(class_ids, pair_generator.num_classes) if class_ids else None
    if condition is not None:
        condition = condition.to(pair_generator.device)
    generator = torch.Generator(pair_generator.device).manual_seed(seed)
    images, masks = [], []
    desc = f"sampling ({sampling.sampler}, {sampling.steps} steps)"
    with tqdm(total=num_samples, desc=desc, disable=not progress) as bar:
        for start in range(0, num_samples, batch_size):
            count = min(batch_size, num_samples - start)
            conditions = None if condition is None else condition.expand(count, -1)
            image, mask = pair_generator.generate(conditions, sampling, generator, num_samples=count)
            images.append(image.cpu())
            masks.append(mask.cpu())
            bar.update(count)
    return torch.cat(images), torch.cat(masks)


def sample_pairs(
    run: str | Path,
    out: str | Path,
    classes: str | None = None,
    num_samples: int = 16,
    sampler: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    format: DatasetFormat = "folder",
) -> dict[str, Any]:
    """Generate pairs with a diffusion run and write them to ``out``; returns the sample report.

    Args:
        run: run folder of ``gauda train diffusion``.
        out: the folder dataset to write (new or empty unless ``overwrite``).
        classes: comma-separated class names to condition on; empty or None for unconditional samples.
        num_samples: pairs to generate.
        sampler: ``ddpm``, ``ddim`` or ``dpmpp``; default the run's ``sampler``.
        steps: denoising steps; default the run's ``sampling_steps`` for the run's sampler, else 1000 for
            ddpm, 50 for ddim, 20 for dpmpp.
        guidance: w of Eq. 6, eps_null + w (eps_c - eps_null); default the run's ``guidance``.
        seed: seed of the noise; the same seed (and batch size) gives the same pairs.
        batch_size: pairs sampled at once.
        device: ``auto``, ``cpu``, ``cuda``, ...
        overwrite: replace an existing dataset at ``out``.
        progress: show a progress bar.
        format: ``folder`` or ``nnunet`` (nnU-Net v2's raw format; every pair a training case).
    """
    check_format(format)
    if num_samples < 1 or batch_size < 1:
        raise ConfigError(f"--num {num_samples}, --batch-size {batch_size}: expected integers >= 1")
    torch_device = resolve_device(device)
    model, info = load_diffusion(run, device=str(torch_device))
    class_names = info["class_names"]
    class_ids = parse_classes(classes, class_names)  # before the autoencoders: bad names fail fast
    try:
        sampling = resolve_sampling(info["config"], sampler, steps, guidance)
    except ConfigError as error:
        raise ConfigError(f"--{error}") from None
    # before sampling, not after: a folder that cannot or must not be replaced, or that holds an input
    out = check_output_folder(out, overwrite, inputs=[run, *info["autoencoders"].values()])
    image_ae, _ = load_autoencoder(info["autoencoders"]["image"], device=str(torch_device))
    mask_ae, _ = load_autoencoder(info["autoencoders"]["mask"], device=str(torch_device))
    pair_generator = PairGenerator(model, image_ae, mask_ae, info)
    sampler, steps, guidance = sampling.sampler, sampling.steps, sampling.guidance
    began = time.perf_counter()
    all_images, all_masks = sample_batches(
        pair_generator, class_ids, num_samples, sampling, seed, batch_size, progress
    )  # (N, 3, H, W), (N, H, W)
    seconds = time.perf_counter() - began

    reported = class_ids or list(range(len(class_names)))
    hits = class_hit_rates(all_masks, reported)
    frequency = info["class_frequency"]
    report = {
        "run": str(run),
        "requested_classes": [class_names[c] for c in class_ids],
        "num_samples": num_samples,
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "guidance_form": "eps_null + w * (eps_cond - eps_null)",
        "seed": seed,
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "seconds_per_pair": round(seconds / num_samples, 4),
        "classes": [
            {
                "class": class_names[c],
                "id": c,
                "generated_fraction": hit,
                "training_frame_frequency": float(frequency[c]),
            }
            for c, hit in zip(reported, hits, strict=True)
        ],
    }
    if class_ids:  # all requested classes at once
        together = torch.stack([(all_masks == c).flatten(1).any(1) for c in class_ids]).all(0)
        report["all_requested_fraction"] = float(together.float().mean())
    pictures, labels = to_arrays(all_images, all_masks)
    with write_dataset(out, class_names, format, overwrite) as writer:
        for i in range(num_samples):
            # each pair is independent: its own "video", so that the pairs split like any dataset
            writer.add(f"sample_{i:05d}", f"sample_{i:05d}", pictures[i], labels[i])
        shown = min(num_samples, 16)
        save_pair_grid(
            writer.staging / GRID_FILE,
            list(pictures[:shown]),
            list(labels[:shown]),
            class_names,
            titles=[f"sample_{i:05d}" for i in range(shown)],
        )
        writer.write_text(REPORT_FILE, json.dumps(report, indent=2) + "\n")
    logger.info("sampled %d pairs into %s (%.2f s per pair)", num_samples, out, seconds / num_samples)
    return report
