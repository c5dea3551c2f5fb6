"""Training loop of the joint latent diffusion model (Eq. 5) and the run it leaves behind.

The run folder receives ``config.yaml``, ``split.json``, ``autoencoders.json`` (the two autoencoder runs,
so that sampling finds them), ``latents.safetensors`` (the training split encoded once), ``metrics.csv``,
``last.safetensors`` (everything needed to resume), ``model.safetensors`` (the EMA denoiser with what
sampling needs: configuration, class names, latent layout, autoencoder runs, class frequencies) and
``metrics.json``.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gauda.autoencoders.runs import load_autoencoder
from gauda.checkpoint import (
    check_finite_loss,
    save_checkpoint,
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
from gauda.data.splits import save_split
from gauda.device import autocast, resolve_device
from gauda.diffusion.condition import draw_condition, drop_condition
from gauda.diffusion.config import DiffusionConfig, DiffusionStageConfig
from gauda.diffusion.denoiser import DiffusionUNet
from gauda.diffusion.latents import LATENTS_FILE, cached_latents
from gauda.diffusion.runs import AUTOENCODERS_FILE, MODEL_FILE, recorded_autoencoders, relative_autoencoders
from gauda.diffusion.schedule import alpha_bar, config_betas, q_sample, v_target
from gauda.diffusion.weighting import dataset_cell_weights, noisiest_steps_only, weighted_mse
from gauda.distributed import Distributed, setup_distributed
from gauda.io import atomic_write_json
from gauda.runlock import folder_lock
from gauda.runlog import MetricsLog
from gauda.training.seeds import step_generator
from gauda.training.state import TrainState, check_run_folder, checkpoint_due

logger = logging.getLogger(__name__)


def learning_rate(step: int, config: DiffusionConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then polynomial decay (1 - step / steps)^lr_power."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    return config.learning_rate * warmup * (1 - step / config.steps) ** config.lr_power


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1 - decay)


def autoencoder_runs(out: Path, image: str | Path | None, mask: str | Path | None) -> dict[str, str]:
    """The two autoencoder runs of a diffusion run (absolute): as given, or as recorded in the run folder."""
    if image is None or mask is None:
        if not (out / AUTOENCODERS_FILE).is_file():
            raise ConfigError(
                f"--image-autoencoder/--mask-autoencoder: required ({out / AUTOENCODERS_FILE} records none "
                "to reuse)"
            )
        return recorded_autoencoders(out)
    return {"image": str(Path(image).resolve()), "mask": str(Path(mask).resolve())}


def train_diffusion(
    config: DiffusionStageConfig,
    out: str | Path,
    image_autoencoder: str | Path | None = None,
    mask_autoencoder: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train the joint denoiser of ``config`` on latents of the two autoencoder runs; returns its metrics.

    Args:
        config: a configuration with the data and diffusion slices (a ``GaudaConfig``); all of it is
            saved with the run.
        out: run folder; must not hold a run unless ``resume``.
        image_autoencoder: run folder of the image VQ-GAN (on resume: default, the recorded one).
        mask_autoencoder: run folder of the mask VQ-GAN (on resume: default, the recorded one).
        resume: continue the run in ``out`` from its last checkpoint.
        progress: show progress bars.
        stop_at: stop after this many steps with a checkpoint to ``--resume`` from, as an interrupted
            job would (the learning rate still follows ``config.diffusion.steps``); no model is saved then.

    Under ``torchrun`` each process trains on its share of every batch (``gauda.distributed``).
    """
    ddp, device = setup_distributed(resolve_device(config.diffusion.device))
    with folder_lock(out, enabled=ddp.is_main):
        return _train(config, Path(out), ddp, device, image_autoencoder, mask_autoencoder, resume, progress,
                      stop_at)  # fmt: skip


def _train(
    config: DiffusionStageConfig,
    out: Path,
    ddp: Distributed,
    device: torch.device,
    image_autoencoder: str | Path | None,
    mask_autoencoder: str | Path | None,
    resume: bool,
    progress: bool,
    stop_at: int | None,
) -> dict[str, Any]:
    dc = config.diffusion
    progress = progress and ddp.is_main
    last_path = check_run_folder(out, "diffusion", resume)
    runs = autoencoder_runs(out, image_autoencoder, mask_autoencoder)
    latents = training_latents(config, out, runs, ddp, device, progress)

    batch_size = min(dc.batch_size, latents.num_frames)
    ddp.check_divides(batch_size, "diffusion.batch_size")
    model = DiffusionUNet(latents.num_channels, len(latents.class_names), latents.size, dc).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(), dc.learning_rate, betas=dc.betas, weight_decay=dc.weight_decay
    )
    state = TrainState(
        "diffusion", {"model": ("denoiser", model), "ema": ("EMA denoiser", ema)}, {"optimizer": optimizer}
    )
    if resume:
        state.restore(last_path, device)
        logger.info("resuming diffusion at step %d of %d", state.step, dc.steps)
    start = state.step
    sampler = frame_sampler(dc, latents.present, batch_size, start)
    train_step = DiffusionStep(dc, model, ema, optimizer, ddp.wrap(model), latents, sampler, ddp, last_path)
    # rows are logged at the 0-based index of a step: a checkpoint of `start` steps holds rows < start
    log = MetricsLog(out, resume_step=start - 1 if resume else None, enabled=ddp.is_main)

    model.train()
    recent: list[float] = []
    bar = tqdm(total=dc.steps, initial=start, desc="diffusion", disable=not progress)
    state.start_clock()
    stop = dc.steps if stop_at is None else min(stop_at, dc.steps)
    for step in range(start, stop):
        values = train_step(step, log_share=step == start)
        recent = [*recent[-99:], values["loss"]]
        if step % 10 == 0 or step + 1 == dc.steps:
            log.log(step, values)
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
        bar.update(1)
        if checkpoint_due(step, dc.checkpoint_every, stop):
            state.lap(step + 1)
            if ddp.is_main:
                state.save(last_path, {"config": to_dict(config)})
    bar.close()
    log.close()
    if stop < dc.steps:
        logger.info("diffusion: stopped at step %d of %d; continue with --resume", stop, dc.steps)
        return {"stopped_at": stop, "steps": dc.steps}
    metrics = {
        "steps": dc.steps,
        "train_seconds": round(state.seconds, 1),
        "final_loss": sum(recent) / len(recent) if recent else None,
        "num_frames": latents.num_frames,
        "parameters": sum(p.numel() for p in model.parameters()),
        "latent_shape": [latents.num_channels, latents.size, latents.size],
        "processes": ddp.world_size,
    }
    if ddp.is_main:
        save_model(out, ema, dc, latents, runs, metrics)
    return metrics


@dataclass(frozen=True)
class TrainingLatents:
    """The training split encoded by both autoencoders: what the denoiser learns."""

    z: torch.Tensor  # (N, D_x + D_y, s, s) joint latents, on the training device
    present: torch.Tensor  # (N, C) multi-hot classes of each frame
    image_channels: int  # D_x
    class_names: tuple[str, ...]
    # (N, s, s) loss weight of each latent cell, on the training device (diffusion.class_weight_power > 0)
    cell_weights: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.z.shape[0]

    @property
    def num_channels(self) -> int:
        return self.z.shape[1]

    @property
    def size(self) -> int:
        return self.z.shape[-1]


def training_latents(
    config: DiffusionStageConfig,
    out: Path,
    runs: dict[str, str],
    ddp: Distributed,
    device: torch.device,
    progress: bool,
) -> TrainingLatents:
    """Load and check the two autoencoder runs, write ``config.yaml``, ``autoencoders.json`` and
    ``split.json``, and encode the training split once (``latents.safetensors``, read back on resume)."""
    image_ae, image_info = load_autoencoder(runs["image"], device=str(device))
    mask_ae, mask_info = load_autoencoder(runs["mask"], device=str(device))
    for name, info in (("image", image_info), ("mask", mask_info)):
        if info["modality"] != name:
            raise ConfigError(
                f"--{name}-autoencoder {runs[name]}: a {info['modality']} autoencoder; expected {name}"
            )
    if ddp.is_main:
        save(config, out / "config.yaml")
        atomic_write_json(out / AUTOENCODERS_FILE, relative_autoencoders(out, runs))
    seed_everything(config.diffusion.seed)
    splits = load_splits(config.data, progress=progress)
    if ddp.is_main:
        save_split(splits.summary, out)
    if tuple(mask_info["class_names"]) != tuple(splits.class_names):
        raise ConfigError(
            f"--mask-autoencoder {runs['mask']}: trained on classes {list(mask_info['class_names'])}; "
            f"the configured dataset has {list(splits.class_names)}"
        )
    # the frames as they are: a classic augmentation (data.augment) would be frozen into the cache
    train = PairedDataset(splits.train.frames, splits.train.source, splits.train.indices)
    arguments = (out / LATENTS_FILE, train, image_ae, mask_ae, config.diffusion.encode_batch_size, device,
                 progress)  # fmt: skip
    latents = cached_latents(*arguments) if ddp.is_main else {}
    ddp.barrier()  # rank 0 has written the cache; the others read it
    latents = latents or cached_latents(*arguments)
    z = torch.cat([latents["image"], latents["mask"]], dim=1).to(device)
    weights = None
    if config.diffusion.class_weight_power > 0:
        weights = dataset_cell_weights(train, config.diffusion.class_weight_power, z.shape[-1]).to(device)
    return TrainingLatents(
        z, latents["classes"], latents["image"].shape[1], tuple(splits.class_names), weights
    )


def frame_sampler(
    dc: DiffusionConfig, present: torch.Tensor, batch_size: int, start: int
) -> StepBatchSampler:
    """The frames of each step: rare-class frames drawn more often (``frame_sampling``), or epochs."""
    if dc.frame_sampling == "rare_classes":
        return WeightedBatchSampler(rare_class_frame_weights(present), batch_size, dc.seed, start_step=start)
    return EpochBatchSampler(len(present), batch_size, dc.seed, start_step=start)


class DiffusionStep:
    """One optimisation step of Eq. 5 on the joint latents: noise a batch, predict, step, update the EMA.

    Every random draw of a step comes from a generator seeded by the step (a resumed run draws the same),
    drawn for the whole global batch, of which each process takes its share."""

    def __init__(
        self,
        dc: DiffusionConfig,
        model: DiffusionUNet,
        ema: DiffusionUNet,
        optimizer: torch.optim.Optimizer,
        net: torch.nn.Module,
        latents: TrainingLatents,
        sampler: StepBatchSampler,
        ddp: Distributed,
        last_path: Path,
    ) -> None:
        self.dc, self.model, self.ema, self.optimizer, self.net = dc, model, ema, optimizer, net
        self.latents, self.sampler, self.ddp, self.last_path = latents, sampler, ddp, last_path
        self.abar = alpha_bar(config_betas(dc)).float().to(latents.z.device)  # (T,)

    def __call__(self, step: int, log_share: bool = False) -> dict[str, float]:
        """Train one step; returns its loss (the global batch's), learning rate and gradient norm."""
        dc, ddp, z_all, abar = self.dc, self.ddp, self.latents.z, self.abar
        device = z_all.device
        lr = learning_rate(step, dc)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        generator = step_generator(dc.seed, step)
        index = self.sampler.batch(step)
        batch = len(index)
        t = torch.randint(0, len(abar), (batch,), generator=generator)  # (B,)
        eps = torch.randn((batch, *z_all.shape[1:]), generator=generator)  # (B, D, s, s)
        condition = draw_condition(self.latents.present[index], dc.keep_probability, generator)  # (B, C)
        null = drop_condition(batch, dc.p_uncond, generator) | (condition.sum(1) == 0)  # (B,)
        index, t, eps, condition, null = (ddp.shard(x) for x in (index, t, eps, condition, null))
        z0, t, eps = z_all[index], t.to(device), eps.to(device)  # (b, D, s, s), (b,), (b, D, s, s)
        if log_share:
            ddp.log_share(len(z0), batch, "pairs")
        z_t = q_sample(z0, eps, abar[t])  # Eq. 1 on the joint latents
        target = eps if dc.prediction == "epsilon" else v_target(z0, eps, abar[t])  # Eq. 5 (or v)
        with autocast(device, dc.precision):
            prediction = self.net(z_t, t, condition.to(device), null.to(device))
        if self.latents.cell_weights is None:
            loss = F.mse_loss(prediction.float(), target)
        else:  # each latent cell weighted by its pixels' classes (diffusion.class_weight_power)
            weights = self.latents.cell_weights[index]  # (b, s, s)
            first = round((1 - dc.class_weight_timesteps) * len(abar))  # weighted from this timestep on
            weights = noisiest_steps_only(weights, t, first)
            loss = weighted_mse(prediction.float(), target, weights, ddp.mean(weights.sum()))
        loss_value = ddp.mean(loss.detach()).item()  # the global batch's loss, the same on every rank
        check_finite_loss(loss_value, f"diffusion, step {step}", self.last_path, "diffusion.learning_rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), dc.grad_clip).item()
            if dc.grad_clip
            else math.nan
        )
        self.optimizer.step()
        update_ema(
            self.ema, self.model, min(dc.ema_decay, (1 + step) / (10 + step))
        )  # warm-up of the average
        return {"loss": loss_value, "lr": lr, "grad_norm": grad_norm}


def save_model(
    out: Path,
    ema: DiffusionUNet,
    dc: DiffusionConfig,
    latents: TrainingLatents,
    runs: dict[str, str],
    metrics: dict[str, Any],
) -> None:
    """``model.safetensors`` (the EMA denoiser with what sampling needs) and ``metrics.json``."""
    save_checkpoint(
        out / MODEL_FILE,
        {
            "model": ema.state_dict(),
            "config": to_dict(dc),
            "class_names": list(latents.class_names),
            "class_frequency": latents.present.mean(0),  # frame frequency of each class in the training split
            "image_channels": latents.image_channels,
            "mask_channels": latents.num_channels - latents.image_channels,
            "latent_size": latents.size,
            "autoencoders": relative_autoencoders(out, runs),
        },
    )
    atomic_write_json(out / "metrics.json", metrics)
    logger.info(
        "diffusion: %d steps, loss %s, model in %s", dc.steps, metrics["final_loss"], out / MODEL_FILE
    )
