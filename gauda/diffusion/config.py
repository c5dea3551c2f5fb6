"""Configuration of the joint latent diffusion model (paper Sec. 3.1, Eq. 5 and 6; sizes in Sec. 4.2.2)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from gauda.config import check
from gauda.data.config import DataConfig
from gauda.device import PRECISIONS

SamplerName = Literal["ddpm", "ddim", "dpmpp", "dpmpp_sde"]
SAMPLER_NAMES: tuple[str, ...] = typing.get_args(SamplerName)  # the one list of sampler names
BetaSchedule = Literal["linear", "scaled_linear", "cosine"]
Prediction = Literal["epsilon", "v"]


@dataclass(frozen=True)
class DiffusionConfig:
    """The denoiser UNet on concat(z_image, z_mask), its noise schedule, training and default sampling.

    The UNet has one level per entry of ``channels`` (``num_res_blocks`` residual blocks with adaptive
    group norm each, a downsampling between levels); self-attention runs at every level whose feature
    resolution (latent side / patch_size / 2^level) is in ``attention_resolutions``, with ``num_heads``
    heads, or with heads of ``head_channels`` channels when that is set. With ``patch_size`` p > 1 the
    UNet works on p x p cells of the latent grid folded into channels (as DiT's patches): a 32x32 grid
    then costs the denoiser what a 16x16 one does, while the autoencoders keep their finer grid.
    """

    # denoiser
    channels: tuple[int, ...] = (224, 448, 896, 1344)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8, 4)
    num_heads: int = 64
    head_channels: int | None = None  # when set, heads = channels // head_channels (num_heads ignored)
    dropout: float = 0.0
    patch_size: int = 1  # latent cells per side folded into channels before the first level
    # noise schedule, shared by training and every sampler. LDM's "linear" schedule (Rombach et al.):
    # betas linear in sqrt between beta_start and beta_end, which diffusers calls "scaled_linear".
    num_train_timesteps: int = 1000
    beta_schedule: BetaSchedule = "scaled_linear"
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    # condition (Eq. 5): a random non-empty subset of the classes present, each kept with keep_probability;
    # replaced by the learned null condition with probability p_uncond
    keep_probability: float = 0.5
    p_uncond: float = 0.1
    # which frames the batches draw: uniform (every frame once per epoch, the paper's) or rare_classes
    # (probability 1/sqrt(frame frequency of the rarest class in the frame), so that a class in a few
    # frames is in the condition several times as often; unconditional samples then hold rare classes
    # more often than the data does)
    frame_sampling: Literal["uniform", "rare_classes"] = "uniform"
    # the denoising loss's weight of each latent cell: the mean over its pixels of their class's
    # frequency^-power (gauda.diffusion.weighting); 0 is Eq. 5's plain mean, 0.5 inverse square root
    class_weight_power: float = 0.0
    # the noisiest share of the timesteps on which those weights apply (1 = every timestep; 0.5: t >= T/2,
    # where the layout and the classes of a pair are decided; the finer steps, which draw the texture,
    # keep Eq. 5's plain mean, each cell weighing 1). The class weights have mean 1 over the classes, so
    # most cells weigh far less than 1 (0.03 on average at power 1 on `tiny`): in the batch's weighted
    # mean the weighted steps then count for little but their rare-class cells (BENCHMARKS.md)
    class_weight_timesteps: float = 1.0
    # what the network predicts: the noise eps (Eq. 5, the paper's) or v = sqrt(abar) eps - sqrt(1 - abar) z0
    # (Salimans & Ho 2022). Samplers always receive eps (converted from v); with eps, a small or briefly
    # trained network's error at the noisiest steps is amplified 1 / sqrt(abar_T) ~ 80 times in its
    # estimate of z0, and the samples drift far from the latents' unit variance.
    prediction: Prediction = "epsilon"
    # optimisation: AdamW, learning rate warmed up linearly, then decayed as (1 - progress)^lr_power
    learning_rate: float = 1e-4
    lr_power: float = 1.0
    warmup_steps: int = 1000
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping
    ema_decay: float = 0.9999
    batch_size: int = 32
    steps: int = 200_000
    checkpoint_every: int = 5000
    encode_batch_size: int = 64  # batch of the one-off encoding of the dataset into latents
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: str = "fp32"  # fp32, or bf16: mixed precision (autocast) for the forward passes
    # sampling defaults. Guidance (Eq. 6) as eps_null + w * (eps_c - eps_null): w = 1 is unguided.
    sampler: SamplerName = "ddpm"
    sampling_steps: int = 1000
    guidance: float = 2.0

    def __post_init__(self) -> None:
        check(
            len(self.channels) >= 1 and all(c >= 1 for c in self.channels),
            "channels",
            "positive integers",
            list(self.channels),
        )
        check(self.num_res_blocks >= 1, "num_res_blocks", "an integer >= 1", self.num_res_blocks)
        check(
            all(r >= 1 for r in self.attention_resolutions),
            "attention_resolutions",
            "positive integers (feature resolutions, e.g. [16, 8, 4])",
            list(self.attention_resolutions),
        )
        check(self.num_heads >= 1, "num_heads", "an integer >= 1", self.num_heads)
        check(
            self.head_channels is None or self.head_channels >= 1,
            "head_channels",
            "an integer >= 1 or null",
            self.head_channels,
        )
        check(self.patch_size >= 1, "patch_size", "an integer >= 1", self.patch_size)
        check(0 <= self.dropout < 1, "dropout", "a number in [0, 1)", self.dropout)
        check(
            self.num_train_timesteps >= 2, "num_train_timesteps", "an integer >= 2", self.num_train_timesteps
        )
        check(
            0 < self.beta_start < self.beta_end < 1,
            "beta_start, beta_end",
            "0 < beta_start < beta_end < 1",
            (self.beta_start, self.beta_end),
        )
        check(0 < self.keep_probability <= 1, "keep_probability", "a number in (0, 1]", self.keep_probability)
        check(self.class_weight_power >= 0, "class_weight_power", "a number >= 0", self.class_weight_power)
        check(
            0 < self.class_weight_timesteps <= 1,
            "class_weight_timesteps",
            "a number in (0, 1]",
            self.class_weight_timesteps,
        )
        check(0 <= self.p_uncond < 1, "p_uncond", "a number in [0, 1)", self.p_uncond)
        check(self.learning_rate > 0, "learning_rate", "a number > 0", self.learning_rate)
        check(self.lr_power >= 0, "lr_power", "a number >= 0", self.lr_power)
        check(self.warmup_steps >= 0, "warmup_steps", "an integer >= 0", self.warmup_steps)
        check(self.weight_decay >= 0, "weight_decay", "a number >= 0", self.weight_decay)
        check(all(0 <= b < 1 for b in self.betas), "betas", "two numbers in [0, 1)", list(self.betas))
        check(self.grad_clip >= 0, "grad_clip", "a number >= 0", self.grad_clip)
        check(0 <= self.ema_decay < 1, "ema_decay", "a number in [0, 1)", self.ema_decay)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        check(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        check(self.checkpoint_every >= 1, "checkpoint_every", "an integer >= 1", self.checkpoint_every)
        check(self.precision in PRECISIONS, "precision", "fp32 or bf16", self.precision)
        check(self.encode_batch_size >= 1, "encode_batch_size", "an integer >= 1", self.encode_batch_size)
        check(self.sampling_steps >= 1, "sampling_steps", "an integer >= 1", self.sampling_steps)
        check(self.guidance >= 0, "guidance", "a number >= 0 (1 = unguided)", self.guidance)


# The paper: UNet [224, 448, 896, 1344], two residual blocks per level, attention at 16, 8, 4 with 64
# heads, DDPM sampling with 1000 steps.
_PAPER = DiffusionConfig()
# A 2-core CPU in minutes: 64 px frames, 4 + 4 latent channels at 32x32, a denoiser of 2.8 M parameters in
# four levels from 16 channels, 1.5 times the step of [32, 64, 128] at 16x16 (which took 0.46 s at batch 32
# on one thread of a busy machine); [32, 64, 128] at 32x32 costs 3.5 times, 2x2 patches into it 1.1 times
# but lose the instruments (BENCHMARKS.md). 2000 steps, SDE-DPM-Solver++ with 20 steps.
_TINY = replace(
    _PAPER,
    channels=(16, 32, 64, 128),
    num_res_blocks=1,
    attention_resolutions=(8, 4),
    num_heads=4,
    learning_rate=1e-3,
    warmup_steps=100,
    ema_decay=0.999,
    batch_size=32,
    steps=2000,
    checkpoint_every=500,
    # why each, in BENCHMARKS.md, "Joint latent diffusion":
    sampler="dpmpp_sde",  # at 20 steps within 2 % of DDPM-1000's mask-image agreement
    sampling_steps=20,
    prediction="v",  # eps-prediction sampled latents of std ~6 instead of 1 at these sizes
    guidance=4.0,  # the rarest class in 84 % of the pairs asked for it (53 % at w = 2)
    frame_sampling="rare_classes",  # its hit rate 38 % -> 100 % where guidance alone did not help
    # class weights on the noisiest half of the timesteps: Synthetic-Only 0.54 -> 0.60 held out (the
    # real-trained 0.596), Blood 0.00 -> 0.23-0.36, Real-Only within 0.02, two seeds; GAUDA 0.675
    # against 0.679 (five seeds). On every step they cost realism (p = 0.5) or break the model (p = 1).
    class_weight_power=1.0,
    class_weight_timesteps=0.5,
)

DIFFUSION_PRESETS: dict[str, DiffusionConfig] = {"tiny": _TINY, "paper": _PAPER}


class DiffusionStageConfig(Protocol):
    """The slices a diffusion run reads (the whole ``GaudaConfig`` is one)."""

    @property
    def data(self) -> DataConfig: ...

    @property
    def diffusion(self) -> DiffusionConfig: ...
