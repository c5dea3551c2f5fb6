"""Reconstruction quality of a trained autoencoder on a split: the figures of ``metrics.json``.

Images: PSNR, SSIM and L1 on [0, 1] images. Masks: per-class IoU of reconstructed against original
masks, pooled over the split (total intersection / total union), and its mean over the classes present
in the split. Both: the fraction of codebook entries used on the split.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from gauda.autoencoders.vqgan import VQGAN, image_to_input, mask_to_input, output_to_image
from gauda.data.classes import IGNORE_INDEX
from gauda.data.figures import colour_mask

Modality = Literal["image", "mask"]


def model_input(
    batch: dict[str, Any], modality: Modality, num_classes: int, device: torch.device
) -> torch.Tensor:
    """The autoencoder's input for a batch: [-1, 1] images or one-hot masks."""
    if modality == "image":
        return image_to_input(batch["image"].to(device))
    return mask_to_input(batch["mask"].to(device), num_classes)


def pooled_iou(confusion: torch.Tensor) -> torch.Tensor:
    """Per-class IoU from a (C, C) confusion matrix (rows: truth); NaN where a class has no union."""
    confusion = confusion.double()
    intersection = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.nan)


@torch.no_grad()
def evaluate_autoencoder(
    model: VQGAN,
    dataset: Dataset,
    modality: Modality,
    class_names: tuple[str, ...],
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Reconstruct every sample of ``dataset`` and measure the quality (see the module docstring)."""
    model.eval()
    device = torch.device(device)
    num_classes = len(class_names)
    used = torch.zeros(model.quantizer.codebook_size, dtype=torch.bool)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    psnr, ssim, l1, count = 0.0, 0.0, 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        output, indices, _ = model(model_input(batch, modality, num_classes, device))
        used[indices.flatten().cpu()] = True
        if modality == "image":
            target, reconstruction = batch["image"].to(device), output_to_image(output)
            n = len(target)
            psnr += n * peak_signal_noise_ratio(reconstruction, target, data_range=1.0, dim=(1, 2, 3)).item()
            ssim += n * structural_similarity_index_measure(reconstruction, target, data_range=1.0).item()
            l1 += n * (reconstruction - target).abs().mean().item()
            count += n
        else:
            target, predicted = batch["mask"], output.argmax(1).cpu()
            valid = target != IGNORE_INDEX
            pairs = target[valid] * num_classes + predicted[valid]
            confusion += torch.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)
    metrics: dict[str, Any] = {"codebook_usage": used.float().mean().item()}
    if modality == "image":
        metrics.update(psnr=psnr / count, ssim=ssim / count, l1=l1 / count)
    else:
        iou = pooled_iou(confusion)
        present = confusion.sum(1) > 0  # classes that occur in the split's masks
        metrics["per_class_iou"] = {
            name: (None if math.isnan(v) else v) for name, v in zip(class_names, iou.tolist(), strict=True)
        }
        metrics["mean_iou"] = iou[present].mean().item()
    return metrics


@torch.no_grad()
def reconstruction_rows(
    model: VQGAN, dataset: Dataset, modality: Modality, num_classes: int, count: int = 8, device: str = "cpu"
) -> list[list[np.ndarray]]:
    """Two rows of uint8 pictures: the first ``count`` inputs and their reconstructions."""
    model.eval()
    batch = next(iter(DataLoader(dataset, batch_size=count)))
    output, _, _ = model(model_input(batch, modality, num_classes, torch.device(device)))
    if modality == "image":
        pictures = [batch["image"], output_to_image(output).cpu()]
        return [
            [(p.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for p in row] for row in pictures
        ]
    masks = [batch["mask"].numpy(), output.argmax(1).cpu().numpy().astype(np.uint8)]
    return [[colour_mask(m.astype(np.uint8), num_classes) for m in row] for row in masks]
