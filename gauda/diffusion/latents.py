"""The latent interface of the diffusion stage: encode a split once (cached in the run folder) and decode
sampled joint latents back into (image, mask) pairs.

Joint latents are concat(z_image, z_mask) along channels (B, D_image + D_mask, s, s): the continuous,
unit-variance encoder outputs of the two VQ-GANs before quantisation (``VQGAN.encode``); decoding
quantises them first (``VQGAN.decode``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gauda.autoencoders.vqgan import VQGAN, image_to_input, mask_to_input, output_to_image
from gauda.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gauda.data.dataset import PairedDataset

logger = logging.getLogger(__name__)
LATENTS_FILE = "latents.safetensors"


def frame_names(dataset: PairedDataset) -> list[str]:
    """The names of a split's frames, in order (what a latent cache is checked against)."""
    return [dataset.source.records[index].name for index in dataset.indices]


@torch.no_grad()
def encode_dataset(
    dataset: PairedDataset,
    image_autoencoder: VQGAN,
    mask_autoencoder: VQGAN,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Encode every frame of ``dataset``: ``image`` (N, D_image, s, s), ``mask`` (N, D_mask, s, s) latents
    and ``classes`` (N, C), the multi-hot classes present in each mask."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    parts: dict[str, list[torch.Tensor]] = {"image": [], "mask": [], "classes": []}
    for batch in tqdm(loader, desc="encoding latents", disable=not progress):
        image = image_to_input(batch["image"].to(device))  # (B, 3, H, W) in [-1, 1]
        mask = mask_to_input(batch["mask"].to(device), dataset.num_classes)  # (B, C, H, W) one-hot
        parts["image"].append(image_autoencoder.encode(image).cpu())
        parts["mask"].append(mask_autoencoder.encode(mask).cpu())
        parts["classes"].append(batch["classes"].float())
    latents = {key: torch.cat(values) for key, values in parts.items()}
    if latents["image"].shape[2:] != latents["mask"].shape[2:]:
        raise ValueError(
            f"image latents {tuple(latents['image'].shape[1:])} and mask latents "
            f"{tuple(latents['mask'].shape[1:])}: expected the same spatial size from both autoencoders"
        )
    return latents


def cached_latents(
    path: str | Path,
    dataset: PairedDataset,
    image_autoencoder: VQGAN,
    mask_autoencoder: VQGAN,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """The latents of ``dataset`` from the cache file ``path``, encoding and saving them on first use.

    The cache records the frame names; a cache made from other frames is refused rather than reused.
    """
    path = Path(path)
    names = frame_names(dataset)
    if path.is_file():
        state = load_checkpoint(path)
        if state.get("names") != names:
            raise CheckpointError(
                f"{path}: latents of other frames than the configured training split; "
                "delete the file to re-encode, or train into a new run folder"
            )
        logger.info("latents: %d frames from %s", len(names), path)
        return {key: state[key] for key in ("image", "mask", "classes")}
    latents = encode_dataset(dataset, image_autoencoder, mask_autoencoder, batch_size, device, progress)
    save_checkpoint(path, {**latents, "names": names})
    logger.info("latents: encoded %d frames into %s", len(names), path)
    return latents


@torch.no_grad()
def decode_pairs(
    z: torch.Tensor, image_autoencoder: VQGAN, mask_autoencoder: VQGAN, image_channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint latents (B, D, s, s) -> images (B, 3, H, W) in [0, 1] and masks (B, H, W) of class ids.

    Args:
        z: concat(z_image, z_mask) along channels.
        image_autoencoder: decodes the first ``image_channels`` channels.
        mask_autoencoder: decodes the rest; the mask is the argmax of its class logits.
        image_channels: D_image.
    """
    image = output_to_image(image_autoencoder.decode(z[:, :image_channels]))  # (B, 3, H, W)
    mask = mask_autoencoder.decode(z[:, image_channels:]).argmax(1)  # (B, H, W)
    return image, mask
