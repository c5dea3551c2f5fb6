"""A segmentation term for the image autoencoder: an option beyond Eq. 3 (``segmentation_weight``).

A small segmentation network (the *head*) learns, while the autoencoder trains, to segment the original
training images against their masks; the autoencoder pays the head's cross-entropy on its
reconstructions. A reconstruction that blurs an instrument away costs what the head needs to find it,
however few pixels it covers: an in-domain perceptual distance whose features need no download and are
learnt from the very frames the autoencoder sees. The head's weights learn only from the originals (its
gradients from the reconstruction term are discarded), so it cannot learn to read blurred images.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import UNet

from gauda.autoencoders.config import AutoencoderConfig
from gauda.autoencoders.losses import mask_cross_entropy
from gauda.distributed import Distributed


def build_segmentation_head(ae: AutoencoderConfig, num_classes: int) -> UNet:
    """MONAI's UNet with ``ae.segmentation_channels`` levels: [-1, 1] images (B, 3, H, W) -> class logits."""
    channels = ae.segmentation_channels
    return UNet(
        spatial_dims=2,
        in_channels=3,
        out_channels=num_classes,
        channels=channels,
        strides=(2,) * (len(channels) - 1),
        num_res_units=1,
    )


def segmentation_term(
    head: torch.nn.Module, images: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """The head's cross-entropy on [-1, 1] images (B, 3, H, W) against the masks (B, H, W), class-weighted
    like the L1: on reconstructions the term the autoencoder adds to Eq. 3 (times
    ``segmentation_weight``), on the originals the head's own loss."""
    return mask_cross_entropy(head(images), mask, weights)


class SegmentationHead:
    """The head, its optimiser, and its training step on the originals.

    ``term`` gives the autoencoder's loss on a step's reconstructions; ``step`` then trains the head on
    the same step's originals (after the autoencoder's backward pass, whose gradients in the head it
    clears first). ``modules`` and ``optimizers`` are what a checkpoint holds of it.
    """

    def __init__(
        self,
        ae: AutoencoderConfig,
        num_classes: int,
        weights: torch.Tensor | None,
        ddp: Distributed,
        device: torch.device,
    ) -> None:
        self.ae, self.weights = ae, weights
        self.head = build_segmentation_head(ae, num_classes).to(device)
        self.optimizer = torch.optim.AdamW(
            self.head.parameters(), ae.segmentation_learning_rate, weight_decay=ae.weight_decay
        )
        self.net = ddp.wrap(self.head)  # the head's own step averages its gradients over the processes

    @property
    def modules(self) -> dict[str, tuple[str, torch.nn.Module]]:
        return {"segmentation_head": ("segmentation head", self.head)}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"segmentation_optimizer": self.optimizer}

    def active(self, step: int) -> bool:
        """Whether the autoencoder pays the term at ``step`` (the head learns from step 0)."""
        return step >= self.ae.segmentation_start

    def term(self, reconstruction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The term on this step's reconstructions; the head itself (not its DDP wrapper) is called, as
        for the adversarial term, since its gradients here are discarded."""
        return segmentation_term(self.head, reconstruction, mask, self.weights)

    def step(self, image: torch.Tensor, mask: torch.Tensor, decay: float) -> dict[str, Any]:
        """Train the head one step on the original images ([-1, 1]); returns its loss to log."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.ae.segmentation_learning_rate * decay
        self.optimizer.zero_grad(set_to_none=True)  # drop what the autoencoder's backward left
        loss = segmentation_term(self.net, image, mask, self.weights)
        loss.backward()
        self.optimizer.step()
        return {"segmentation_head": loss.item()}
