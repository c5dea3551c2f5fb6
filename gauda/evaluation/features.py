"""Feature extractors for FID and KID: the standard FID InceptionV3, or the encoder of a trained segmenter.

Each extractor maps images (B, 3, H, W) in [0, 1] to features (B, D) and carries a ``name`` that every
output repeats (``feature_extractor``), so that distances in a segmenter's feature space are never
mistaken for the standard FID and KID, which only Inception features give.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gauda.evaluation.inception import FIDInceptionV3, inception_weights_path, load_fid_inception
from gauda.segmentation.ensemble import UNetEnsemble
from gauda.segmentation.phiseg import PHiSeg
from gauda.segmentation.unet import UNet, check_divisible

logger = logging.getLogger(__name__)

INCEPTION_NAME = "inception-v3 (pytorch-fid weights)"
SEGMENTER_ENCODER_NAME = "segmenter-encoder (in-domain, not standard FID)"


class FeatureExtractor(Protocol):
    """Images (B, 3, H, W) in [0, 1] -> features (B, D); ``name`` labels every number computed from them."""

    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class InceptionFeatures:
    """The 2048-d pool features of FID's InceptionV3: the standard FID and KID."""

    name = INCEPTION_NAME

    def __init__(self, network: FIDInceptionV3) -> None:
        self.network = network.eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)  # (B, 2048)


def unet_encoder_features(unet: UNet, images: torch.Tensor) -> torch.Tensor:
    """The deepest encoder features of a UNet, averaged over space: (B, 3, H, W) -> (B, channels[-1]).

    The encoder path of ``UNet.forward``, stopped before the decoder.
    """
    check_divisible(images, unet.levels, "UNet")
    h = unet.stem(images)
    for level, stage in enumerate(unet.encoder):
        h = stage(h)  # (B, channels[level], H / 2**level, W / 2**level)
        if level < unet.levels - 1:
            h = unet.downsample[level](h)
    return h.mean(dim=(2, 3))


def segmenter_encoder_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Global-average-pooled deepest encoder features (B, D) of a segmenter for images (B, 3, H, W).

    Args:
        model: a ``UNetEnsemble`` (its first member's encoder), a ``UNet``, or ``PHiSeg`` (the prior net's
            image features at the coarsest level).
        images: in [0, 1], on the model's device.
    """
    if isinstance(model, UNetEnsemble):
        return unet_encoder_features(model.members[0], images)
    if isinstance(model, UNet):
        return unet_encoder_features(model, images)
    if isinstance(model, PHiSeg):
        check_divisible(images, model.levels, "PHiSeg")
        return model.prior.image_features(images)[-1].mean(dim=(2, 3))
    raise TypeError(f"segmenter_encoder_features: no encoder known for {type(model).__name__}")


class SegmenterEncoderFeatures:
    """In-domain features that need no download: the encoder of a segmenter trained on the real data.

    Distances in this space compare real and generated frames as the segmenter sees them; they are not
    the standard FID and KID and cannot be compared with published numbers.
    """

    name = SEGMENTER_ENCODER_NAME

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return segmenter_encoder_features(self.model, images)


def choose_extractor(
    inception_weights: str | Path | None, segmenter: nn.Module, device: torch.device
) -> FeatureExtractor:
    """FID's Inception when a weight file is named (option or ``GAUDA_INCEPTION_WEIGHTS``), else the
    segmenter's encoder, with a logged warning that its numbers are not the standard FID.

    Args:
        inception_weights: the ``--inception-weights`` option (None: the environment variable, if set).
        segmenter: the segmenter trained on the real data, on ``device``.
        device: where the extractor runs.
    """
    named = inception_weights_path(inception_weights)
    if named is not None:
        path, source = named
        return InceptionFeatures(load_fid_inception(path, source, device))
    logger.warning(
        "no Inception weights (--inception-weights or GAUDA_INCEPTION_WEIGHTS): FID and KID use the "
        "encoder of the real-data segmenter; these in-domain numbers are NOT the standard FID/KID"
    )
    return SegmenterEncoderFeatures(segmenter)


@torch.no_grad()
def extract_features(
    extractor: FeatureExtractor,
    batches: Iterable[torch.Tensor],
    device: torch.device,
    total: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Features (N, D) in float64 on the CPU of image batches (B, 3, H, W) in [0, 1].

    Args:
        extractor: the feature network.
        batches: image batches, e.g. ``image_batches(...)``.
        device: where the extractor runs.
        total: batches, for the progress bar.
        progress: show a progress bar.
    """
    features = [
        extractor(images.to(device)).double().cpu()
        for images in tqdm(batches, desc="features", total=total, leave=False, disable=not progress)
    ]
    if not features:
        raise ValueError("extract_features: no images")
    return torch.cat(features)


def image_batches(source: torch.Tensor | Dataset, batch_size: int) -> Iterable[torch.Tensor]:
    """Batches (B, 3, H, W) of an image tensor (N, 3, H, W) or of the "image" of a dataset's samples."""
    if isinstance(source, torch.Tensor):
        return source.split(batch_size)
    return (batch["image"] for batch in DataLoader(source, batch_size=batch_size, shuffle=False))
