"""Configuration of the image and mask VQ-GANs (paper Sec. 3.1, Eq. 3 and 4; sizes in Sec. 4.2.1)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Literal, Protocol

from gauda.config import check
from gauda.data.config import DataConfig
from gauda.device import PRECISIONS


@dataclass(frozen=True)
class AutoencoderConfig:
    """One VQ-GAN: architecture, losses and training schedule.

    The encoder has one level per entry of ``channels`` (``num_res_blocks`` residual blocks each, a
    downsampling between levels); the decoder mirrors it with one more residual block per level. The
    latents are (``latent_channels``, H / 2^(levels-1), W / 2^(levels-1)).
    """

    # architecture
    channels: tuple[int, ...] = (128, 256, 1024)
    num_res_blocks: int = 2
    latent_channels: int = 4
    codebook_size: int = 8192
    commitment_weight: float = 0.25  # beta of the commitment term of vector quantisation
    discriminator_channels: tuple[int, ...] = (64, 128, 256)  # PatchGAN levels, each doubling
    # losses
    adversarial_loss: Literal["hinge", "least_squares"] = "hinge"
    adversarial_weight: float = 0.1  # times VQ-GAN's adaptive weight
    adversarial_start: int = 2000  # generator step at which the discriminator switches on
    perceptual_weight: float = 0.0  # image only; needs perceptual_weights (a VGG16 state dict file)
    perceptual_weights: str | None = None
    # mask only: cross-entropy class weights frequency^-1/2 or frequency^-1 (normalised to mean 1)
    class_weighting: Literal["none", "inverse_sqrt_frequency", "inverse_frequency"] = "inverse_sqrt_frequency"
    # image only: weight each pixel's L1 by its mask class's pixel frequency^-power (normalised to mean 1
    # over the classes); 0 is the paper's plain L1, 0.5 inverse square root. Thin, rare instruments cover
    # too few pixels for a plain L1 to keep them.
    class_weight_power: float = 0.0
    # image only: weight of the cross-entropy that a small segmentation head, learning on the original
    # images meanwhile, has on the reconstructions (gauda.autoencoders.semantic); 0 = none (the paper).
    # It makes the autoencoder keep what a segmenter needs, however few pixels it covers.
    segmentation_weight: float = 0.0
    segmentation_start: int = 0  # step from which the autoencoder pays the term (the head learns from 0)
    segmentation_channels: tuple[int, ...] = (16, 32, 64)  # the head's UNet levels
    segmentation_learning_rate: float = 1e-3
    # mask only: weight of a soft Dice term over the batch beside the cross-entropy (0 = none); Dice
    # scores every class by its overlap whatever its size, so thin classes weigh as much as large ones
    dice_weight: float = 0.0
    # uniform: every training frame as often; rare_classes: frames drawn with probability 1/sqrt(frame
    # frequency of the rarest class they hold) (gauda.data.batches), so that a class in a few videos is
    # seen several times as often
    frame_sampling: Literal["uniform", "rare_classes"] = "uniform"
    # codebook health
    dead_code_every: int = (
        200  # re-initialise codes unused over this many steps from encoder outputs; 0 = never
    )
    # optimisation (AdamW; learning rate multiplied by lr_decay after every epoch)
    learning_rate: float = 2e-4
    discriminator_learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 1e-4
    lr_decay: float = 0.99
    batch_size: int = 16
    steps: int = 100_000
    checkpoint_every: int = 1000
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: str = "fp32"  # fp32, or bf16: mixed precision (autocast) for the forward passes

    def __post_init__(self) -> None:
        check(
            len(self.channels) >= 1 and all(c >= 1 for c in self.channels),
            "channels",
            "positive integers",
            list(self.channels),
        )
        check(self.num_res_blocks >= 1, "num_res_blocks", "an integer >= 1", self.num_res_blocks)
        check(self.latent_channels >= 1, "latent_channels", "an integer >= 1", self.latent_channels)
        check(self.codebook_size >= 2, "codebook_size", "an integer >= 2", self.codebook_size)
        check(self.commitment_weight >= 0, "commitment_weight", "a number >= 0", self.commitment_weight)
        disc = self.discriminator_channels
        check(
            len(disc) >= 2 and all(b == 2 * a for a, b in pairwise(disc)),
            "discriminator_channels",
            "at least two channel counts, each double the one before (e.g. [64, 128, 256])",
            list(disc),
        )
        for name in (
            "adversarial_weight",
            "perceptual_weight",
            "weight_decay",
            "dice_weight",
            "class_weight_power",
            "segmentation_weight",
        ):
            check(getattr(self, name) >= 0, name, "a number >= 0", getattr(self, name))
        check(self.segmentation_start >= 0, "segmentation_start", "an integer >= 0", self.segmentation_start)
        check(
            len(self.segmentation_channels) >= 2 and all(c >= 1 for c in self.segmentation_channels),
            "segmentation_channels",
            "at least two positive integers (one UNet level each)",
            list(self.segmentation_channels),
        )
        check(
            self.segmentation_learning_rate > 0,
            "segmentation_learning_rate",
            "a number > 0",
            self.segmentation_learning_rate,
        )
        check(self.adversarial_start >= 0, "adversarial_start", "an integer >= 0", self.adversarial_start)
        check(
            self.perceptual_weight == 0 or self.perceptual_weights is not None,
            "perceptual_weights",
            "a path to VGG16 weights when perceptual_weight > 0 (nothing is downloaded)",
            None,
        )
        check(self.dead_code_every >= 0, "dead_code_every", "an integer >= 0", self.dead_code_every)
        check(self.learning_rate > 0, "learning_rate", "a number > 0", self.learning_rate)
        check(
            self.discriminator_learning_rate > 0,
            "discriminator_learning_rate",
            "a number > 0",
            self.discriminator_learning_rate,
        )
        check(all(0 <= b < 1 for b in self.betas), "betas", "two numbers in [0, 1)", list(self.betas))
        check(0 < self.lr_decay <= 1, "lr_decay", "a number in (0, 1]", self.lr_decay)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        check(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        check(self.checkpoint_every >= 1, "checkpoint_every", "an integer >= 1", self.checkpoint_every)
        check(self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers)
        check(self.precision in PRECISIONS, "precision", "fp32 or bf16", self.precision)

    @property
    def downsampling(self) -> int:
        """Side-length ratio of input to latent."""
        return 2 ** (len(self.channels) - 1)


# The paper: [128, 256, 1024] channels, 8192 codes, PatchGAN [64, 128, 256], batch 16 (500 epochs).
_PAPER = AutoencoderConfig()
# A 2-core CPU in about five minutes at 64 px: two small levels (a 32x32 latent grid: the thin instruments
# are lost in 4x4-pixel cells, BENCHMARKS.md), a small codebook, the adversarial term late and light.
_TINY = replace(
    _PAPER,
    channels=(16, 32),
    num_res_blocks=1,
    codebook_size=256,
    discriminator_channels=(16, 32, 64),
    adversarial_start=600,
    adversarial_weight=0.05,
    dead_code_every=100,
    learning_rate=2e-3,
    discriminator_learning_rate=4e-4,
    lr_decay=0.95,
    batch_size=8,
    steps=800,
    checkpoint_every=200,
)

IMAGE_AUTOENCODER_PRESETS: dict[str, AutoencoderConfig] = {
    # L1 weighted by class frequency^-1/2, 2400 steps and the segmentation term, so that thin instruments
    # survive (BENCHMARKS.md: a segmenter keeps 0.92-0.95 of its grasper IoU on the reconstructions
    # against 0.82-0.90 without the term, three seeds on held-out videos; each step costs 1.4x)
    "tiny": replace(
        _TINY,
        class_weight_power=0.5,
        segmentation_weight=0.5,
        steps=2400,
        adversarial_start=1800,
        checkpoint_every=400,
    ),
    "paper": _PAPER,
}
MASK_AUTOENCODER_PRESETS: dict[str, AutoencoderConfig] = {
    # each choice raised the rare classes' reconstruction IoU (BENCHMARKS.md, "How the rest of the mask
    # preset was chosen" and the 640-frame table)
    "tiny": replace(
        _TINY,
        seed=1,
        frame_sampling="rare_classes",  # Clip applier 0.50 -> 0.74-0.79 on 640 new frames
        codebook_size=1024,  # with the learning rate: mean IoU 0.76 -> 0.80, Clip applier 0.08 -> 0.41
        learning_rate=3e-3,
        dice_weight=1.0,  # +0.06 and +0.09 mean IoU in the pairs of runs that differ in nothing else
        adversarial_weight=0.0,  # 0.901 without the term, 0.855 with it
        steps=1150,  # about 2 minutes on 2 threads; more steps made the rare classes worse
        checkpoint_every=250,
    ),
    "paper": replace(_PAPER, seed=1),
}


class AutoencoderStageConfig(Protocol):
    """The slices an autoencoder run reads (the whole ``GaudaConfig`` is one): the trainer takes any
    configuration that has them, so that this stage imports nothing above it."""

    @property
    def data(self) -> DataConfig: ...

    @property
    def image_autoencoder(self) -> AutoencoderConfig: ...

    @property
    def mask_autoencoder(self) -> AutoencoderConfig: ...
