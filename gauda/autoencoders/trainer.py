"""Training loop of one VQ-GAN: Eq. 3 for images, Eq. 4 for masks, then the latent scale and evaluation.

The run folder receives ``config.yaml``, ``split.json``, ``metrics.csv`` (losses over training),
``last.safetensors`` (everything needed to resume), ``model.safetensors`` (the trained autoencoder with
its latent scale, what later stages load), ``metrics.json`` and ``reconstructions.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gauda.autoencoders.config import AutoencoderConfig, AutoencoderStageConfig
from gauda.autoencoders.evaluate import Modality, evaluate_autoencoder, model_input, reconstruction_rows
from gauda.autoencoders.losses import (
    VGG16Features,
    adaptive_adversarial_weight,
    class_weighted_l1,
    inverse_frequency_weights,
    mask_cross_entropy,
    mask_dice_loss,
    perceptual_distance,
    pixel_weights,
)
from gauda.autoencoders.runs import MODEL_FILE, autoencoder_slice, save_autoencoder
from gauda.autoencoders.semantic import SegmentationHead
from gauda.autoencoders.vqgan import VQGAN, output_to_image
from gauda.checkpoint import (
    check_finite_loss,
    seed_everything,
)
from gauda.config import ConfigError, save, to_dict
from gauda.data.batches import (
    EpochBatchSampler,
    StepBatchSampler,
    WeightedBatchSampler,
    rare_class_frame_weights,
)
from gauda.data.dataset import PairedDataset, load_splits
from gauda.data.figures import save_image_rows
from gauda.data.splits import save_split
from gauda.device import autocast, resolve_device
from gauda.distributed import Distributed, setup_distributed
from gauda.io import atomic_write_json
from gauda.runlock import folder_lock
from gauda.runlog import MetricsLog
from gauda.training.seeds import step_generator
from gauda.training.state import TrainState, check_run_folder, checkpoint_due

logger = logging.getLogger(__name__)


def build_discriminator(config: AutoencoderConfig, in_channels: int) -> PatchDiscriminator:
    """PatchGAN (Isola et al.) whose levels have ``config.discriminator_channels`` channels."""
    channels = config.discriminator_channels
    return PatchDiscriminator(
        spatial_dims=2, channels=channels[0], in_channels=in_channels, num_layers_d=len(channels) - 1
    )


class _Reconstruct(torch.nn.Module):
    """One training forward pass of a VQ-GAN (what DistributedDataParallel wraps): the decoder output,
    the encoder output (for dead-code restarts) and the vector-quantisation terms."""

    def __init__(self, model: VQGAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        z = self.model.encoder(x)
        z_q, _, vq = self.model.quantizer(z)
        return self.model.decoder(z_q), z, vq


def frame_class_pixels(dataset: PairedDataset) -> torch.Tensor:
    """(N, C) pixels of each class in each of the dataset's masks (ignore excluded)."""
    rows = []
    for index in dataset.indices:
        mask = torch.from_numpy(dataset.frames.read(index)[1]).long().flatten()
        rows.append(torch.bincount(mask[mask < dataset.num_classes], minlength=dataset.num_classes))
    return torch.stack(rows)


def class_pixel_counts(dataset: PairedDataset) -> torch.Tensor:
    """(C,) pixels of each class over the dataset's masks (ignore excluded)."""
    return frame_class_pixels(dataset).sum(0)


@torch.no_grad()
def latent_scale(model: VQGAN, dataset: PairedDataset, modality: Modality, device: torch.device) -> float:
    """Standard deviation of the encoder outputs over (up to 512 samples of) the training set."""
    values = []
    loader = DataLoader(torch.utils.data.Subset(dataset, range(min(512, len(dataset)))), batch_size=32)
    for batch in loader:
        values.append(
            model.encoder(model_input(batch, modality, dataset.num_classes, device)).flatten().cpu()
        )
    return float(torch.cat(values).std())


def train_autoencoder(
    config: AutoencoderStageConfig,
    modality: Modality,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the ``modality`` autoencoder of ``config`` into the run folder ``out``; returns its metrics.

    Args:
        config: a configuration with the data and autoencoder slices (a ``GaudaConfig``); all of it is
            saved with the run.
        modality: ``image`` (Eq. 3) or ``mask`` (Eq. 4).
        out: run folder; must not hold a run unless ``resume``.
        resume: continue the run in ``out`` from its last checkpoint.
        progress: show a progress bar.

    Under ``torchrun`` each process trains on its share of every batch (``gauda.distributed``); the
    adaptive adversarial weight and dead-code restarts use the whole global batch. Two things stay per
    process: the discriminator's batch-norm statistics, and the class-weighted cross-entropies' normalisation
    (the mask's and the segmentation term's: by each share's weight sum rather than the global batch's).
    """
    ae = autoencoder_slice(config, modality)
    ddp, device = setup_distributed(resolve_device(ae.device))
    with folder_lock(out, enabled=ddp.is_main):
        return _train(config, modality, Path(out), ddp, device, resume, progress and ddp.is_main)


def _train(
    config: AutoencoderStageConfig,
    modality: Modality,
    out: Path,
    ddp: Distributed,
    device: torch.device,
    resume: bool,
    progress: bool,
) -> dict[str, Any]:
    ae = autoencoder_slice(config, modality)
    last_path = check_run_folder(out, f"{modality} autoencoder", resume)
    ddp.check_divides(ae.batch_size, f"{modality}_autoencoder.batch_size")
    if ddp.is_main:
        save(config, out / "config.yaml")
    seed_everything(ae.seed)
    splits = load_splits(config.data, progress=progress)
    if ddp.is_main:
        save_split(splits.summary, out)
    num_classes = len(splits.class_names)
    channels = 3 if modality == "image" else num_classes
    model = VQGAN(channels, channels, ae).to(device)
    discriminator = build_discriminator(ae, channels).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), ae.learning_rate, betas=ae.betas, weight_decay=ae.weight_decay
    )
    disc_optimizer = torch.optim.AdamW(
        discriminator.parameters(),
        ae.discriminator_learning_rate,
        betas=ae.betas,
        weight_decay=ae.weight_decay,
    )
    reconstruction_loss = ReconstructionLoss(ae, modality, splits.train, ddp, device)
    head = None
    if ae.segmentation_weight > 0:
        if modality != "image":
            raise ConfigError(
                "mask_autoencoder.segmentation_weight: the segmentation term is for the image "
                f"autoencoder; expected 0 for the mask one, got {ae.segmentation_weight}"
            )
        head = SegmentationHead(ae, num_classes, reconstruction_loss.weights, ddp, device)
    state = TrainState(
        f"{modality} autoencoder",
        {
            "model": ("model", model),
            "discriminator": ("discriminator", discriminator),
            **(head.modules if head else {}),
        },
        {
            "optimizer": optimizer,
            "discriminator_optimizer": disc_optimizer,
            **(head.optimizers if head else {}),
        },
    )
    if resume:
        state.restore(last_path, device)
        logger.info("resuming %s autoencoder at step %d of %d", modality, state.step, ae.steps)
    start = state.step
    sampler = frame_sampler(ae, splits.train, start)
    # the loader gets its own generator so that it never draws from the global RNG (resume equality)
    loader = DataLoader(
        splits.train,
        batch_sampler=(ddp.shard(indices) for indices in sampler),  # this process's share of each batch
        num_workers=ae.num_workers,
        generator=torch.Generator(),
    )
    train_step = AutoencoderStep(
        ae, modality, num_classes, state, reconstruction_loss, ddp, device, last_path, head
    )
    # rows are logged at the 0-based index of a step: a checkpoint of `start` steps holds rows < start
    log = MetricsLog(out, resume_step=start - 1 if resume else None, enabled=ddp.is_main)

    model.train()
    bar = tqdm(total=ae.steps, initial=start, desc=f"{modality} autoencoder", disable=not progress)
    state.start_clock()
    for step, batch in zip(range(start, ae.steps), loader, strict=False):
        decay = ae.lr_decay ** (step // sampler.steps_per_epoch)  # exponential decay after every epoch
        values, loss = train_step(step, batch, decay, log_share=step == start)
        if step % 10 == 0 or step + 1 == ae.steps:
            log.log(step, ddp.mean_values(values))  # the mean over the processes of every term
            bar.set_postfix(loss=f"{loss:.4f}", rec=f"{values['reconstruction']:.4f}")
        bar.update(1)
        if checkpoint_due(step, ae.checkpoint_every, ae.steps):
            state.lap(step + 1)
            if ddp.is_main:
                state.save(last_path, {"config": to_dict(config)})
    bar.close()
    log.close()
    metrics = (
        finish_autoencoder(model, splits, modality, ae, out, device, state.seconds) if ddp.is_main else None
    )
    return ddp.broadcast(metrics)


def frame_sampler(ae: AutoencoderConfig, train: PairedDataset, start: int) -> StepBatchSampler:
    """The frames of each step: rare-class frames drawn more often (``frame_sampling``), or epochs."""
    if ae.frame_sampling == "rare_classes":
        weights = rare_class_frame_weights(frame_class_pixels(train))
        return WeightedBatchSampler(weights, ae.batch_size, ae.seed, start_step=start)
    return EpochBatchSampler(len(train), ae.batch_size, ae.seed, start_step=start)


class AutoencoderStep:
    """One optimisation step of Eq. 3 or 4: reconstruction + vector quantisation + (from
    ``adversarial_start``) the adaptively weighted adversarial term, then the discriminator's step and,
    every ``dead_code_every`` steps, the restart of dead codes. With a segmentation ``head``
    (``segmentation_weight`` > 0, images only) the loss adds its cross-entropy on the reconstructions and
    the head then trains one step on the originals.

    The networks and optimisers are the train state's (``model``, ``discriminator``, ``optimizer``,
    ``discriminator_optimizer``)."""

    def __init__(
        self,
        ae: AutoencoderConfig,
        modality: Modality,
        num_classes: int,
        state: TrainState,
        reconstruction_loss: ReconstructionLoss,
        ddp: Distributed,
        device: torch.device,
        last_path: Path,
        head: SegmentationHead | None = None,
    ) -> None:
        self.ae, self.modality, self.num_classes, self.head = ae, modality, num_classes, head
        self.model: VQGAN = state.modules["model"][1]  # type: ignore[assignment]
        self.discriminator = state.modules["discriminator"][1]
        self.optimizer = state.optimizers["optimizer"]
        self.disc_optimizer = state.optimizers["discriminator_optimizer"]
        self.reconstruction_loss, self.ddp, self.device, self.last_path = (
            reconstruction_loss,
            ddp,
            device,
            last_path,
        )
        self.adversarial = PatchAdversarialLoss(criterion=ae.adversarial_loss)
        # the usage counts of the codebook stay per process (summed at each dead-code check)
        self.net = ddp.wrap(_Reconstruct(self.model), broadcast_buffers=False)
        # batch-norm statistics stay per process (rank 0's are saved); broadcasting them between the two
        # forward passes of a step is what some torch versions refuse
        self.disc_net = ddp.wrap(self.discriminator, broadcast_buffers=False)

    def __call__(
        self, step: int, batch: dict[str, Any], decay: float, log_share: bool = False
    ) -> tuple[dict[str, float], float]:
        """Train one step at learning-rate factor ``decay``; returns the values to log (each process's)
        and this process's loss."""
        ae, ddp, device, adversarial = self.ae, self.ddp, self.device, self.adversarial
        for group in self.optimizer.param_groups:
            group["lr"] = ae.learning_rate * decay
        for group in self.disc_optimizer.param_groups:
            group["lr"] = ae.discriminator_learning_rate * decay
        x = model_input(batch, self.modality, self.num_classes, device)  # (B, 3 or C, H, W)
        if log_share:
            ddp.log_share(len(x), ae.batch_size, "frames")
        with autocast(device, ae.precision):
            output, z, vq = self.net(x)  # (B, 3 or C, H, W), (B, D, h, w), terms
        output, vq = output.float(), {k: v.float() for k, v in vq.items()}
        reconstruction, fake = self.reconstruction_loss(output, x, batch)  # Eq. 3 or Eq. 4 ...
        loss = reconstruction + vq["codebook"] + vq["commitment"]  # ... + vector-quantisation terms
        values = {"reconstruction": reconstruction.item(), **{k: v.item() for k, v in vq.items()}}
        mask = batch["mask"].to(device) if self.head is not None else None
        if self.head is not None and self.head.active(step):  # ... + the segmentation term
            segmentation = self.head.term(output, mask)
            loss = loss + ae.segmentation_weight * segmentation
            values["segmentation"] = segmentation.item()
        adversarial_on = step >= ae.adversarial_start and ae.adversarial_weight > 0
        if adversarial_on:  # ... + adversarial term, weighted adaptively as in VQ-GAN
            # the discriminator itself (not its DDP wrapper): its gradients here are discarded
            generator_loss = adversarial(
                self.discriminator(fake)[-1], target_is_real=True, for_discriminator=False
            )
            lam = ae.adversarial_weight * adaptive_adversarial_weight(
                reconstruction, generator_loss, self.model.last_layer(), ddp.mean if ddp.active else None
            )
            loss = loss + lam * generator_loss
            values.update(generator=generator_loss.item(), adversarial_weight=lam.item())
        loss_value = ddp.mean(loss.detach()).item()  # the global batch's, the same on every rank
        check_finite_loss(loss_value, f"{self.modality} autoencoder, step {step}", self.last_path,
                          f"{self.modality}_autoencoder.learning_rate")  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.head is not None:  # the head learns on the originals only
            values.update(self.head.step(x, mask, decay))
        if adversarial_on:
            d_real = adversarial(self.disc_net(x)[-1], target_is_real=True, for_discriminator=True)
            d_fake = adversarial(
                self.disc_net(fake.detach())[-1], target_is_real=False, for_discriminator=True
            )
            disc_loss = 0.5 * (d_real + d_fake)
            self.disc_optimizer.zero_grad(set_to_none=True)
            disc_loss.backward()
            self.disc_optimizer.step()
            values["discriminator"] = disc_loss.item()
        if ae.dead_code_every and (step + 1) % ae.dead_code_every == 0:
            generator = step_generator(ae.seed, step)  # restarts are the same in a resumed run
            ddp.sum_(self.model.quantizer.usage)  # the whole global batch's usage and encoder outputs
            restarted = self.model.quantizer.restart_dead_codes(ddp.gather(z.detach()), generator)
            values["dead_codes_restarted"] = restarted
        values.update(loss=loss_value, lr=ae.learning_rate * decay)
        return values, loss.item()


class ReconstructionLoss:
    """The reconstruction term of Eq. 3 (image: L1, class-weighted when ``class_weight_power`` > 0, plus
    an optional perceptual term) or Eq. 4 (mask: cross-entropy, class-weighted by ``class_weighting``,
    plus an optional Dice term), with the weights of the training split's class pixel counts.

    Called on a step's output, input and batch, it returns the term and what the discriminator sees as
    fake (the image, or the mask's class probabilities)."""

    def __init__(
        self,
        ae: AutoencoderConfig,
        modality: Modality,
        train: PairedDataset,
        ddp: Distributed,
        device: torch.device,
    ) -> None:
        self.ae, self.modality, self.ddp, self.device = ae, modality, ddp, device
        self.weights = None
        if modality == "mask" and ae.class_weighting != "none":
            power = 0.5 if ae.class_weighting == "inverse_sqrt_frequency" else 1.0
            self.weights = inverse_frequency_weights(class_pixel_counts(train), power).to(device)
        if modality == "image" and ae.class_weight_power > 0:
            self.weights = inverse_frequency_weights(class_pixel_counts(train), ae.class_weight_power).to(
                device
            )
        self.perceptual = None
        if modality == "image" and ae.perceptual_weight > 0:
            self.perceptual = VGG16Features.from_file(ae.perceptual_weights).to(device)  # type: ignore[arg-type]

    def __call__(
        self, output: torch.Tensor, x: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ae, weights = self.ae, self.weights
        if self.modality == "mask":  # Eq. 4: cross-entropy against the class ids
            reconstruction = mask_cross_entropy(output, batch["mask"].to(self.device), weights)
            if ae.dice_weight > 0:
                reconstruction = reconstruction + ae.dice_weight * mask_dice_loss(output, x)
            return reconstruction, output.softmax(1)
        if weights is None:  # Eq. 3: L1 (+ perceptual)
            reconstruction = F.l1_loss(output, x)
        else:  # each pixel weighted by its class, so that thin instruments are not blurred away
            mask = batch["mask"].to(self.device)
            normaliser = self.ddp.mean(pixel_weights(mask, weights).sum())  # the global batch's weights
            reconstruction = class_weighted_l1(output, x, mask, weights, normaliser)
        if self.perceptual is not None:
            reconstruction = reconstruction + ae.perceptual_weight * perceptual_distance(
                self.perceptual, output_to_image(output), batch["image"].to(self.device)
            )
        return reconstruction, output


def finish_autoencoder(
    model: VQGAN,
    splits: Any,
    modality: Modality,
    ae: AutoencoderConfig,
    out: Path,
    device: torch.device,
    seconds: float,
) -> dict[str, Any]:
    """Set the latent scale, save the model, evaluate on the validation split, draw reconstructions."""
    model.eval()
    model.scale.fill_(latent_scale(model, splits.train, modality, device))
    save_autoencoder(out / MODEL_FILE, model, modality, splits.class_names, ae)
    metrics = evaluate_autoencoder(model, splits.val, modality, splits.class_names, ae.batch_size, device)
    metrics.update(
        modality=modality,
        split="val",
        steps=ae.steps,
        train_seconds=round(seconds, 1),
        latent_scale=model.scale.item(),
    )
    atomic_write_json(out / "metrics.json", metrics)
    rows = reconstruction_rows(model, splits.val, modality, len(splits.class_names), device=str(device))
    summary = (
        f"PSNR {metrics['psnr']:.2f} dB" if modality == "image" else f"mean IoU {metrics['mean_iou']:.3f}"
    )
    save_image_rows(
        out / "reconstructions.png",
        rows,
        ("input", "reconstruction"),
        title=f"{modality} autoencoder, validation split: {summary}",
    )
    logger.info("%s autoencoder: %s; codebook usage %.2f", modality, summary, metrics["codebook_usage"])
    return metrics
