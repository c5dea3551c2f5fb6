"""The training loop: hooks, sampler, checkpoints; a resumed run ends where an uninterrupted one does."""

from dataclasses import replace

import pytest
import torch
from torch.utils.data import Dataset

from gauda.config import ConfigError, to_dict
from gauda.segmentation import SegmentationConfig, build_segmenter
from gauda.segmentation.evaluate import load_segmenter
from gauda.segmentation.sampler import MemberBatchSampler
from gauda.segmentation.trainer import SegmentationTrainer, TrainingHook

torch.set_num_threads(2)
CLASSES = ("background", "organ", "tool")


class Frames(Dataset):
    """Random frames whose mask is a function of the red channel, so that there is something to learn."""

    def __init__(self, count: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(count, 3, 8, 8, generator=generator)
        self.masks = (self.images[:, 0] * 3).long().clamp(max=2)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        mask = self.masks[index]
        classes = torch.zeros(3).index_fill_(0, mask.unique(), 1.0)
        return {
            "image": self.images[index],
            "mask": mask,
            "classes": classes,
            "video": "v",
            "name": f"f{index}",
        }


def small_config(model: str, **changes) -> SegmentationConfig:
    config = SegmentationConfig(
        model=model,
        channels=(4, 8),
        ensemble_size=2,
        latent_levels=2,
        batch_size=2,
        steps=6,
        val_every=2,
        val_num_samples=2,
        eval_batch_size=4,
        device="cpu",
        learning_rate=1e-2,
    )
    return replace(config, **changes)


def trainer(config: SegmentationConfig, run_dir, hooks=()) -> SegmentationTrainer:
    model = build_segmenter(config, 3, len(CLASSES))
    full = {"segmentation": to_dict(config)}
    return SegmentationTrainer(
        model, config, Frames(10, 0), Frames(4, 1), CLASSES, run_dir, full, hooks=hooks, progress=False
    )


class StopAt(TrainingHook):
    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, step, logs) -> None:
        if step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("model", ["ensemble", "phiseg"])
def test_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one(model, tmp_path) -> None:
    config = small_config(model)
    whole = trainer(config, tmp_path / "whole")
    whole.fit()
    stopped = trainer(config, tmp_path / "stopped", hooks=[StopAt(5)])
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    resumed = trainer(config, tmp_path / "stopped")
    resumed.fit(resume=True)  # from the last checkpoint, written at the validation of step 4
    assert resumed.step == 6
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    steps = [row[0] for row in resumed_log(tmp_path / "stopped") if row[1] == "train/loss"]
    assert steps == [1, 2, 3, 4, 5, 6]  # the metrics log holds one history


def resumed_log(run_dir):
    import csv

    with (run_dir / "metrics.csv").open() as handle:
        return [(int(r["step"]), r["name"]) for r in csv.DictReader(handle)]


def test_resume_refuses_a_changed_configuration_and_names_the_key(tmp_path) -> None:
    trainer(small_config("ensemble", steps=2), tmp_path).fit()
    changed = trainer(small_config("ensemble", steps=4, learning_rate=0.5), tmp_path)
    with pytest.raises(ConfigError, match=r"segmentation\.learning_rate"):
        changed.fit(resume=True)
    more_steps = trainer(small_config("ensemble", steps=4), tmp_path)
    more_steps.fit(resume=True)
    assert more_steps.step == 4


class Recorder(TrainingHook):
    """Records the calls; after the first validation, samples only frame 3 (as Adaptive Sampling would)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.indices: list[set[int]] = []

    def on_train_start(self, trainer) -> None:
        self.trainer = trainer
        self.calls.append(("start", trainer.step))

    def on_batch(self, batch, step):
        self.calls.append(("batch", step))
        self.indices.append(set(batch["index"].flatten().tolist()))
        assert batch["image"].shape == (2, 2, 3, 8, 8) and batch["mask"].shape == (2, 2, 8, 8)
        return batch

    def after_step(self, step, logs) -> None:
        assert {"loss", "cross_entropy"} <= set(logs)

    def on_validation(self, step, results) -> None:
        self.calls.append(("validation", step))
        assert results.uncertainty.shape == (3,) and results.table.iou.shape == (3,)
        weights = torch.zeros(10)
        weights[3] = 1.0
        self.trainer.sampler.set_weights(weights)

    def on_train_end(self, trainer) -> None:
        self.calls.append(("end", trainer.step))


def test_hooks_are_called_in_order_and_new_sampling_weights_apply_from_the_next_step(tmp_path) -> None:
    hook = Recorder()
    trainer(small_config("ensemble", steps=4), tmp_path, hooks=[hook]).fit()
    assert [c for c in hook.calls if c[0] != "batch"] == [
        ("start", 0),
        ("validation", 2),
        ("validation", 4),
        ("end", 4),
    ]
    assert [c[1] for c in hook.calls if c[0] == "batch"] == [0, 1, 2, 3]
    assert hook.indices[2] == hook.indices[3] == {3}
    assert hook.indices[0] != {3}


def test_best_and_last_checkpoints_load_back_into_the_model(tmp_path) -> None:
    done = trainer(small_config("phiseg", steps=4), tmp_path)
    done.fit()
    for name in ("best", "last"):
        model, state = load_segmenter(tmp_path / f"{name}.safetensors", torch.device("cpu"))
        assert state["class_names"] == list(CLASSES)
    assert state["step"] == 4
    for key, value in done.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "metrics.csv").is_file()


def test_ensemble_members_differ_after_training(tmp_path) -> None:
    done = trainer(small_config("ensemble", steps=4), tmp_path)
    done.fit()
    probe = Frames(2, 5).images
    samples = done.model.sample_posterior(probe)
    assert not torch.allclose(samples[0], samples[1], atol=1e-3)


def test_every_member_walks_its_own_permutation_of_the_frames_each_epoch() -> None:
    sampler = MemberBatchSampler(num_frames=6, num_members=2, batch_size=4, seed=0)
    first_epoch = [sampler.member_batch(m, 0) + sampler.member_batch(m, 1)[:2] for m in range(2)]
    for keys in first_epoch:
        assert sorted(index for index, _ in keys) == list(range(6)) and {e for _, e in keys} == {0}
    assert first_epoch[0] != first_epoch[1]  # own batch order per member
    assert sampler.member_batch(0, 1)[2:] == [(i, 1) for i, _ in sampler.member_batch(0, 1)[2:]]
    assert MemberBatchSampler(6, 2, 4, 0).batch(5) == sampler.batch(5)  # a pure function of the step


def test_a_run_saved_before_an_option_existed_had_its_default() -> None:
    from gauda.segmentation.trainer import run_changes

    old = {"scheme": {"name": "gauda", "top_k": 3}, "segmentation": {"steps": 400}, "demo": {"jobs": 2}}
    new = {"scheme": {"name": "gauda", "top_k": 3, "mixing": "replace"}, "segmentation": {"steps": 800}}
    defaults = {"scheme": {"name": "default", "top_k": 5, "mixing": "replace"}}
    # mixing added later, at its default; steps may change; demo is no segmenter slice
    assert run_changes(old, new, defaults) == []
    assert run_changes(old, new) == ["scheme.mixing"]  # without the defaults, a lacking key differs
    appended = {**new, "scheme": {**new["scheme"], "mixing": "append"}}
    assert run_changes(old, appended, defaults) == ["scheme.mixing"]  # not the behaviour the run had
    new["scheme"]["top_k"] = 5
    assert run_changes(old, new, defaults) == ["scheme.top_k"]
