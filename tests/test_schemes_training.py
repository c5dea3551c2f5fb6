"""The three training schemes end to end on the tiny synthetic data, with a tiny trained generator."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import torch

from gauda.augmentation.training import train_segmenter
from gauda.augmentation.uncertainty_guided import CHOICES_FILE, UncertaintyGuidedAugmentation
from gauda.cli import main
from gauda.config import ConfigError
from gauda.segmentation.evaluate import load_segmenter
from gauda.segmentation.trainer import FORK_FILE, TrainingHook

torch.set_num_threads(1)
GAUDA = (
    "scheme.num_pairs=5",
    "scheme.generation_batch_size=2",
    "scheme.top_k=2",
    "segmentation.steps=6",
    "scheme.presence_pixels=0",
    "scheme.keep_requested_frames=false",
)  # exact shares, noise-like pairs
PRESET = ("scheme.num_pairs=5", "scheme.generation_batch_size=2", "scheme.top_k=2", "segmentation.steps=6")


def gauda_config(tiny_generator, *extra: str):
    return tiny_generator.config(
        extra=("scheme.name=gauda", f"scheme.generator={tiny_generator.diffusion}", *GAUDA, *extra)
    )


class Recorder(TrainingHook):
    """Keeps every batch the loop trains on (after the scheme's hooks) and can stop the run."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.batches: dict[int, dict] = {}
        self.stop_after = stop_after

    def on_batch(self, batch, step):
        self.batches[step] = batch
        return batch

    def after_step(self, step, logs) -> None:
        if step == self.stop_after:
            raise KeyboardInterrupt


def weights(run) -> dict[str, torch.Tensor]:
    model, _ = load_segmenter(run / "last.safetensors", torch.device("cpu"))
    return model.state_dict()


def test_gauda_replaces_an_exact_share_after_each_validation_and_logs_its_choices(
    tiny_generator, tmp_path
) -> None:
    recorder = Recorder()
    summary = train_segmenter(gauda_config(tiny_generator), tmp_path, progress=False, extra_hooks=[recorder])
    assert summary["scheme"] == "gauda" and summary["step"] == 6 and summary["synthetic_wait_seconds"] >= 0
    for step, batch in recorder.batches.items():
        synthetic = (batch["index"] == -1).sum(dim=1)  # per member, batch 2 * 0.25 -> round half up = 1
        assert synthetic.tolist() == ([0, 0] if step < 2 else [1, 1]), step
    choices = json.loads((tmp_path / CHOICES_FILE).read_text())["choices"]
    assert [c["step"] for c in choices] == [2, 4, 6]
    assert all(1 <= len(c["classes"]) <= 2 for c in choices[:2])
    # nothing is generated after the last step, so the log counts no classes there
    assert [c["num_pairs"] for c in choices] == [5, 5, 0] and choices[2]["classes"] == []
    assert set(choices[0]["iou"]) == set(choices[0]["uncertainty"])  # UE_c beside IoU_c
    top = max((v, k) for k, v in choices[0]["uncertainty"].items() if v is not None)[1]
    missed = choices[0]["missed"]  # labelled but hardly predicted: first, in class order
    assert (missed[0] if missed else top) == choices[0]["classes"][0]
    assert (tmp_path / "gauda_choices.png").stat().st_size > 0
    with (tmp_path / "metrics.csv").open() as handle:
        names = {row["name"] for row in csv.DictReader(handle)}
    assert "gauda/wait_seconds" in names and any(n.startswith("gauda/chosen/") for n in names)


def test_a_fixed_seed_reproduces_a_run_of_the_preset_gauda(tiny_generator, tmp_path) -> None:
    config = tiny_generator.config(
        extra=("scheme.name=gauda", f"scheme.generator={tiny_generator.diffusion}", *PRESET)
    )
    assert config.scheme.real_sampling == "adaptive" and config.scheme.presence_pixels > 0
    train_segmenter(config, tmp_path / "a", progress=False)
    train_segmenter(config, tmp_path / "b", progress=False)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[name], b[name]) for name in a)
    choices = json.loads((tmp_path / "a" / CHOICES_FILE).read_text())["choices"]
    assert all("previous_pairs_without_class" in choice for choice in choices)


def test_asynchronous_and_synchronous_generation_train_the_same_model(tiny_generator, tmp_path) -> None:
    train_segmenter(gauda_config(tiny_generator, "scheme.asynchronous=true"), tmp_path / "a", progress=False)
    train_segmenter(gauda_config(tiny_generator, "scheme.asynchronous=false"), tmp_path / "s", progress=False)
    a, s = weights(tmp_path / "a"), weights(tmp_path / "s")
    assert all(torch.equal(a[name], s[name]) for name in a)


def test_a_stopped_gauda_run_resumes_to_the_uninterrupted_weights(tiny_generator, tmp_path) -> None:
    config = gauda_config(tiny_generator)
    train_segmenter(config, tmp_path / "whole", progress=False, extra_hooks=[Recorder()])
    with pytest.raises(KeyboardInterrupt):
        train_segmenter(config, tmp_path / "stopped", progress=False, extra_hooks=[Recorder(stop_after=5)])
    resumed = Recorder()
    train_segmenter(config, tmp_path / "stopped", resume=True, progress=False, extra_hooks=[resumed])
    assert sorted(resumed.batches) == [4, 5]  # from the checkpoint of the validation at step 4
    whole, stopped = weights(tmp_path / "whole"), weights(tmp_path / "stopped")
    assert all(torch.equal(whole[name], stopped[name]) for name in whole)


def test_curation_records_what_it_kept(tiny_generator, tmp_path) -> None:
    train_segmenter(gauda_config(tiny_generator, "scheme.curation_threshold=0.99"), tmp_path, progress=False)
    choices = json.loads((tmp_path / CHOICES_FILE).read_text())["choices"]
    assert (
        choices[0]["curation_offered"] >= 2
        and 0 <= choices[0]["curation_kept"] <= choices[0]["curation_offered"]
    )


def test_adaptive_sampling_sets_frame_weights_at_each_validation(tiny_generator, tmp_path) -> None:
    recorder = Recorder()
    config = tiny_generator.config(extra=("scheme.name=adaptive", "segmentation.steps=4"))
    summary = train_segmenter(config, tmp_path, progress=False, extra_hooks=[recorder])
    assert summary["scheme"] == "adaptive"
    from gauda.checkpoint import load_checkpoint

    sampler = load_checkpoint(tmp_path / "last.safetensors")["sampler"]
    assert sampler["weights"] is not None and len(sampler["weights"]) > 0


@pytest.mark.parametrize(
    "extra",
    [("scheme.name=uncertainty",), ("scheme.name=gauda", "scheme.real_sampling=uncertainty")],
    ids=["uncertainty", "gauda-uncertainty-weights"],
)
def test_uncertainty_sampling_and_gauda_set_the_real_frame_weights(tiny_generator, tmp_path, extra) -> None:
    config = tiny_generator.config(
        extra=(*extra, f"scheme.generator={tiny_generator.diffusion}", *PRESET, "segmentation.steps=4")
    )
    train_segmenter(config, tmp_path, progress=False)
    from gauda.checkpoint import load_checkpoint

    weights = load_checkpoint(tmp_path / "last.safetensors")["sampler"]["weights"]
    assert weights is not None and len(weights) > 0  # set at a validation (None: uniform)


def test_the_background_producer_stops_when_training_fails(tiny_generator, tmp_path, monkeypatch) -> None:
    hooks: list[UncertaintyGuidedAugmentation] = []
    original = UncertaintyGuidedAugmentation.on_train_start

    def remember(self, trainer):
        hooks.append(self)
        original(self, trainer)

    monkeypatch.setattr(UncertaintyGuidedAugmentation, "on_train_start", remember)
    with pytest.raises(KeyboardInterrupt):
        train_segmenter(
            gauda_config(tiny_generator), tmp_path, progress=False, extra_hooks=[Recorder(stop_after=3)]
        )
    assert hooks and not hooks[0].producer.alive


def _cli_error(argv, monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, "argv", ["gauda", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def test_cli_scheme_gauda_without_a_generator_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:
    error = _cli_error(
        ["train", "segmenter", "--scheme", "gauda", "--out", str(tmp_path)], monkeypatch, capsys
    )
    assert "--generator" in error and "diffusion run" in error
    missing = [
        "train",
        "segmenter",
        "--scheme",
        "gauda",
        "--generator",
        str(tmp_path / "x"),
        "--out",
        str(tmp_path),
    ]
    assert "no config.yaml there" in _cli_error(missing, monkeypatch, capsys)
    error = _cli_error(
        ["train", "segmenter", "--scheme", "magic", "--out", str(tmp_path)], monkeypatch, capsys
    )
    assert "--scheme 'magic'" in error
    assert not (tmp_path / "last.safetensors").exists()


def metric_rows(run) -> list[tuple[str, str, str]]:
    """metrics.csv without the rows that measure time."""
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [(r["step"], r["name"], r["value"]) for r in rows if "seconds" not in r["name"]]


@pytest.mark.parametrize(
    ("scheme", "model"), [("adaptive", "ensemble"), ("gauda", "ensemble"), ("adaptive", "phiseg")]
)
def test_a_run_forked_before_the_first_validation_is_the_run_trained_from_step_0(
    tiny_generator, tmp_path, scheme, model
) -> None:
    default = tiny_generator.config(extra=("segmentation.steps=4", f"segmentation.model={model}"))
    train_segmenter(default, tmp_path / "default", progress=False, save_fork=True)
    assert (tmp_path / "default" / FORK_FILE).is_file()
    generator = f"scheme.generator={tiny_generator.diffusion}"
    extra = (
        f"scheme.name={scheme}",
        generator,
        *PRESET,
        "segmentation.steps=4",
        f"segmentation.model={model}",
    )
    config = tiny_generator.config(extra=extra)
    whole, forked = Recorder(), Recorder()
    train_segmenter(config, tmp_path / "whole", progress=False, extra_hooks=[whole])
    summary = train_segmenter(config, tmp_path / "forked", progress=False, extra_hooks=[forked],
                              fork=tmp_path / "default" / FORK_FILE)  # fmt: skip
    assert summary["step"] == 4 and summary["forked_from"].endswith(FORK_FILE)
    assert sorted(forked.batches) == [2, 3] and sorted(whole.batches) == [0, 1, 2, 3]
    for name in ("last.safetensors", "best.safetensors"):
        a, b = (load_segmenter(tmp_path / run / name, torch.device("cpu"))[0].state_dict()
                for run in ("whole", "forked"))  # fmt: skip
        assert all(torch.equal(a[key], b[key]) for key in a), name
    assert metric_rows(tmp_path / "forked") == metric_rows(tmp_path / "whole")


def test_a_fork_of_other_data_or_another_step_is_refused(tiny_generator, tmp_path) -> None:
    train_segmenter(tiny_generator.config(extra=("segmentation.steps=4",)), tmp_path / "default",
                    progress=False, save_fork=True)  # fmt: skip
    fork = tmp_path / "default" / FORK_FILE
    other_model = tiny_generator.config(extra=("segmentation.steps=4", "segmentation.learning_rate=0.5"))
    with pytest.raises(ConfigError, match=r"differs from the run's in segmentation\.learning_rate"):
        train_segmenter(other_model, tmp_path / "a", progress=False, fork=fork)
    shorter = tiny_generator.config(extra=("segmentation.steps=1",))  # validates at step 1
    with pytest.raises(ConfigError, match=r"saved at step 2; expected this run's first validation step 1"):
        train_segmenter(shorter, tmp_path / "b", progress=False, fork=fork)


def test_appended_pairs_join_every_batch_and_displace_no_real_frame(tiny_generator, tmp_path) -> None:
    recorder = Recorder()
    config = gauda_config(tiny_generator, "scheme.mixing=append")
    train_segmenter(config, tmp_path, progress=False, extra_hooks=[recorder])
    for step, batch in recorder.batches.items():
        index = batch["index"]  # (M, B [+ k])
        if step < 2:
            assert index.shape[1] == 2 and (index >= 0).all(), step
        else:  # batch 2, one pair appended after the two real frames of every member
            assert index.shape[1] == 3 and (index[:, :2] >= 0).all() and (index[:, 2] == -1).all(), step
            assert batch["image"].shape[1] == batch["mask"].shape[1] == batch["classes"].shape[1] == 3
            assert all(names[2].startswith("synthetic-") for names in batch["name"])


def test_a_resumed_forked_run_still_says_where_it_started(tiny_generator, tmp_path) -> None:
    default = tiny_generator.config(extra=("segmentation.steps=4",))
    train_segmenter(default, tmp_path / "default", progress=False, save_fork=True)
    config = tiny_generator.config(extra=("scheme.name=adaptive", "segmentation.steps=4"))
    fork = tmp_path / "default" / FORK_FILE
    with pytest.raises(KeyboardInterrupt):
        train_segmenter(config, tmp_path / "forked", progress=False, extra_hooks=[Recorder(stop_after=3)],
                        fork=fork)  # fmt: skip
    summary = train_segmenter(config, tmp_path / "forked", resume=True, progress=False)
    assert summary["step"] == 4 and summary["forked_from"] == str(fork) and summary["forked_at_step"] == 2
    # a fresh run into another folder trained from step 0 says nothing of a fork
    assert "forked_from" not in train_segmenter(config, tmp_path / "plain", progress=False)
