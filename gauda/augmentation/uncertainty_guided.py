"""GAUDA (paper Sec. 3.3, Supplementary Fig. 9) as a hook of the segmentation training loop.

At each validation the class-wise uncertainty UE_c (Eq. 8, or a variant: ``gauda.uncertainty.estimates``)
picks the ``top_k`` most uncertain classes; the frozen generator makes ``num_pairs`` pairs conditioned on
them (in chunks, ahead of need when asynchronous); pairs whose mask lacks the requested class are
dropped (``presence_pixels``); until the next validation, ``round(replace_fraction * B)`` frames of every
member's batch are replaced by synthetic pairs, at random positions (never a real frame of a requested
class, with ``keep_requested_frames``). With ``real_sampling: uncertainty`` the real frames are drawn
by UE_c as well.

Every member walks the whole stream of a request, each from its own offset (member m starts at
m / M of the way), so that each member trains on every pair and the members see different pairs at
one step. Everything is a function of (seed, step): chunk i of the request made at validation step v
is sampled from a generator seeded by (seed, v, i); the replaced positions are drawn from a generator
seeded by (seed, step). A resumed run regenerates the request of its last validation and continues with the
very same pairs; only the request (step and classes) travels in the checkpoint, never the tensors.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gauda.augmentation.adaptive import iou_class_weights, set_frame_weights, training_frame_classes
from gauda.augmentation.config import SchemeConfig
from gauda.augmentation.curation import curate, presence_keep, requested_labels
from gauda.augmentation.mixing import append_pairs, mix_batch, replaced_count
from gauda.augmentation.producer import ChunkProducer
from gauda.augmentation.selection import (
    class_weights_from_uncertainty,
    pair_conditions,
    random_classes,
    top_k_uncertain,
)
from gauda.augmentation.uncertainty_sampling import scheme_uncertainty
from gauda.config import ConfigError
from gauda.generation.generator import PairGenerator, Sampling
from gauda.io import atomic_write_json
from gauda.segmentation.trainer import Batch, SegmentationTrainer, TrainingHook, ValidationResults
from gauda.training.seeds import mixed_seed

logger = logging.getLogger(__name__)
CHOICES_FILE = "gauda_choices.json"


# stream tags of the draws keyed by (seed, step, ...); a request's chunks are keyed by (seed, step, chunk)
_MIX, _CURATION, _RANDOM_CLASSES = 2, 3, 4


@dataclass(frozen=True)
class Request:
    """What one validation asked the generator for."""

    step: int
    classes: tuple[int, ...]


class _Stream:
    """The synthetic pairs of one request in order, curated chunk by chunk as the trainer reaches them."""

    def __init__(self) -> None:
        self.images: list[torch.Tensor] = []  # kept pairs, (3, H, W) each
        self.masks: list[torch.Tensor] = []
        self.chunks_read = 0
        self.offered = 0  # pairs generated and looked at (before curation)
        self.absent = 0  # pairs dropped because the requested class was not in their mask

    def __len__(self) -> int:
        return len(self.images)


class UncertaintyGuidedAugmentation(TrainingHook):
    """GAUDA's scheme: uncertainty-chosen classes, generated pairs, partial replacement of real batches.

    Args:
        config: the scheme slice (``top_k``, ``num_pairs``, ``replace_fraction``, sampling, producer).
        generator: the frozen pair generator of a diffusion run.
        seed: the run's seed (``segmentation.seed``).
    """

    def __init__(self, config: SchemeConfig, generator: PairGenerator, seed: int) -> None:
        self.config, self.generator, self.seed = config, generator, seed
        self.sampling: Sampling = generator.sampling(config.sampler, config.sampling_steps, config.guidance)
        self.request: Request | None = None
        self.choices: list[dict[str, Any]] = []  # one entry per validation
        self.trainer: SegmentationTrainer | None = None
        self.producer: ChunkProducer | None = None
        self._stream = _Stream()
        self._resize_warned = False
        self.frame_classes: torch.Tensor | None = None  # (N, C) of the training frames (real_sampling)
        self.total_chunks = -(-config.num_pairs // config.generation_batch_size)
        # under torchrun, rank r makes chunks r, r + world, ... of every request and mixes them into its
        # own share of the batches (set in on_train_start)
        self.rank, self.world_size = 0, 1

    @property
    def num_chunks(self) -> int:
        """Chunks of a request this process makes."""
        return len(range(self.rank, self.total_chunks, self.world_size))

    # -- hooks -------------------------------------------------------------------------------------------

    def check_classes(self, class_names: Sequence[str]) -> None:
        """Refuse a generator of another dataset's classes (before anything trains or is written)."""
        if tuple(self.generator.class_names) != tuple(class_names):
            raise ConfigError(
                f"scheme.generator {self.config.generator}: trained on classes "
                f"{list(self.generator.class_names)}, the segmentation data has {list(class_names)}; "
                "expected a diffusion run of the same dataset"
            )

    def on_train_start(self, trainer: SegmentationTrainer) -> None:
        self.check_classes(trainer.class_names)
        self.trainer = trainer
        self.rank, self.world_size = trainer.ddp.rank, trainer.ddp.world_size
        if self.num_chunks == 0:
            raise ConfigError(
                f"scheme.num_pairs {self.config.num_pairs}: {self.total_chunks} chunks of "
                f"scheme.generation_batch_size for {self.world_size} processes; expected at least one each"
            )
        if self.config.real_sampling != "uniform":
            self.frame_classes = training_frame_classes(trainer.train, progress=trainer.progress)
        self.producer = ChunkProducer(self._make_chunk, self.config.asynchronous, self.generator.device)
        logger.info(
            "GAUDA: %s with %d steps, guidance %g; %d pairs per validation, %s",
            self.sampling.sampler,
            self.sampling.steps,
            self.sampling.guidance,
            self.config.num_pairs,
            "asynchronous" if self.config.asynchronous else "synchronous",
        )
        if self.request is not None:  # resumed: regenerate the last validation's pairs
            self._submit(self.request)

    def on_validation(self, step: int, results: ValidationResults) -> None:
        assert self.trainer is not None
        names = self.trainer.class_names
        uncertainty = scheme_uncertainty(results, self.config)  # (C,), +inf for a missed class
        if self.config.class_choice == "random":
            draw = torch.Generator().manual_seed(mixed_seed(self.seed, step, _RANDOM_CLASSES))
            classes = random_classes(len(names), self.config.top_k, draw)
        else:
            classes = top_k_uncertain(uncertainty, self.config.top_k)
        generated = bool(classes) and step < self.trainer.config.steps  # nothing trains after the last
        previous = self._previous_summary()
        choice: dict[str, Any] = {
            "step": step,
            "classes": [names[c] for c in classes] if generated else [],
            "uncertainty": {
                name: (None if not math.isfinite(value) else value)
                for name, value in zip(names, uncertainty.tolist(), strict=True)
            },
            "missed": [
                name for name, value in zip(names, uncertainty.tolist(), strict=True) if value == math.inf
            ],
            "iou": {
                name: (None if value != value else value)
                for name, value in zip(names, results.table.iou.tolist(), strict=True)
            },
            "num_pairs": self.config.num_pairs if generated else 0,
            "wait_seconds": round(self.wait_seconds, 3),
            "generation_seconds": round(self.producer.produce_seconds if self.producer else 0.0, 3),
            **previous,
        }
        self.choices.append(choice)
        values = {"gauda/wait_seconds": self.wait_seconds, "gauda/num_chosen": float(len(choice["classes"]))}
        values.update({f"gauda/chosen/{name}": 1.0 for name in choice["classes"]})
        if self.trainer.metrics_log is not None:
            self.trainer.metrics_log.log(step, values)
        if self.trainer.ddp.is_main:
            atomic_write_json(self.trainer.run_dir / CHOICES_FILE, {"choices": self.choices})
        if self.frame_classes is not None:  # real_sampling: uncertainty or adaptive
            class_weights = (
                class_weights_from_uncertainty(uncertainty, self.config.temperature)
                if self.config.real_sampling == "uncertainty"
                else iou_class_weights(results, self.config)
            )
            set_frame_weights(self.trainer, self.frame_classes, class_weights, self.config)
        logger.info("step %d: GAUDA asks for %s", step, ", ".join(choice["classes"]) or "nothing")
        if generated:
            self._submit(Request(step, tuple(classes)))
        else:
            self.request = None

    def on_batch(self, batch: Batch, step: int) -> Batch:
        if self.request is None:
            return batch
        num_members, batch_size = batch["mask"].shape[:2]
        count = replaced_count(batch_size, self.config.replace_fraction)
        offset = -(-self.process_pairs // num_members)  # member m starts m / M of the way along
        walked = (step - self.request.step) * count  # how far each member has walked its stream
        positions = [member * offset + walked + i for member in range(num_members) for i in range(count)]
        pairs = [self._pair(position) for position in positions]
        if any(pair is None for pair in pairs):  # the filters dropped every pair of the request
            return batch
        images = torch.stack([p[0] for p in pairs]).unflatten(0, (num_members, count))  # (M, k, 3, H, W)
        masks = torch.stack([p[1] for p in pairs]).unflatten(0, (num_members, count))  # (M, k, H, W)
        images, masks = self._match_size(images, masks, batch["mask"].shape[-2:])
        length = max(len(self._stream), 1)
        names = [[f"synthetic-{self.request.step}-{positions[member * count + i] % length}"
                  for i in range(count)] for member in range(num_members)]  # fmt: skip
        if self.config.mixing == "append":
            return append_pairs(batch, images, masks, names, len(self.trainer.class_names))
        protected = None
        if self.config.keep_requested_frames:
            protected = batch["classes"][..., list(self.request.classes)].bool().any(-1)  # (M, B)
        keys = (self.seed, step, _MIX) if self.world_size == 1 else (self.seed, step, _MIX, self.rank)
        generator = torch.Generator().manual_seed(mixed_seed(*keys))
        return mix_batch(batch, images, masks, names, len(self.trainer.class_names), generator, protected)

    def on_train_end(self, trainer: SegmentationTrainer) -> None:
        last = self._previous_summary() if self.request is not None else None  # the last request's use
        self.close()
        if self.choices and trainer.ddp.is_main:
            atomic_write_json(trainer.run_dir / CHOICES_FILE, {"choices": self.choices, "last_request": last})
            from gauda.augmentation.plots import plot_choices

            plot_choices(self.choices, trainer.class_names, trainer.run_dir / "gauda_choices.png")

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()

    @property
    def wait_seconds(self) -> float:
        return self.producer.wait_seconds if self.producer is not None else 0.0

    # -- state -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        request = self.request
        saved = None if request is None else {"step": request.step, "classes": list(request.classes)}
        return {"request": saved, "choices": self.choices}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        request = state.get("request")
        self.request = None if request is None else Request(int(request["step"]), tuple(request["classes"]))
        self.choices = list(state.get("choices", []))

    # -- the pairs ---------------------------------------------------------------------------------------

    def _submit(self, request: Request) -> None:
        assert self.producer is not None
        self.request = request
        self._stream = _Stream()
        self.producer.submit(request, self.num_chunks)

    @property
    def process_pairs(self) -> int:
        """Pairs of a request this process makes (before any filter)."""
        size, total = self.config.generation_batch_size, self.config.num_pairs
        return sum(
            min(size, total - chunk * size) for chunk in range(self.rank, self.total_chunks, self.world_size)
        )

    def _chunk_conditions(self, request: Request, index: int) -> torch.Tensor:
        """(b, C) conditions of this process's ``index``-th chunk of a request."""
        index = self.rank + index * self.world_size  # the chunk's place in the whole request
        first = index * self.config.generation_batch_size
        size = min(self.config.generation_batch_size, self.config.num_pairs - first)
        return pair_conditions(
            list(request.classes), self.config.num_pairs, self.generator.num_classes, self.config.condition
        )[first : first + size]

    def _make_chunk(self, request: Request, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's ``index``-th chunk of a request: (b, 3, H, W) images, (b, H, W) masks (CPU)."""
        conditions = self._chunk_conditions(request, index)
        index = self.rank + index * self.world_size  # the chunk's place in the whole request (its seed)
        device = self.generator.device
        generator = torch.Generator(device=device).manual_seed(mixed_seed(self.seed, request.step, index))
        images, masks = self.generator.generate(conditions.to(device), self.sampling, generator)
        return images.cpu(), masks.cpu()

    def _pair(self, position: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The pair at ``position`` of the current request's stream; None when curation kept none."""
        assert self.producer is not None and self.request is not None
        stream = self._stream
        while position >= len(stream) and stream.chunks_read < self.num_chunks:
            images, masks = self.producer.chunk(stream.chunks_read)
            stream.offered += len(images)
            conditions = self._chunk_conditions(self.request, stream.chunks_read)  # (b, C)
            if self.config.presence_pixels > 0:
                keep = presence_keep(masks, conditions, self.config.presence_pixels)
                stream.absent += int((~keep).sum())
                images, masks, conditions = images[keep], masks[keep], conditions[keep]
            if self.config.curation_threshold > 0:
                chunk = self.rank + stream.chunks_read * self.world_size  # its place in the request
                keep = self._curate(images, masks, chunk)
                images, masks, conditions = images[keep], masks[keep], conditions[keep]
            if self.config.pair_label_margin is not None:  # last: the filters read whole masks
                masks = requested_labels(masks, conditions, self.config.pair_label_margin)
            stream.images += list(images)
            stream.masks += list(masks)
            stream.chunks_read += 1
        if not len(stream):
            if stream.offered:
                logger.warning(
                    "step %d: the filters kept none of %d pairs", self.request.step, stream.offered
                )
                stream.offered = 0  # warn once per request
            return None
        index = position % len(stream)
        return stream.images[index], stream.masks[index]

    def _curate(self, images: torch.Tensor, masks: torch.Tensor, chunk: int) -> torch.Tensor:
        """(b,) bool: the pairs of a chunk that the current model agrees with (``curation_threshold``)."""
        assert self.trainer is not None and self.request is not None
        device = self.trainer.device
        seed = mixed_seed(self.seed, self.request.step, chunk, _CURATION)
        generator = torch.Generator(device=device).manual_seed(seed)
        start = time.perf_counter()
        agreement, keep = curate(
            self.trainer.segmenter,
            images.to(device),
            masks.to(device),
            self.config.curation_threshold,
            self.trainer.config.num_samples("val"),
            generator,
        )
        keep = keep.cpu()
        choice = self.choices[-1] if self.choices else {}
        choice["curation_kept"] = choice.get("curation_kept", 0) + int(keep.sum())
        choice["curation_offered"] = choice.get("curation_offered", 0) + len(keep)
        choice["curation_seconds"] = choice.get("curation_seconds", 0.0) + time.perf_counter() - start
        logger.debug("curation kept %d of %d pairs (agreement %s)", keep.sum(), len(keep), agreement.tolist())
        return keep

    def _match_size(
        self, images: torch.Tensor, masks: torch.Tensor, size: torch.Size
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthetic pairs at the real frames' size (bilinear for images, nearest for masks)."""
        if tuple(images.shape[-2:]) == tuple(size):
            return images, masks
        if not self._resize_warned:
            logger.warning(
                "synthetic pairs are %s px, the training frames %s px: resizing them",
                tuple(images.shape[-2:]),
                tuple(size),
            )
            self._resize_warned = True
        m, k = images.shape[:2]
        images = F.interpolate(images.flatten(0, 1), size=tuple(size), mode="bilinear", align_corners=False)
        masks = F.interpolate(masks.flatten(0, 1)[:, None].float(), size=tuple(size), mode="nearest")
        return images.unflatten(0, (m, k)), masks[:, 0].long().unflatten(0, (m, k))

    def _previous_summary(self) -> dict[str, Any]:
        """How the request of the previous validation was used (pairs kept after curation)."""
        stream = self._stream
        return {
            "previous_pairs_used": len(stream),
            "previous_chunks_read": stream.chunks_read,
            "previous_pairs_without_class": stream.absent,
        }
