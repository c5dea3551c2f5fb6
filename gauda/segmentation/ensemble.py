"""A deep ensemble of UNets (Lakshminarayanan 2017) whose members run and train together in one step.

Each member is an ordinary ``UNet`` with its own initialisation; it also gets its own batch order from
the trainer. A forward pass stacks the members' parameters on a leading axis and maps one member's
computation over it with ``torch.func.vmap``, which turns every convolution into one grouped
convolution over all members instead of K calls. The loss is the sum of the members' own losses, so
each member's gradient is exactly the gradient of its own loss, and an element-wise optimiser (Adam)
over all parameters trains every member as if alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from gauda.data.classes import IGNORE_INDEX
from gauda.segmentation.unet import UNet, masked_cross_entropy
from gauda.training.seeds import mixed_seed


def member_seed(seed: int, member: int) -> int:
    """A distinct initialisation seed per (run seed, member), so that no two members share weights."""
    return mixed_seed(seed, member)


class UNetEnsemble(nn.Module):
    """K UNets of the same shape; posterior sample n is member n's softmax.

    Args:
        num_members: K (the paper: 10).
        in_channels: image channels.
        num_classes: C.
        channels: feature channels per level of each member.
        blocks_per_level: residual blocks per level and path.
        seed: the run's seed; member k is initialised from ``member_seed(seed, k)``.
    """

    def __init__(
        self,
        num_members: int,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int],
        blocks_per_level: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_members < 1:
            raise ValueError(f"UNetEnsemble: num_members {num_members}; expected >= 1")
        self.num_classes = num_classes
        members = []
        for k in range(num_members):
            with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
                torch.manual_seed(member_seed(seed, k))
                members.append(UNet(in_channels, num_classes, channels, blocks_per_level))
        self.members = nn.ModuleList(members)

    @property
    def num_members(self) -> int:
        """Members that each draw their own training batch."""
        return len(self.members)

    def stacked_parameters(self) -> dict[str, torch.Tensor]:
        """Each parameter of all members stacked on a leading member axis (K, ...); gradients flow back
        to the members' own parameters."""
        per_member = [dict(member.named_parameters()) for member in self.members]
        return {name: torch.stack([params[name] for params in per_member]) for name in per_member[0]}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, C, H, W) of every member.

        Args:
            images: (B, 3, H, W), shown to every member, or (K, B, 3, H, W), one batch per member.
        """
        structure = self.members[0]  # any member: functional_call runs its code with the given weights

        def member_logits(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(structure, params, (x,))

        in_dims = (0, 0 if images.dim() == 5 else None)
        params = self.stacked_parameters()
        device = images.device.type
        if torch.is_autocast_enabled(device):  # autocast does not reach inside vmap: cast by hand
            dtype = torch.get_autocast_dtype(device)  # the float32 weights stay the ones trained
            params, images = {k: v.to(dtype) for k, v in params.items()}, images.to(dtype)
            return vmap(member_logits, in_dims=in_dims, randomness="error")(params, images).float()
        return vmap(member_logits, in_dims=in_dims, randomness="error")(params, images)

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Sum over members of each member's mean cross-entropy on its own batch.

        Args:
            images: (K, B, 3, H, W), one batch per member.
            masks: (K, B, H, W) class ids, ``IGNORE_INDEX`` left out.
            generator: unused (an ensemble draws nothing at random).
        """
        member_losses = masked_cross_entropy(self(images), masks, IGNORE_INDEX)  # (K,)
        return member_losses.sum(), {"cross_entropy": float(member_losses.detach().mean())}

    @torch.no_grad()
    def sample_posterior(
        self, images: torch.Tensor, num_samples: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Class probabilities of every member, (K, B, C, H, W): the posterior samples of Eq. 7 and 8.

        Args:
            images: (B, 3, H, W).
            num_samples: None or K; an ensemble has exactly one sample per member.
            generator: unused (the members are deterministic).
        """
        if num_samples is not None and num_samples != self.num_members:
            raise ValueError(
                f"an ensemble of {self.num_members} members gives {self.num_members} posterior samples; "
                f"got num_samples={num_samples}"
            )
        return torch.softmax(self(images), dim=2)
