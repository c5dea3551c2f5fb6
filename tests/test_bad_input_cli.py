"""Bad input at the command line: refused with one line that names the option or file, exit status 2,
and nothing already written lost (output folders that hold inputs or runs, non-finite numbers, runs of
another stage, moved projects, pickles)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import label_grid, run_cli, write_folder_dataset
from tiny_runs import set_args, tiny_config, tiny_overrides

from gauda.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gauda.config import ConfigError
from gauda.data.folder import write_folder
from gauda.diffusion.runs import AUTOENCODERS_FILE, load_diffusion
from gauda.runlock import LOCK_FILE, folder_lock


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what a refused command must leave as it was (the lock
    file aside: whoever takes the lock writes its process id there)."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE)
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def sample_args(run: Path, out: Path, *extra: str) -> list[str]:
    return ["sample", "--run", str(run), "--out", str(out), "--num", "2", "--device", "cpu", *extra]


# -- output folders ------------------------------------------------------------------------------------


def test_sample_refuses_to_overwrite_the_run_it_reads_or_a_folder_holding_it(
    tiny_generator, capsys, monkeypatch
) -> None:
    before = tree(tiny_generator.diffusion)
    for out in (tiny_generator.diffusion, tiny_generator.diffusion.parent, tiny_generator.image_autoencoder):
        code, _, err = run_cli(sample_args(tiny_generator.diffusion, out, "--overwrite"), capsys, monkeypatch)
        assert code == 2, err
        assert f"--out {out}: is or holds" in err and "which this command reads" in err
    assert tree(tiny_generator.diffusion) == before


def test_overwrite_replaces_only_a_dataset_never_a_run(segmenter_run, tiny_generator, tmp_path, capsys,
                                                       monkeypatch) -> None:  # fmt: skip
    run = tmp_path / "seg"
    shutil.copytree(segmenter_run, run)
    before = tree(run)
    export = ["data", "export", "--out", str(run), "--overwrite",
              *set_args(tiny_overrides(tiny_generator.cache))]  # fmt: skip
    code, _, err = run_cli(export, capsys, monkeypatch)
    assert code == 2 and "holds a training run" in err and "replaces only a dataset" in err
    code, _, err = run_cli(sample_args(tiny_generator.diffusion, run, "--overwrite"), capsys, monkeypatch)
    assert code == 2 and "holds a training run" in err
    assert tree(run) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    code, _, err = run_cli(sample_args(tiny_generator.diffusion, notes, "--overwrite"), capsys, monkeypatch)
    assert code == 2 and "holds no classes.json" in err and (notes / "todo.txt").read_text() == "mine"


def test_overwrite_respects_the_lock_of_a_run_being_trained(tiny_generator, tmp_path, capsys,
                                                            monkeypatch) -> None:  # fmt: skip
    out = tmp_path / "run"
    with folder_lock(out):  # a training run that has only just started: its lock and config
        (out / "config.yaml").write_text("data: {}\n")
        code, _, err = run_cli(sample_args(tiny_generator.diffusion, out, "--overwrite"), capsys, monkeypatch)
        assert code == 2 and "holds a training run (.gauda.lock)" in err
        assert (out / "config.yaml").read_text() == "data: {}\n"


def test_overwrite_of_a_dataset_still_works(tiny_generator, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "pairs"
    assert run_cli(sample_args(tiny_generator.diffusion, out), capsys, monkeypatch)[0] == 0
    code, _, err = run_cli(sample_args(tiny_generator.diffusion, out, "--overwrite", "--seed", "1"),
                           capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "sample_report.json").read_text())["seed"] == 1
    assert not (out / ".gauda.lock").exists()  # the writer's own lock does not stay in the dataset


def test_an_unwritable_output_is_found_before_the_work(tiny_generator, tmp_path, capsys, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_cli(sample_args(tiny_generator.diffusion, blocker / "pairs"), capsys, monkeypatch)
    assert code == 2 and f"--out {blocker / 'pairs'}: cannot write in {blocker}" in err
    assert "sampled" not in err  # refused before sampling, not after
    export = ["data", "export", "--out", str(blocker / "data"), *set_args(tiny_overrides(tmp_path / "c"))]
    code, _, err = run_cli(export, capsys, monkeypatch)
    assert code == 2 and "cannot write in" in err
    assert not (tmp_path / "c").exists()  # no frame was rendered or cached


def test_a_lock_taker_removes_a_killed_writers_dataset_folder_but_not_a_live_one(tmp_path) -> None:
    stale = tmp_path / ".samples.k1ll.tmp"
    (stale / "images").mkdir(parents=True)
    with write_folder(tmp_path / "live", ["a"]) as writer:  # written while the run folder is locked
        writer.add("f", "v", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8))
        with folder_lock(tmp_path):
            assert not stale.exists()
            assert writer.staging.is_dir()
    assert (tmp_path / "live" / "images" / "f.png").is_file()


# -- numbers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_guidance_that_is_not_a_finite_number_at_least_0_is_refused(
    value, tiny_generator, segmenter_run, tmp_path, capsys, monkeypatch
) -> None:
    code, _, err = run_cli(sample_args(tiny_generator.diffusion, tmp_path / "s", "--guidance", value),
                           capsys, monkeypatch)  # fmt: skip
    assert code == 2 and "--guidance: expected a finite number >= 0" in err
    assert not (tmp_path / "s").exists()
    args = ["evaluate", "generator", "--run", str(tiny_generator.diffusion),
            "--segmenter", str(segmenter_run), "--out", str(tmp_path / "e"), "--num", "2",
            "--guidance", value]  # fmt: skip
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "guidance: expected a finite number >= 0" in err


def test_configuration_floats_must_be_finite(tmp_path) -> None:
    for value in (".nan", ".inf", "-.inf"):
        with pytest.raises(ConfigError, match=r"scheme\.temperature: expected a finite number"):
            tiny_config(tmp_path, extra=(f"scheme.temperature={value}",))


def test_inspect_refuses_a_size_below_1(capsys, monkeypatch) -> None:
    for size in ("-5", "0"):
        code, _, err = run_cli(["data", "inspect", "--size", size], capsys, monkeypatch)
        assert code == 2 and "--size" in err and "Traceback" not in err


# -- evaluations on other data -----------------------------------------------------------------------------


def test_a_score_on_other_data_never_replaces_the_runs_own(
    segmenter_run, tmp_path, capsys, monkeypatch
) -> None:
    run = tmp_path / "seg"
    shutil.copytree(segmenter_run, run)
    assert run_cli(["evaluate", "segmenter", "--run", str(run), "--json"], capsys, monkeypatch)[0] == 0
    own = (run / "evaluation_test.json").read_bytes()
    args = ["evaluate", "segmenter", "--run", str(run), "--json", "--set", "data.synthetic.seed=5"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert (run / "evaluation_test.json").read_bytes() == own
    assert (run / "evaluation_test-synthetic.seed=5.json").is_file()
    code, _, _ = run_cli([*args, "--out", str(tmp_path / "elsewhere.json")], capsys, monkeypatch)
    assert code == 0 and (tmp_path / "elsewhere.json").is_file()


# -- runs of another stage, moved runs, foreign files ------------------------------------------------------


def test_resuming_into_a_run_of_another_stage_names_both_and_writes_nothing(
    tiny_generator, segmenter_run, tmp_path, capsys, monkeypatch
) -> None:
    diffusion, segmenter = tmp_path / "diffusion", tmp_path / "seg"
    shutil.copytree(tiny_generator.diffusion, diffusion)
    shutil.copytree(segmenter_run, segmenter)
    before = tree(diffusion), tree(segmenter)
    cases = [
        (["train", "segmenter", "--resume", "--out", str(diffusion)], "holds a diffusion run"),
        (["train", "autoencoder", "--modality", "mask", "--resume", "--out", str(segmenter)],
         "holds a segmentation run"),
        (["train", "diffusion", "--resume", "--out", str(segmenter)], "holds a segmentation run"),
    ]  # fmt: skip
    for args, expected in cases:
        code, _, err = run_cli(args, capsys, monkeypatch)
        assert code == 2 and expected in err and "--resume --out" in err, err
    assert (tree(diffusion), tree(segmenter)) == before
    image = tmp_path / "image"
    shutil.copytree(tiny_generator.image_autoencoder, image)
    args = ["train", "autoencoder", "--modality", "mask", "--resume", "--out", str(image)]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "holds an image autoencoder run" in err


def test_a_generator_of_other_classes_is_refused_before_training(tiny_generator, tmp_path) -> None:
    from gauda.augmentation.training import train_segmenter

    frames = {f"f{i}": (f"v{i}", label_grid([0, 1], 16, 16)) for i in range(6)}
    root = write_folder_dataset(tmp_path, ["tissue", "tool"], frames)
    config = tiny_config(tiny_generator.cache, extra=(
        "data.dataset=folder", f"data.root={root}", "data.split.fractions=[0.5, 0.25, 0.25]",
        "scheme.name=gauda", f"scheme.generator={tiny_generator.diffusion}",
    ))  # fmt: skip
    with pytest.raises(ConfigError, match=r"scheme\.generator .*trained on classes .*\['tissue', 'tool'\]"):
        train_segmenter(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "split.json").exists()


def test_a_moved_project_finds_its_own_autoencoders_and_a_moved_autoencoder_can_be_repointed(
    tiny_generator, tmp_path
) -> None:
    project = tmp_path / "project"
    for name in ("image", "mask", "diffusion"):
        shutil.copytree(tiny_generator.diffusion.parent / name, project / name)
    _, info = load_diffusion(project / "diffusion")
    assert info["autoencoders"] == {m: str((project / m).resolve()) for m in ("image", "mask")}
    (project / "image").rename(tmp_path / "image-elsewhere")
    with pytest.raises(ConfigError, match=r"autoencoders\.json: the run's image autoencoder \.\./image .*"
                                          r"if it moved, set \"image\" in"):  # fmt: skip
        load_diffusion(project / "diffusion")
    recorded = project / "diffusion" / AUTOENCODERS_FILE
    recorded.write_text(json.dumps({**json.loads(recorded.read_text()), "image": "../../image-elsewhere"}))
    _, info = load_diffusion(project / "diffusion")
    assert info["autoencoders"]["image"] == str((tmp_path / "image-elsewhere").resolve())


def test_a_pickled_checkpoint_is_named_as_such(tmp_path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"weights\.pth: a PyTorch pickle \(torch\.save\).*safetensors"):
        load_checkpoint(path)


def test_a_non_finite_loss_is_one_line_naming_the_option_and_only_a_checkpoint_that_exists(
    tiny_generator, tmp_path, capsys, monkeypatch
) -> None:
    args = ["train", "diffusion", "--out", str(tmp_path / "run"),
            "--image-autoencoder", str(tiny_generator.image_autoencoder),
            "--mask-autoencoder", str(tiny_generator.mask_autoencoder),
            *set_args([*tiny_overrides(tiny_generator.cache), "diffusion.learning_rate=1e20"])]  # fmt: skip
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2, err
    assert (
        "loss inf; lower diffusion.learning_rate" in err or "loss nan; lower diffusion.learning_rate" in err
    )
    assert "no checkpoint was written before it" in err and "Traceback" not in err


def test_an_autoencoder_resumed_after_its_last_checkpoint_logs_each_step_once(tmp_path) -> None:
    from gauda.autoencoders.trainer import train_autoencoder

    run = tmp_path / "run"
    extra = ("mask_autoencoder.steps=12", "mask_autoencoder.checkpoint_every=10")
    train_autoencoder(tiny_config(tmp_path / "cache", extra=extra), "mask", run, progress=False)
    state = load_checkpoint(run / "last.safetensors")
    state["step"] = 10  # as a run killed after its checkpoint of step 10 leaves it, having logged row 10
    save_checkpoint(run / "last.safetensors", state)
    train_autoencoder(tiny_config(tmp_path / "cache", extra=extra), "mask", run, resume=True, progress=False)
    with (run / "metrics.csv").open() as handle:
        rows = [(int(row["step"]), row["name"]) for row in csv.DictReader(handle)]
    assert len(rows) == len(set(rows)) and {s for s, _ in rows} == {0, 10, 11}


def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    code, _, err = run_cli(["train", "autoencoder", "--modality", "mask", "--out", str(run), "--resume",
                            "--set", "data.image_size=32"], capsys, monkeypatch)  # fmt: skip
    assert code == 2 and "drop --set" in err
    code, _, err = run_cli(["train", "diffusion", "--out", str(run), "--resume", "--image-autoencoder", "x"],
                           capsys, monkeypatch)  # fmt: skip
    assert code == 2 and "drop --image-autoencoder" in err
    code, _, err = run_cli(["train", "segmenter", "--out", str(run), "--resume"], capsys, monkeypatch)
    assert code == 2 and "config.yaml not found; expected a run started with gauda train segmenter" in err


def test_a_segmenter_run_of_another_version_resumes_and_is_reused(tmp_path, capsys, monkeypatch) -> None:
    """A key that another gauda version wrote into a slice the segmenter never reads (here a renamed demo
    option) neither refuses --resume nor the experiment's reuse of the run."""
    from gauda.experiment.runner import _check_reusable
    from gauda.presets import resolve_config

    run = tmp_path / "run"
    overrides = set_args(
        [o for o in tiny_overrides(tmp_path / "cache") if o.startswith(("data.", "segmentation."))]
    )
    code, _, err = run_cli(["train", "segmenter", "--out", str(run), *overrides], capsys, monkeypatch)
    assert code == 0, err
    saved = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(saved.replace("demo:\n", "demo:\n  autoencoder_scale: 0.5\n"))
    config = resolve_config("tiny", overrides=[o for o in overrides if o != "--set"])
    _check_reusable(run, config)  # no error: the demo slice is not the run's
    resume = ["train", "segmenter", "--out", str(run), "--resume", "--set", "segmentation.steps=6"]
    code, _, err = run_cli(resume, capsys, monkeypatch)
    assert code == 0, err


def test_an_autoencoder_run_of_another_version_resumes(tmp_path, capsys, monkeypatch) -> None:
    run = tmp_path / "mask"
    overrides = set_args([o for o in tiny_overrides(tmp_path / "cache") if o.startswith(("data.", "mask_"))])
    code, _, err = run_cli(["train", "autoencoder", "--modality", "mask", "--out", str(run), *overrides],
                           capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    saved = (run / "config.yaml").read_text().replace("demo:\n", "demo:\n  autoencoder_scale: 0.5\n")
    (run / "config.yaml").write_text(saved.replace("  steps: 2\n", "  steps: 4\n", 1))  # mask_autoencoder's
    code, _, err = run_cli(["train", "autoencoder", "--modality", "mask", "--out", str(run), "--resume"],
                           capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    from gauda.checkpoint import load_checkpoint

    assert load_checkpoint(run / "last.safetensors")["step"] == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--resume",), "--fork with --resume"),
        (("--save-fork",), "--fork with --save-fork"),
        ((), "no fork.safetensors; expected a run trained with --save-fork"),
    ],
)
def test_a_fork_with_resume_or_without_its_file_is_refused(
    tmp_path, capsys, monkeypatch, extra, message
) -> None:
    args = ["train", "segmenter", "--out", str(tmp_path / "run"), "--fork", str(tmp_path), *extra]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and message in err and not (tmp_path / "run").exists()
