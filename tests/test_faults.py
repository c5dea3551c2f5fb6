"""Faults: runs killed with SIGKILL and resumed, non-finite losses, full disks, corrupted checkpoints,
two runs in one folder, read-only folders. Each gives a clear error and loses nothing written before."""

from __future__ import annotations

import ctypes
import errno
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import gauda_process, process_env, run_gauda, set_args, tiny_config, tiny_overrides

import gauda.checkpoint
from gauda.autoencoders.trainer import train_autoencoder
from gauda.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gauda.config import ConfigError, load_yaml
from gauda.diffusion.trainer import train_diffusion
from gauda.runlock import FolderLockedError, folder_lock

# -- killed and resumed --------------------------------------------------------------------------------


def checkpoint_step(path: Path) -> int | None:
    try:
        return int(load_checkpoint(path)["step"])
    except CheckpointError:  # not written yet
        return None


def kill_after(args: list[str], last: Path, step: int, timeout: float = 300) -> int:
    """Start ``gauda ARGS``, SIGKILL it once its checkpoint ``last`` has reached ``step``; returns the
    step of the checkpoint it left (it kept training while being watched: any step, or mid-save)."""
    process = subprocess.Popen(
        gauda_process(args), env=process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"finished before it was killed: {process.stderr.read()[-2000:]}"
            reached = checkpoint_step(last)
            if reached is not None and reached >= step:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    left = checkpoint_step(last)
    assert left is not None
    return left


def kill_and_resume(args: list[str], resume: list[str], tmp_path: Path, steps: int) -> tuple[Path, Path]:
    """An uninterrupted run and one killed at a random step then resumed; returns their folders."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_gauda([*args, "--out", str(full)])
    # a new kill step each run, and the seed to repeat it (pytest shows this line when the test fails)
    seed = int(os.environ.get("GAUDA_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    target = random.Random(seed).randint(1, steps // 2)
    print(f"killed at checkpoint step >= {target}; GAUDA_FAULT_SEED={seed} repeats this kill step")
    left = kill_after([*args, "--out", str(killed)], killed / "last.safetensors", target)
    assert left < steps, "the run ended before the kill; make it longer"
    run_gauda([*resume, "--out", str(killed)])
    assert not list(killed.glob(".*.tmp")), "a temporary file of the killed run was left behind"
    return full, killed


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


@pytest.mark.slow
def test_a_killed_diffusion_run_resumes_to_the_uninterrupted_weights(tiny_generator, tmp_path) -> None:
    steps = 60
    overrides = [*tiny_overrides(tiny_generator.cache, steps=steps), "diffusion.checkpoint_every=1"]
    args = ["train", "diffusion", "--image-autoencoder", str(tiny_generator.image_autoencoder),
            "--mask-autoencoder", str(tiny_generator.mask_autoencoder), *set_args(overrides)]  # fmt: skip
    full, killed = kill_and_resume(args, ["train", "diffusion", "--resume"], tmp_path, steps)
    first, second = load_checkpoint(full / "last.safetensors"), load_checkpoint(killed / "last.safetensors")
    for part in ("model", "ema"):
        assert_same_tensors(first[part], second[part])
    assert_same_tensors(load_checkpoint(full / "model.safetensors")["model"],
                        load_checkpoint(killed / "model.safetensors")["model"])  # fmt: skip


@pytest.mark.slow
def test_a_killed_autoencoder_run_resumes_to_the_uninterrupted_weights(tmp_path) -> None:
    steps = 40
    overrides = [*tiny_overrides(tmp_path / "cache"), f"mask_autoencoder.steps={steps}",
                 "mask_autoencoder.checkpoint_every=1", "mask_autoencoder.dead_code_every=3",
                 "mask_autoencoder.adversarial_start=5"]  # fmt: skip
    args = ["train", "autoencoder", "--modality", "mask", *set_args(overrides)]
    resume = ["train", "autoencoder", "--modality", "mask", "--resume"]
    full, killed = kill_and_resume(args, resume, tmp_path, steps)
    first, second = load_checkpoint(full / "last.safetensors"), load_checkpoint(killed / "last.safetensors")
    for part in ("model", "discriminator"):
        assert_same_tensors(first[part], second[part])


@pytest.mark.slow
def test_a_killed_segmentation_run_resumes_to_the_uninterrupted_weights(tmp_path) -> None:
    steps = 30
    overrides = [
        *tiny_overrides(tmp_path / "cache"),
        f"segmentation.steps={steps}",
        "segmentation.val_every=1",
    ]
    args = ["train", "segmenter", *set_args(overrides)]
    full, killed = kill_and_resume(args, ["train", "segmenter", "--resume"], tmp_path, steps)
    first, second = load_checkpoint(full / "last.safetensors"), load_checkpoint(killed / "last.safetensors")
    assert first["step"] == second["step"] == steps
    assert_same_tensors(first["model"], second["model"])


# -- non-finite losses ---------------------------------------------------------------------------------


# An absurd learning rate sends every trainer's weights to +-inf after its first step: the public way to
# make a loss non-finite, deterministically (the runs are seeded), without patching the trainers' insides.
ABSURD = "learning_rate=1e30"


def test_a_non_finite_diffusion_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
    tiny_generator, tmp_path
) -> None:
    config = tiny_config(tiny_generator.cache, extra=("diffusion.checkpoint_every=1", f"diffusion.{ABSURD}"))
    with pytest.raises(
        FloatingPointError,
        match=r"diffusion, step 1: loss (nan|inf); lower diffusion.learning_rate .*last good checkpoint",
    ):
        train_diffusion(config, tmp_path, tiny_generator.image_autoencoder, tiny_generator.mask_autoencoder,
                        progress=False)  # fmt: skip
    assert load_checkpoint(tmp_path / "last.safetensors")["step"] == 1
    assert not (tmp_path / "model.safetensors").exists()


def test_a_non_finite_autoencoder_loss_stops_with_the_step_and_the_stage(tmp_path) -> None:
    config = tiny_config(
        tmp_path / "cache", extra=("mask_autoencoder.checkpoint_every=1", f"mask_autoencoder.{ABSURD}")
    )
    with pytest.raises(FloatingPointError, match=r"mask autoencoder, step 1: loss (nan|inf)"):
        train_autoencoder(config, "mask", tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "last.safetensors")["step"] == 1


@pytest.mark.parametrize("val_every", [1, 2])
def test_a_non_finite_segmentation_loss_stops_with_the_step(tmp_path, val_every) -> None:
    from gauda.augmentation.training import train_segmenter

    config = tiny_config(
        tmp_path / "cache", extra=(f"segmentation.{ABSURD}", f"segmentation.val_every={val_every}")
    )
    kept = "the last good checkpoint is" if val_every == 1 else "no checkpoint was written before it"
    with pytest.raises(
        FloatingPointError,
        match=rf"segmentation, step 2: loss (nan|inf); lower segmentation.learning_rate .*{kept}",
    ):
        train_segmenter(config, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "last.safetensors").is_file() == (val_every == 1)  # the validation at step 1


# -- full disks and corrupted files --------------------------------------------------------------------


def test_a_full_disk_while_saving_leaves_the_previous_checkpoint_intact(
    tiny_generator, tmp_path, monkeypatch
) -> None:
    real_save, calls = gauda.checkpoint.save_file, {"n": 0}

    def full_disk(tensors, filename, metadata=None):  # the disk fills up at the third checkpoint
        calls["n"] += ".last.safetensors." in filename
        if calls["n"] < 3:
            return real_save(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"half a checkpoint")  # what a disk filling up leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(gauda.checkpoint, "save_file", full_disk)
    config = tiny_config(tiny_generator.cache, extra=("diffusion.checkpoint_every=1",))
    with pytest.raises(
        CheckpointError, match=r"could not be written \(No space left on device\); the previous"
    ):
        train_diffusion(config, tmp_path, tiny_generator.image_autoencoder, tiny_generator.mask_autoencoder,
                        progress=False)  # fmt: skip
    assert load_checkpoint(tmp_path / "last.safetensors")["step"] == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_a_corrupted_checkpoint_is_refused_by_its_checksum(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.arange(1000.0)})
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside the tensor data: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"c\.safetensors: its contents do not match the checksum"):
        load_checkpoint(path)


@pytest.mark.slow
def test_resuming_from_a_truncated_checkpoint_is_a_clear_error(tmp_path) -> None:
    overrides = [*tiny_overrides(tmp_path / "cache"), "image_autoencoder.steps=2"]
    run = tmp_path / "run"
    run_gauda(["train", "autoencoder", "--modality", "image", "--out", str(run), *set_args(overrides)])
    last = run / "last.safetensors"
    last.write_bytes(last.read_bytes()[:200])
    done = subprocess.run(gauda_process(["train", "autoencoder", "--modality", "image", "--resume",
                                         "--out", str(run)]), env=process_env(), capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 2
    assert "last.safetensors: not a readable safetensors checkpoint" in done.stderr
    assert (run / "model.safetensors").is_file()  # the finished model is untouched


# -- configurations ------------------------------------------------------------------------------------


def test_a_configuration_is_parsed_never_executed(tmp_path) -> None:
    marker = tmp_path / "executed"
    config = tmp_path / "evil.yaml"
    config.write_text(f"data: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=r"evil\.yaml: not valid YAML"):
        load_yaml(config)
    assert not marker.exists()


def test_an_invalid_precision_names_the_option_and_the_choices(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"diffusion\.precision: expected fp32 or bf16, got 'fp16'"):
        tiny_config(tmp_path, extra=("diffusion.precision=fp16",))


# -- folders ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_runs_in_one_folder_do_not_interleave(tmp_path) -> None:
    run = tmp_path / "run"
    overrides = set_args([*tiny_overrides(tmp_path / "cache"), "image_autoencoder.steps=2"])
    with folder_lock(run):  # a run holds the folder
        done = subprocess.run(gauda_process(["train", "autoencoder", "--modality", "image", "--out", str(run),
                                             *overrides]), env=process_env(), capture_output=True,
                              text=True)  # fmt: skip
        assert done.returncode == 2
        assert f"another gauda run (process {os.getpid()}) is writing there" in " ".join(done.stderr.split())
        assert sorted(p.name for p in run.iterdir()) == [".gauda.lock"]  # nothing of the second run
        with pytest.raises(FolderLockedError, match="choose another folder"), folder_lock(run):
            pass
    with folder_lock(run):  # released when the holder ends
        pass


def test_taking_a_lock_removes_what_a_killed_writer_left(tmp_path) -> None:
    stale, kept = tmp_path / ".last.safetensors.x1y2.tmp", tmp_path / "last.safetensors"
    stale.write_bytes(b"half")
    kept.write_bytes(b"whole")
    with folder_lock(tmp_path):
        assert not stale.exists() and kept.read_bytes() == b"whole"


def _without_root_file_powers() -> None:
    """In a child of root: drop the capabilities that let root write through file permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, effective from the exec on
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.slow
def test_a_read_only_output_folder_is_a_clear_error_and_keeps_its_files(tmp_path) -> None:
    kept = tmp_path / "runs" / "metrics.json"  # what an earlier run left
    kept.parent.mkdir()
    kept.write_text("{}")
    kept.parent.chmod(0o555)
    try:
        overrides = set_args([*tiny_overrides(tmp_path / "cache"), "image_autoencoder.steps=2"])
        args = ["train", "autoencoder", "--modality", "image", "--out", str(kept.parent / "run"), *overrides]
        done = subprocess.run(
            gauda_process(args),
            env=process_env(),
            capture_output=True,
            text=True,
            preexec_fn=_without_root_file_powers if os.geteuid() == 0 else None,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert "not writable (Permission denied); expected a folder this user may write to" in done.stderr
        assert sorted(p.name for p in kept.parent.iterdir()) == ["metrics.json"]
        assert kept.read_text() == "{}"
    finally:
        kept.parent.chmod(0o755)
