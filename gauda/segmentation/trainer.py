"""The training loop of the Bayesian segmenters, with named hooks for training schemes.

The loop is the default scheme (no resampling): each member draws its own batches, one optimiser step
per batch, validation every ``val_every`` steps (mean IoU and the class-wise uncertainty, Eq. 8), the
``best`` (label-mean IoU) and ``last`` checkpoints written at each validation. Schemes of later stages
(GAUDA's generated pairs, Adaptive Sampling's weights) plug into the hooks without touching the loop:

    on_train_start(trainer)          once, after a resume has restored every state
    on_batch(batch, step) -> batch   before each step: may replace part of the batch
    after_step(step, logs)           after each step
    on_validation(step, results)     after each validation: may set trainer.sampler's weights
    on_train_end(trainer)            once, after the last step
    close()                          always, when fit returns or fails (stop background work)

A hook's ``state_dict``/``load_state_dict`` travel in the checkpoints, so a resumed run continues the
scheme where it stopped. A resumed run restarts from the last validation and reaches the same weights
as an uninterrupted one: batches are a pure function of (seed, member, step, weights), the model's
random draws come from the trainer's own generator, and validation draws from a generator of its own.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from gauda.checkpoint import (
    LAST_FILE,
    check_finite_loss,
    check_stage,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from gauda.config import ConfigError
from gauda.device import autocast, resolve_device
from gauda.distributed import setup_distributed
from gauda.io import atomic_write_text
from gauda.metrics.segmentation import SegmentationTable
from gauda.runlog import MetricsLog
from gauda.segmentation.bayesian import BayesianSegmenter
from gauda.segmentation.config import SEGMENTER_SLICES, SegmentationConfig
from gauda.segmentation.evaluate import evaluate_split
from gauda.segmentation.sampler import MemberBatchSampler
from gauda.training.state import TrainState
from gauda.uncertainty.estimates import UncertaintySums

logger = logging.getLogger(__name__)

# A run's state just before its first validation, saved with ``save_fork``, and its metrics until then: until
# its first validation every scheme trains the very same steps, so a run of another scheme can start there.
FORK_FILE = "fork.safetensors"
FORK_METRICS_FILE = "fork_metrics.csv"

# Options a resumed run may change: they do not alter what the model learns.
RESUMABLE_OPTIONS: tuple[str, ...] = (
    "segmentation.steps",
    "segmentation.num_workers",
    "segmentation.device",
    "segmentation.eval_batch_size",
    "scheme.asynchronous",
    "data.root",
    "data.cache_dir",
)

# "image" (M, B, 3, H, W), "mask" (M, B, H, W), "classes" (M, B, C), "index" (M, B), "name" (M lists), ...
Batch = dict[str, Any]


@dataclass(frozen=True)
class ValidationResults:
    step: int
    table: SegmentationTable
    uncertainty: torch.Tensor  # (C,) UE_c of Eq. 8 over the validation set; NaN: class never predicted
    estimates: UncertaintySums | None = None  # its variants (gauda.uncertainty.estimates)


class TrainingHook:
    """A training scheme's entry points into the loop; every method does nothing by default."""

    def on_train_start(self, trainer: SegmentationTrainer) -> None:
        pass

    def on_batch(self, batch: Batch, step: int) -> Batch:
        return batch

    def after_step(self, step: int, logs: Mapping[str, float]) -> None:
        pass

    def on_validation(self, step: int, results: ValidationResults) -> None:
        pass

    def on_train_end(self, trainer: SegmentationTrainer) -> None:
        pass

    def close(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class _KeyedFrames(Dataset):
    """Serves a key (frame index, epoch) of the sampler: the frame, augmented as in that epoch."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, epoch = key
        self.dataset.epoch = epoch  # PairedDataset seeds its augmentation with the epoch
        return {**self.dataset[index], "index": index}


def collate_members(samples: list[dict[str, Any]], num_members: int) -> Batch:
    """Collate num_members * B samples (member after member) into tensors (M, B, ...) and lists per member."""
    batch = default_collate(samples)
    per_member = len(samples) // num_members
    return {
        key: value.unflatten(0, (num_members, per_member))
        if isinstance(value, torch.Tensor)
        else [value[m * per_member : (m + 1) * per_member] for m in range(num_members)]
        for key, value in batch.items()
    }


class _TrainingLoss(torch.nn.Module):
    """The segmenter's training loss as a forward pass, so that DistributedDataParallel can wrap it."""

    def __init__(self, segmenter: torch.nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return self.segmenter.training_loss(images, masks, generator)


def _copy_text(source: Path, target: Path) -> None:
    """Copy a text file atomically (an empty file, with a warning, when there is none)."""
    if not source.is_file():
        logger.warning("%s is missing: %s starts empty", source, target)
    atomic_write_text(target, source.read_text() if source.is_file() else "")


def metric_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def run_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> list[str]:
    """The options of ``SEGMENTER_SLICES`` that differ between a run's saved configuration ``old`` and
    ``new``, except those a resumed run may change (``RESUMABLE_OPTIONS``). An option ``old`` lacks was
    added to gauda after the run was trained and defaults to the behaviour the run had: it is taken
    from ``defaults`` (the options' defaults as a configuration dictionary) when given."""
    old = _with_defaults(old, defaults or {})
    old = {key: value for key, value in old.items() if key in SEGMENTER_SLICES}
    new = {key: value for key, value in new.items() if key in SEGMENTER_SLICES}
    return [key for key in config_changes(old, new) if key not in RESUMABLE_OPTIONS]


def _with_defaults(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the keys it lacks taken from ``defaults`` (nested)."""
    merged = dict(config)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping) and isinstance(merged[key], Mapping):
            merged[key] = _with_defaults(merged[key], value)
    return merged


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configuration dictionaries."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += config_changes(a, b, f"{name}.")
        elif a != b:
            changes.append(name)
    return changes


class SegmentationTrainer:
    """Trains a Bayesian segmenter into a run folder.

    Args:
        model: the segmenter (``build_segmenter``).
        config: the segmentation slice of the configuration.
        train: training samples (a ``PairedDataset``).
        val: validation samples.
        class_names: names of the class ids.
        run_dir: where checkpoints, ``metrics.csv`` and ``config.yaml`` go.
        full_config: the whole resolved configuration as a dictionary (``gauda.config.to_dict``), written
            to ``config.yaml`` and stored in every checkpoint.
        hooks: training schemes, called in order.
        progress: show progress bars.
        save_fork: also write ``FORK_FILE`` just before the first validation (see ``fit``'s ``fork``).
        config_defaults: the options' defaults as a configuration dictionary, for the keys a checkpoint
            of an older gauda lacks (``run_changes``).

    Under ``torchrun`` each process trains on its share of every member's batch (``gauda.distributed``);
    rank 0 validates, tells the others the results, and writes every file.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: SegmentationConfig,
        train: Dataset,
        val: Dataset,
        class_names: Sequence[str],
        run_dir: str | Path,
        full_config: Mapping[str, Any],
        hooks: Sequence[TrainingHook] = (),
        progress: bool = True,
        save_fork: bool = False,
        config_defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.config, self.train, self.val = config, train, val
        self.save_fork, self.config_defaults = save_fork, config_defaults
        self.class_names = tuple(class_names)
        self.run_dir = Path(run_dir)
        self.full_config = dict(full_config)
        self.hooks = list(hooks)
        self.ddp, self.device = setup_distributed(resolve_device(config.device))
        self.ddp.check_divides(config.batch_size, "segmentation.batch_size")
        self.progress = progress and self.ddp.is_main
        self.model = model.to(self.device)
        self.segmenter: BayesianSegmenter = model  # the same object, seen through the interface
        self.loss = self.ddp.wrap(_TrainingLoss(model))
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.sampler = MemberBatchSampler(
            len(train), self.segmenter.num_members, config.batch_size, config.seed
        )
        # the model's draws (PHiSeg's latents); each process its own stream for its share of the batch
        self.generator = torch.Generator(device=self.device).manual_seed(
            config.seed + 1_000_003 * self.ddp.rank
        )
        # model, optimiser, RNG and completed steps; the trainer adds its own state to its checkpoints
        self.train_state = TrainState(
            "segmentation", {"model": ("model", model)}, {"optimizer": self.optimizer}
        )
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.last_validation: ValidationResults | None = None
        self.metrics_log: MetricsLog | None = None  # open while fit runs; hooks may log to it
        self._share_logged = False

    @property
    def step(self) -> int:
        """Completed optimisation steps."""
        return self.train_state.step

    @step.setter
    def step(self, value: int) -> None:
        self.train_state.step = value

    @property
    def first_validation_step(self) -> int:
        return min(self.config.val_every, self.config.steps)

    # -- the loop ---------------------------------------------------------------------------------------

    def fit(self, resume: bool = False, fork: Path | None = None) -> ValidationResults | None:
        """Train up to ``config.steps``; with ``resume``, continue from the run's last checkpoint first.

        With ``fork`` (another run's ``FORK_FILE``, written with ``save_fork``), start from that run's
        state just before its first validation, its metrics until then copied, and take the first
        validation with this run's own scheme: no scheme acts before its first validation, so the run is
        the one trained from step 0, bit for bit, less the shared steps' time.

        Returns the last validation results (None when nothing was left to do).
        """
        if resume:
            self.load(self.run_dir / LAST_FILE)
        elif fork is not None:
            self.load(Path(fork), fork=True)
            if self.ddp.is_main:  # the shared steps' metrics; MetricsLog keeps them
                _copy_text(Path(fork).with_name(FORK_METRICS_FILE), self.run_dir / "metrics.csv")
        else:
            seed_everything(self.config.seed)
        # written once the configuration is known to fit the run (a refused resume leaves it alone)
        if self.ddp.is_main:
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(self.full_config, sort_keys=False))
        log = self.metrics_log = MetricsLog(
            self.run_dir, resume_step=self.step if resume or fork else None, enabled=self.ddp.is_main
        )
        bar = tqdm(total=self.config.steps, initial=self.step, desc="train", disable=not self.progress)
        self.train_state.start_clock()
        try:
            for hook in self.hooks:
                hook.on_train_start(self)
            if fork is not None:
                self._validation_point(log)  # the shared steps' first validation, with this run's scheme
            batches = self._batches()
            while self.step < self.config.steps:
                batch = next(batches)
                for hook in self.hooks:
                    batch = hook.on_batch(batch, self.step)
                logs = self._optimise(batch)
                self.step += 1
                log.log(self.step, {f"train/{name}": value for name, value in logs.items()})
                for hook in self.hooks:
                    hook.after_step(self.step, logs)
                bar.update()
                bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)
                if self.save_fork and self.step == self.first_validation_step and self.ddp.is_main:
                    self._save_fork()
                if self.step % self.config.val_every == 0 or self.step == self.config.steps:
                    self._validation_point(log)
                    batches = self._batches()  # a hook may have changed the sampling weights
            for hook in self.hooks:
                hook.on_train_end(self)
        finally:
            for hook in self.hooks:
                hook.close()
            bar.close()
            log.close()
            self.metrics_log = None
        return self.last_validation

    def _optimise(self, batch: Batch) -> dict[str, float]:
        """One step on a batch of every member; returns the values to log."""
        self.model.train()
        images = batch["image"].to(self.device)  # (M, B, 3, H, W)
        masks = batch["mask"].to(self.device)  # (M, B, H, W)
        if not self._share_logged:
            self.ddp.log_share(images.shape[1], self.config.batch_size, "frames")  # of each member's batch
            self._share_logged = True
        with autocast(self.device, self.config.precision):
            loss, logs = self.loss(images, masks, self.generator)
        value = float(self.ddp.mean(loss.detach().float()))  # the global batch's, the same on every rank
        check_finite_loss(value, f"segmentation, step {self.step + 1}", self.run_dir / LAST_FILE,
                          "segmentation.learning_rate")  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": value, **self.ddp.mean_values(logs)}

    def _shard(self, keys: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """This process's share of each member's batch (keys come member after member)."""
        if not self.ddp.active:
            return keys
        per_member = len(keys) // self.segmenter.num_members
        members = [keys[m * per_member : (m + 1) * per_member] for m in range(self.segmenter.num_members)]
        return [key for member in members for key in self.ddp.shard(member)]

    def _batches(self):
        """Batches from the current step on, drawn by the sampler with its current weights."""
        loader = DataLoader(
            _KeyedFrames(self.train),
            batch_sampler=(self._shard(keys) for keys in self.sampler.steps(self.step, self.config.steps)),
            num_workers=self.config.num_workers,
            collate_fn=functools.partial(collate_members, num_members=self.segmenter.num_members),
            generator=torch.Generator().manual_seed(self.config.seed),  # leave the global stream alone
        )
        return iter(loader)

    def _validation_point(self, log: MetricsLog) -> None:
        results = self.ddp.broadcast(self.validate() if self.ddp.is_main else None)
        self.last_validation = results
        table = results.table
        values = {
            "val/label_mean_iou": table.label_mean_iou,
            "val/sample_mean_iou": table.sample_mean_iou,
            "val/sample_median_iou": table.sample_median_iou,
        }
        for c, name in enumerate(self.class_names):
            values[f"val/iou/{metric_name(name)}"] = float(table.iou[c])
            values[f"val/uncertainty/{metric_name(name)}"] = float(results.uncertainty[c])
        log.log(self.step, values)
        logger.info("step %d: validation label-mean IoU %.4f", self.step, table.label_mean_iou)
        for hook in self.hooks:
            hook.on_validation(self.step, results)
        score = table.label_mean_iou
        self.train_state.lap(self.step)  # the training time the checkpoints record
        if not math.isnan(score) and (self.best_score is None or score > self.best_score):
            self.best_score, self.best_step = score, self.step
            if self.ddp.is_main:
                self.save(self.run_dir / "best.safetensors")
        if self.ddp.is_main:
            self.save(self.run_dir / LAST_FILE)

    def validate(self) -> ValidationResults:
        """Mean IoU and Eq. 8's class-wise uncertainty on the validation split."""
        evaluation = evaluate_split(
            self.segmenter,
            self.val,
            self.class_names,
            self.config.num_samples("val"),
            self.config.eval_batch_size,
            self.device,
            seed=self.config.seed,
            num_workers=self.config.num_workers,
            progress=self.progress,
        )
        return ValidationResults(self.step, evaluation.table, evaluation.uncertainty, evaluation.estimates)

    # -- checkpoints ------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return self.train_state.state_dict(
            {
                "best_score": self.best_score,
                "best_step": self.best_step,
                "generator": self.generator.get_state(),
                "sampler": self.sampler.state_dict(),
                "hooks": [hook.state_dict() for hook in self.hooks],
                "config": self.full_config,
                "class_names": list(self.class_names),
                "in_channels": 3,
            }
        )

    def save(self, path: Path) -> Path:
        """Write the whole training state atomically (safetensors + JSON, no pickle)."""
        return save_checkpoint(path, self.state_dict())

    def _save_fork(self) -> None:
        """``FORK_FILE`` and ``FORK_METRICS_FILE``: the state and metrics just before the first validation."""
        self.train_state.lap(self.step)
        # the metrics first: a run that finds FORK_FILE (another process may look) finds them complete
        _copy_text(self.run_dir / "metrics.csv", self.run_dir / FORK_METRICS_FILE)
        self.save(self.run_dir / FORK_FILE)

    def load(self, path: Path, fork: bool = False) -> None:
        """Restore the whole training state to continue a run; the configuration must match. With
        ``fork``, ``path`` is another run's ``FORK_FILE``: its scheme may differ, the hooks start afresh."""
        option = "--fork" if fork else "--resume"
        if not path.is_file():
            expected = "a run trained with --save-fork" if fork else "a run folder with last.safetensors"
            raise ConfigError(f"{option}: no checkpoint {path}; expected {expected}")
        check_stage(path, "segmentation")
        state = load_checkpoint(path, device="cpu")
        changed = run_changes(state["config"], self.full_config, self.config_defaults)
        if fork:  # no scheme acts before the first validation
            changed = [key for key in changed if not key.startswith("scheme.")]
        if changed:
            allowed = ", ".join(RESUMABLE_OPTIONS) + (" and the scheme" if fork else "")
            raise ConfigError(
                f"{option} {path}: the configuration differs from the run's in {', '.join(changed)}; "
                f"a {'forked' if fork else 'resumed'} run may change only {allowed}"
            )
        if list(state["class_names"]) != list(self.class_names):
            raise ConfigError(f"{option} {path}: the run was trained on classes {state['class_names']}")
        if fork and int(state["step"]) != self.first_validation_step:
            raise ConfigError(
                f"--fork {path}: saved at step {state['step']}; expected this run's first validation step "
                f"{self.first_validation_step} (segmentation.val_every)"
            )
        saved_hooks = [] if fork else state["hooks"]
        if len(saved_hooks) != len(self.hooks) and any(saved_hooks):  # stateless hooks may come and go
            raise ConfigError(
                f"--resume {path}: the run had {len(saved_hooks)} training hooks with state; "
                f"now {len(self.hooks)}"
            )
        self.train_state.restore(path, "cpu", state)
        self.best_score, self.best_step = state["best_score"], state["best_step"]
        self.generator.set_state(state["generator"])
        self.sampler.load_state_dict(state["sampler"])
        if len(saved_hooks) == len(self.hooks):
            for hook, hook_state in zip(self.hooks, saved_hooks, strict=True):
                hook.load_state_dict(hook_state)
        logger.info("%s %s at step %d of %d", "forked from" if fork else "resumed", path, self.step,
                    self.config.steps)  # fmt: skip
