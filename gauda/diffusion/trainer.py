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
    seed_everything(dc.seed)
    splits = load_splits(config.data, progress=progress)
    if ddp.is_main:
        save_split(splits.summary, out)
    class_names = splits.class_names
    if tuple(mask_info["class_names"]) != tuple(class_names):
        raise ConfigError(
            f"--mask-autoencoder {runs['mask']}: trained on classes {list(mask_info['class_names'])}; "
            f"the configured dataset has {list(class_names)}"
        )
    # the frames as they are: a classic augmentation (data.augment) would be frozen into the cache
    train = PairedDataset(splits.train.frames, splits.train.source, splits.train.indices)

    arguments = (out / LATENTS_FILE, train, image_ae, mask_ae, dc.encode_batch_size, device, progress)
    latents = cached_latents(*arguments) if ddp.is_main else {}
    ddp.barrier()  # rank 0 has written the cache; the others read it
    latents = latents or cached_latents(*arguments)
    del arguments
    z_all = torch.cat([latents["image"], latents["mask"]], dim=1).to(device)  # (N, D, s, s)
    present_all = latents["classes"]  # (N, C)
    num_frames, num_channels, latent_size = z_all.shape[0], z_all.shape[1], z_all.shape[-1]
    del image_ae, mask_ae

    batch_size = min(dc.batch_size, num_frames)
    ddp.check_divides(batch_size, "diffusion.batch_size")
    model = DiffusionUNet(num_channels, len(class_names), latent_size, dc).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(), dc.learning_rate, betas=dc.betas, weight_decay=dc.weight_decay
    )
    abar = alpha_bar(config_betas(dc)).float().to(device)  # (T,)
    state = TrainState(
        "diffusion", {"model": ("denoiser", model), "ema": ("EMA denoiser", ema)}, {"optimizer": optimizer}
    )
    if resume:
        state.restore(last_path, device)
        logger.info("resuming diffusion at step %d of %d", state.step, dc.steps)
    start = state.step
    net = ddp.wrap(model)  # model itself on one process
    sampler: StepBatchSampler
    if dc.frame_sampling == "rare_classes":
        weights = rare_class_frame_weights(present_all)
        sampler = WeightedBatchSampler(weights, batch_size, dc.seed, start_step=start)
    else:
        sampler = EpochBatchSampler(num_frames, batch_size, dc.seed, start_step=start)
    # rows are logged at the 0-based index of a step: a checkpoint of `start` steps holds rows < start
    log = MetricsLog(out, resume_step=start - 1 if resume else None, enabled=ddp.is_main)

    model.train()
    recent: list[float] = []
    bar = tqdm(total=dc.steps, initial=start, desc="diffusion", disable=not progress)
    state.start_clock()
    stop = dc.steps if stop_at is None else min(stop_at, dc.steps)
    for step in range(start, stop):
        lr = learning_rate(step, dc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # every random draw of a step comes from a generator seeded by the step: resume-exact; drawn
        # for the whole global batch, of which each process takes its share
        generator = step_generator(dc.seed, step)
        index = sampler.batch(step)
        batch = len(index)
        t = torch.randint(0, len(abar), (batch,), generator=generator)  # (B,)
        eps = torch.randn((batch, *z_all.shape[1:]), generator=generator)  # (B, D, s, s)
        condition = draw_condition(present_all[index], dc.keep_probability, generator)  # (B, C)
        null = drop_condition(batch, dc.p_uncond, generator) | (condition.sum(1) == 0)  # (B,)
        index, t, eps, condition, null = (ddp.shard(x) for x in (index, t, eps, condition, null))
        z0, t, eps = z_all[index], t.to(device), eps.to(device)  # (b, D, s, s), (b,), (b, D, s, s)
        if step == start:
            ddp.log_share(len(z0), batch, "pairs")
        z_t = q_sample(z0, eps, abar[t])  # Eq. 1 on the joint latents
        target = eps if dc.prediction == "epsilon" else v_target(z0, eps, abar[t])  # Eq. 5 (or v)
        with autocast(device, dc.precision):
            prediction = net(z_t, t, condition.to(device), null.to(device))
        loss = F.mse_loss(prediction.float(), target)
        loss_value = ddp.mean(loss.detach()).item()  # the global batch's loss, the same on every rank
        check_finite_loss(loss_value, f"diffusion, step {step}", last_path, "diffusion.learning_rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(model.parameters(), dc.grad_clip).item()
            if dc.grad_clip
            else math.nan
        )
        optimizer.step()
        update_ema(ema, model, min(dc.ema_decay, (1 + step) / (10 + step)))  # short warm-up of the average
        recent = [*recent[-99:], loss_value]
        if step % 10 == 0 or step + 1 == dc.steps:
            log.log(step, {"loss": loss_value, "lr": lr, "grad_norm": grad_norm})
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
    image_channels = latents["image"].shape[1]
    metrics = {
        "steps": dc.steps,
        "train_seconds": round(state.seconds, 1),
        "final_loss": sum(recent) / len(recent) if recent else None,
        "num_frames": num_frames,
        "parameters": sum(p.numel() for p in model.parameters()),
        "latent_shape": [num_channels, latent_size, latent_size],
        "processes": ddp.world_size,
    }
    if not ddp.is_main:
        return metrics
    save_checkpoint(
        out / MODEL_FILE,
        {
            "model": ema.state_dict(),
            "config": to_dict(dc),
            "class_names": list(class_names),
            "class_frequency": present_all.mean(0),  # frame frequency of each class in the training split
            "image_channels": image_channels,
            "mask_channels": num_channels - image_channels,
            "latent_size": latent_size,
            "autoencoders": relative_autoencoders(out, runs),
        },
    )
    atomic_write_json(out / "metrics.json", metrics)
    logger.info(
        "diffusion: %d steps, loss %s, model in %s", dc.steps, metrics["final_loss"], out / MODEL_FILE
    )
    return metrics
