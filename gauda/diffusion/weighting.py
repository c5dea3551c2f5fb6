"""Class weights in the denoising loss: an option beyond Eq. 5 (``diffusion.class_weight_power``).

Eq. 5 averages the squared error over every latent cell alike. A thin instrument covers a few cells of
the grid, so the denoiser can get it wrong at little cost, and the generated masks then show an
instrument whose image does not (or one instrument labelled half Grasper, half L-hook). Here each cell's
error counts as much as the classes of the pixels under it: the weight of a cell is the mean over its
pixels of their class's weight frequency^-power (``autoencoders.losses.inverse_frequency_weights``, as
the image autoencoder's class-weighted L1), and the loss is the weighted mean. Power 0 is Eq. 5.
``noisiest_steps_only`` keeps the weights to the noisier timesteps (``diffusion.class_weight_timesteps``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gauda.autoencoders.losses import inverse_frequency_weights
from gauda.autoencoders.trainer import class_pixel_counts
from gauda.data.dataset import PairedDataset


def class_fractions(mask: torch.Tensor, num_classes: int, size: int) -> torch.Tensor:
    """Masks (B, H, W) of class ids -> (B, C, s, s): each latent cell's share of pixels of each class.

    Ignored pixels (ids >= num_classes, e.g. 255) belong to no class, so a cell's shares sum to its
    share of labelled pixels.
    """
    valid = mask < num_classes
    one_hot = F.one_hot(torch.where(valid, mask, 0).long(), num_classes).permute(0, 3, 1, 2)
    return F.adaptive_avg_pool2d((one_hot * valid[:, None]).float(), size)


def cell_weights(fractions: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """(B, C, s, s) class shares and (C,) class weights -> (B, s, s) cell weights: the mean class weight
    of a cell's pixels, its ignored pixels weighing 1."""
    return torch.einsum("bchw,c->bhw", fractions, class_weights) + (1 - fractions.sum(1)).clamp(min=0)


def noisiest_steps_only(weights: torch.Tensor, t: torch.Tensor, first: int) -> torch.Tensor:
    """(b, s, s) cell weights and (b,) timesteps -> the weights where t >= first, 1 elsewhere.

    The noisy steps decide a pair's layout and classes, the last ones its texture: weighting only the
    former asks the denoiser to get thin rare classes right without trading the organs' texture for them.
    The class weights are not rescaled: most cells weigh far less than 1 (mean 1 over the classes), so in
    a batch's weighted mean the weighted steps count mostly through their rare-class cells. Rescaled to
    mean 1 over the cells, so that both kinds of step count alike, the same weights broke the `tiny`
    generator (BENCHMARKS.md, "The class weights on the noisiest timesteps only").
    """
    return torch.where((t >= first)[:, None, None], weights, torch.ones_like(weights))


def weighted_mse(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    normaliser: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 5's mean squared error with each latent cell weighted: sum_cells w * mean_channels(err^2) / sum w.

    prediction, target (B, D, s, s); weights (B, s, s). With equal weights this is ``F.mse_loss``.
    ``normaliser`` replaces this batch's weight sum (a distributed run passes the mean over processes of
    their sums, so that the averaged gradients are the whole batch's weighted mean).
    """
    error = (prediction - target).pow(2).mean(1)  # (B, s, s)
    return (weights * error).sum() / (weights.sum() if normaliser is None else normaliser)


def dataset_cell_weights(dataset: PairedDataset, power: float, size: int, chunk: int = 64) -> torch.Tensor:
    """(N, s, s) cell weights of every frame of ``dataset`` on an s x s latent grid, the class weights
    frequency^-power counted over the dataset's masks (the image autoencoder's count), a chunk at a time."""
    class_weights = inverse_frequency_weights(class_pixel_counts(dataset), power)
    indices = list(dataset.indices)
    rows = []
    for start in range(0, len(indices), chunk):
        masks = torch.stack(
            [torch.from_numpy(dataset.frames.read(i)[1]).long() for i in indices[start : start + chunk]]
        )
        rows.append(cell_weights(class_fractions(masks, dataset.num_classes, size), class_weights))
    return torch.cat(rows)
