"""Loss terms of Eq. 3 (image) and Eq. 4 (mask) beyond vector quantisation: adaptive adversarial weight,
class weights for the mask cross-entropy, and an offline perceptual distance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

from gauda.checkpoint import CheckpointError


def adaptive_adversarial_weight(
    reconstruction_loss: torch.Tensor,
    generator_loss: torch.Tensor,
    last_layer: torch.Tensor,
    average: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """VQ-GAN's lambda = ||grad rec|| / (||grad adv|| + 1e-4) at the decoder's last layer (Esser et al. 2021).

    It balances the two terms whatever their scales; detached, clamped to [0, 1e4]. ``average`` maps a
    process's gradient to the mean over the processes of a distributed run (the global batch's gradient).
    """
    rec_grad = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[0]
    adv_grad = torch.autograd.grad(generator_loss, last_layer, retain_graph=True)[0]
    if average is not None:
        rec_grad, adv_grad = average(rec_grad), average(adv_grad)
    return (rec_grad.norm() / (adv_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()


def inverse_sqrt_frequency_weights(pixel_counts: torch.Tensor) -> torch.Tensor:
    """Cross-entropy class weights 1/sqrt(frequency), normalised to mean 1 over the classes that occur.

    Rare classes (thin instruments) get more weight without the instability of 1/frequency; classes
    that never occur get weight 0.
    """
    return inverse_frequency_weights(pixel_counts, 0.5)


def inverse_frequency_weights(pixel_counts: torch.Tensor, power: float) -> torch.Tensor:
    """Class weights frequency^-power, normalised to mean 1 over the classes that occur (0 elsewhere)."""
    counts = pixel_counts.double()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = (counts[present] / counts.sum()).pow(-power)
    weights[present] /= weights[present].mean()
    return weights.float()


def pixel_weights(mask: torch.Tensor, weights: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """(B, H, W) weight of each pixel: its class's weight (C,), 1 at ignored pixels."""
    valid = mask != ignore_index
    return torch.where(valid, weights[torch.where(valid, mask, 0)], 1.0)


def class_weighted_l1(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor,
    normaliser: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """The L1 term of Eq. 3 with every pixel weighted by its mask class's weight: a weighted mean.

    output, target (B, 3, H, W); mask (B, H, W) class ids; weights (C,). A thin instrument covers few
    pixels, so a plain L1 can blur it away at little cost; here its pixels count as much as its class's
    weight says. Ignored pixels weigh 1. With equal weights this is the plain L1. ``normaliser``
    replaces this batch's weight sum (a distributed run passes the mean over processes of their sums,
    so that the averaged gradients are the whole batch's weighted mean).
    """
    per_pixel = pixel_weights(mask, weights, ignore_index)  # (B, H, W)
    error = (output - target).abs().mean(1)  # (B, H, W)
    return (per_pixel * error).sum() / (per_pixel.sum() if normaliser is None else normaliser)


# VGG16's convolutional layers in torchvision's numbering ("features.<index>"), so that a state dict
# saved from torchvision's vgg16 loads here as it is; "M" is max pooling.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_VGG16_TAPS = (3, 8, 15, 22, 29)  # the ReLUs after conv1_2, conv2_2, conv3_3, conv4_3, conv5_3


class VGG16Features(nn.Module):
    """The feature part of VGG16, returning the activations used by LPIPS-style perceptual distances."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[None, :, None, None])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])[None, :, None, None])
        self.requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path) -> VGG16Features:
        """Load weights from a safetensors file or a plain torch state dict (read with ``weights_only``).

        Expected keys: ``features.<i>.weight`` / ``.bias`` as in torchvision's vgg16 (extra keys such as
        the classifier's are ignored). Nothing is downloaded.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"perceptual_weights {path}: not found; expected VGG16 weights (keys features.<i>.weight), "
                "e.g. torchvision's vgg16 state dict saved with torch.save or safetensors"
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # torch raises several types for files that are not state dicts
                raise CheckpointError(
                    f"perceptual_weights {path}: not a loadable state dict ({error})"
                ) from None
        model = cls()
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        missing = sorted(set(model.features.state_dict()) - {k.removeprefix("features.") for k in wanted})
        if missing:
            raise CheckpointError(
                f"perceptual_weights {path}: missing VGG16 keys, e.g. features.{missing[0]}"
            )
        model.features.load_state_dict({k.removeprefix("features."): v for k, v in wanted.items()})
        return model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[0, 1] images (B, 3, H, W) -> activations at the five tap points."""
        h = (x - self.mean) / self.std
        taps = []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in _VGG16_TAPS:
                taps.append(h)
            if index >= _VGG16_TAPS[-1]:
                break
        return taps


def perceptual_distance(features: VGG16Features, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of channel-normalised VGG16 activations (LPIPS without its learned weights)."""
    distance = x.new_zeros(())
    for a, b in zip(features(x), features(y), strict=True):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        distance = distance + (a - b).pow(2).sum(1).mean()
    return distance


def mask_dice_loss(logits: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the classes, each summed over the whole batch (MONAI's ``DiceLoss`` with
    ``batch=True``): logits (B, C, H, W) against one-hot masks whose ignored pixels are all-zero vectors
    (``mask_to_input``), which drop out of both sides. A class absent from the batch and not predicted
    scores 1."""
    valid = one_hot.sum(1, keepdim=True)  # (B, 1, H, W): 0 at ignored pixels
    return _DICE(logits.softmax(1) * valid, one_hot)


_DICE = DiceLoss(include_background=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)


def mask_cross_entropy(
    logits: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None, ignore_index: int = 255
) -> torch.Tensor:
    """The CE term of Eq. 4: logits (B, C, H, W) against class ids (B, H, W), ignore index respected."""
    return F.cross_entropy(logits, mask, weight=weights, ignore_index=ignore_index)
