"""A deep ensemble of small classifiers held as stacked weights, so that one batched matmul runs all members.

Supplementary 8.2: each member has two fully connected layers with 10 hidden units, ReLU and dropout;
20 members form the ensemble whose prediction variance is the epistemic uncertainty (Eq. 8).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Ensemble(nn.Module):
    """``num_members`` independent MLPs ``in -> hidden -> classes``; parameters carry a leading member axis.

    Members share no parameter, so one optimiser over the stacked tensors trains each independently
    (Adam is elementwise); what makes them differ is their initialisation, batches and dropout masks.

    Args:
        num_members: N, the ensemble size.
        hidden_size: units of the hidden layer.
        dropout: probability of zeroing a hidden unit while training.
        in_features: input dimension (2 for the toy points).
        num_classes: output classes.
        generator: random stream for the initialisation.
    """

    def __init__(
        self,
        num_members: int,
        hidden_size: int,
        dropout: float,
        in_features: int = 2,
        num_classes: int = 2,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dropout = dropout

        def uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
            # nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn per member.
            bound = 1 / math.sqrt(fan_in)
            return nn.Parameter((2 * torch.rand(shape, generator=generator) - 1) * bound)

        self.weight1 = uniform((num_members, in_features, hidden_size), in_features)  # (N, in, H)
        self.bias1 = uniform((num_members, 1, hidden_size), in_features)  # (N, 1, H)
        self.weight2 = uniform((num_members, hidden_size, num_classes), hidden_size)  # (N, H, C)
        self.bias2 = uniform((num_members, 1, num_classes), hidden_size)  # (N, 1, C)

    @property
    def num_members(self) -> int:
        return self.weight1.shape[0]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits (N, B, C) of every member.

        Args:
            x: (N, B, in) a batch per member, or (B, in) one batch shown to all members.
            generator: random stream for the dropout masks (used only in training mode).
        """
        if x.dim() == 2:
            x = x.expand(self.num_members, *x.shape)
        h = torch.relu(torch.baddbmm(self.bias1, x, self.weight1))  # (N, B, H)
        if self.training and self.dropout > 0:
            # Dropout drawn from ``generator`` rather than the global stream, so a run is reproducible.
            keep = torch.rand(h.shape, generator=generator) >= self.dropout
            h = h * keep / (1 - self.dropout)
        return torch.baddbmm(self.bias2, h, self.weight2)  # (N, B, C)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(y_n) of every member without dropout, (N, B, C): the posterior samples of Eq. 7 and 8."""
        was_training = self.training
        self.eval()
        try:
            return torch.softmax(self(x), dim=-1)
        finally:
            self.train(was_training)
