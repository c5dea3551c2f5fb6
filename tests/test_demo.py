"""``gauda demo`` end to end in the test-sized configuration: every key of results.json, reuse of finished
stages, resuming an interrupted one, ``--force``, and the report opened in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from test_cli_data import run_cli
from tiny_runs import tiny_overrides

from gauda.config import ConfigError
from gauda.pipeline import stages
from gauda.pipeline.report import REPORT_FILE
from gauda.pipeline.runner import RESULTS_FILE, STAGE_FILE

STAGES = [
    "data", "autoencoder_mask", "autoencoder_image", "diffusion", "samples", "segmentation_default",
    "segmentation_adaptive", "segmentation_gauda", "reconstruction", "generator", "toy",
]  # fmt: skip
DEMO = [
    "demo.samples_per_class=2", "demo.generator_num_samples=9", "demo.guidance_sweep=[2.0, 1.0]",
    "demo.toy_seeds=1", "toy.steps=100", "toy.num_test=200", "diffusion.sampling_steps=2",
]  # fmt: skip
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def demo_args(out: Path, cache: Path, *extra: str) -> list[str]:
    args = ["demo", "--out", str(out)]
    for override in [*tiny_overrides(cache, steps=4), *DEMO]:
        args += ["--set", override]
    return [*args, *extra]


def _span(state: dict) -> tuple[float, float]:
    began = datetime.fromisoformat(state["started"]).timestamp()
    return began, began + state["seconds"]


def stage_states(out: Path) -> dict[str, dict]:
    return {name: json.loads((out / name / STAGE_FILE).read_text()) for name in STAGES}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """One finished demo, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("demo")
    monkeypatch = pytest.MonkeyPatch()
    capsys_free = demo_args(root / "demo", root / "cache")
    monkeypatch.setattr("sys.argv", ["gauda", *capsys_free])
    from gauda.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main()
    monkeypatch.undo()
    assert exit_info.value.code in (0, None)
    return root / "demo"


@pytest.mark.slow
def test_results_json_has_every_documented_key(demo_run) -> None:
    results = json.loads((demo_run / RESULTS_FILE).read_text())
    assert set(results) >= {"data", "autoencoders", "segmentation", "generator", "toy", "timings", "config"}
    assert set(results["autoencoders"]) == {"image", "mask"}
    assert {"psnr", "ssim", "l1", "codebook_usage"} <= set(results["autoencoders"]["image"])
    assert {"per_class_iou", "mean_iou", "codebook_usage"} <= set(results["autoencoders"]["mask"])
    kept = results["reconstruction"]
    assert set(kept["image"]["per_class"]["Grasper"]) == {"iou_original", "iou_reconstructed", "ratio"}
    # newly rendered videos (the next synthetic seed's training split), never the frames trained on
    assert (
        kept["image"]["split"] == kept["mask"]["split"] == "train"
        and "Blood" in kept["mask"]["per_class_iou"]
    )
    seed = results["config"]["data"]["synthetic"]["seed"]
    assert kept["image"]["data"]["synthetic_seed"] == kept["mask"]["data"]["synthetic_seed"] == seed + 1
    assert set(results["segmentation"]) == {"default", "adaptive", "gauda"}
    for evaluation in results["segmentation"].values():
        assert {"per_class", "label_mean_iou", "sample_mean_iou", "sample_median_iou", "training"} <= set(
            evaluation
        )
    # the schemes after the first started from its state before the first validation
    training = {scheme: evaluation["training"] for scheme, evaluation in results["segmentation"].items()}
    assert "forked_at_step" not in training["default"]
    assert training["adaptive"]["forked_at_step"] == training["gauda"]["forked_at_step"] >= 1
    generator = results["generator"]
    assert {
        "fid",
        "kid_mean",
        "kid_std",
        "feature_extractor",
        "ro_iou",
        "so_iou",
        "hit_rate",
        "sweep",
    } <= set(generator)
    assert [entry["guidance"] for entry in generator["sweep"]] == [2.0, 1.0]
    assert {"sampling", "augmentation", "seeds"} <= set(results["toy"])
    assert list(results["timings"]) == STAGES and all(s >= 0 for s in results["timings"].values())
    assert len(results["samples"]["classes"]) == len(results["data"]["classes"])
    assert results["reused"] == []
    # The tiny preset runs two stages at a time (demo.jobs); some did overlap, and every stage waited for
    # the stages it reads.
    assert results["jobs"] == 2 and results["wall_seconds"] > 0
    spans = {name: _span(state) for name, state in stage_states(demo_run).items()}
    assert any(
        spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1] for a in STAGES for b in STAGES if a < b
    )
    for name, after in [("diffusion", "autoencoder_mask"), ("diffusion", "autoencoder_image"),
                        ("generator", "segmentation_default"), ("autoencoder_mask", "data")]:  # fmt: skip
        assert spans[name][0] >= spans[after][1] - 1.0, (name, after)  # "finished" is to the second
    # Stage folders were renamed into place: nothing they or the results record points at a work folder.
    for path in [demo_run / RESULTS_FILE, *demo_run.rglob("*.json"), *demo_run.rglob("*.yaml")]:
        assert ".partial" not in path.read_text(), path
    assert not list(demo_run.glob(".*.partial"))


@pytest.mark.slow
def test_a_rerun_reuses_every_stage_and_force_redoes_one(demo_run, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "demo"
    shutil.copytree(demo_run, out)
    # The copy records the original's paths; a rerun must reuse it all the same (nothing reads them).
    before = stage_states(out)
    cache = demo_run.parent / "cache"
    code, _, err = run_cli(demo_args(out, cache), capsys, monkeypatch)
    assert code == 0, err
    assert json.loads((out / RESULTS_FILE).read_text())["reused"] == STAGES
    assert stage_states(out) == before

    code, _, err = run_cli(demo_args(out, cache, "--force", "generator"), capsys, monkeypatch)
    assert code == 0, err
    after = stage_states(out)
    assert [name for name in STAGES if after[name] != before[name]] == ["generator"]

    # A changed option redoes only the stages that read it (here the simulation).
    code, _, err = run_cli([*demo_args(out, cache), "--set", "demo.toy_seeds=2"], capsys, monkeypatch)
    assert code == 0, err
    changed = stage_states(out)
    assert [name for name in STAGES if changed[name] != after[name]] == ["toy"]
    assert json.loads((out / "toy" / "toy.json").read_text())["seeds"] == [0, 1]


@pytest.mark.slow
def test_an_interrupted_stage_resumes_from_its_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    out, cache = tmp_path / "demo", tmp_path / "cache"
    real = stages.train_diffusion
    calls = []

    def interrupted_once(*args, **kwargs):
        calls.append(kwargs.get("resume"))
        if len(calls) == 1:
            real(*args, **kwargs, stop_at=2)  # a checkpoint at step 2, as a killed job leaves
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "train_diffusion", interrupted_once)
    one_process = ("--set", "demo.jobs=1")  # the stages in this process, where the patch applies
    code, _, _ = run_cli(demo_args(out, cache, *one_process), capsys, monkeypatch)
    assert code == 130  # click's "Aborted!" on a KeyboardInterrupt
    assert (out / ".diffusion.partial" / "last.safetensors").is_file() and not (out / "diffusion").exists()
    assert (out / "autoencoder_image" / STAGE_FILE).is_file()

    code, _, err = run_cli(demo_args(out, cache, *one_process), capsys, monkeypatch)
    assert code == 0, err
    assert calls == [False, True]
    states = stage_states(out)
    assert states["diffusion"]["resumed"] is True
    assert json.loads((out / RESULTS_FILE).read_text())["reused"] == [
        "data",
        "autoencoder_mask",
        "autoencoder_image",
    ]


def test_force_of_an_unknown_stage_is_a_clear_error(tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(
        demo_args(tmp_path / "demo", tmp_path / "cache", "--force", "diffusoin"), capsys, monkeypatch
    )
    assert code == 2 and "--force diffusoin" in err and "autoencoder_mask" in err
    assert not (tmp_path / "demo" / "data").exists()


def test_dry_run_lists_the_stages(tmp_path, capsys, monkeypatch) -> None:
    code, out, _ = run_cli(demo_args(tmp_path / "demo", tmp_path / "cache", "--dry-run"), capsys, monkeypatch)
    assert code == 0 and "demo:" in out and f"# stages: {', '.join(STAGES)}" in out
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    BROWSER is None and not os.environ.get("GAUDA_REQUIRE_BROWSER"),
    reason="no chromium (apt-get install chromium); CI sets GAUDA_REQUIRE_BROWSER=1 and installs it",
)
def test_the_report_opens_in_a_headless_browser_with_every_image_loaded(demo_run, tmp_path) -> None:
    assert BROWSER is not None, "GAUDA_REQUIRE_BROWSER is set but no chromium is installed"
    report = demo_run / REPORT_FILE
    text = report.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
    ]  # fmt: skip
    done = subprocess.run(
        [BROWSER, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    )
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body is not None, done.stderr[-2000:]
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))
    assert attributes.get("data-checked") == "yes", "the page's load check did not run"
    total = int(attributes["data-images-total"])
    # data, 2 reconstructions, the segmenter on reconstructions, a grid per class, class and frame curves,
    # GAUDA's choices, guidance sweep, 3 toy figures
    classes = json.loads((demo_run / RESULTS_FILE).read_text())["data"]["classes"]
    assert total == 11 + len(classes) and attributes["data-images-loaded"] == str(total)
    assert json.loads(attributes["data-errors"].replace("&quot;", '"')) == []
    for heading in ("Data", "Autoencoders", "Generated pairs per class", "Segmentation", "Timings"):
        assert f"<h2>{heading}" in done.stdout


def test_the_report_has_test_curves_per_class_the_requests_and_a_verdict(demo_run) -> None:
    text = (demo_run / REPORT_FILE).read_text()
    assert (demo_run / "report_figures" / "class_curves.png").is_file()
    assert "test IoU of each class over training, rarest first" in text
    assert "<h3>Verdict</h3>" in text and "On the test label mean, " in text
    assert "classes asked for" in text and "generated pairs used in all" in text
    with (demo_run / "segmentation_gauda" / "metrics.csv").open() as handle:
        names = {line.split(",")[1] for line in handle}
    assert "test/label_mean_iou" in names and "test/iou/Blood" in names


def test_the_verdict_is_written_from_the_scores() -> None:
    from gauda.pipeline.verdict import rare_classes, verdict

    def scores(label_mean: float, **iou: float) -> dict:
        return {"label_mean_iou": label_mean, "per_class": {name: {"iou": v} for name, v in iou.items()}}

    segmentation = {
        "default": scores(0.60, Liver=0.90, Blood=0.0, Hook=0.10),
        "adaptive": scores(0.70, Liver=0.91, Blood=0.30, Hook=0.50),
        "gauda": scores(0.72, Liver=0.89, Blood=0.40, Hook=float("nan")),
    }
    rare = rare_classes([{"name": "Liver", "frames": 90}, {"name": "Hook", "frames": 5},
                         {"name": "Blood", "frames": 9}, {"name": "Gone", "frames": 0}], count=2)  # fmt: skip
    assert rare == ["Hook", "Blood"]
    text = verdict(segmentation, rare)
    assert text[0] == (
        "On the test label mean, GAUDA leads with 0.720 (+0.020 over Adaptive Sampling, +0.120 over default "
        "training)."
    )
    assert (
        text[1] == "Hook (rare): Adaptive Sampling is best (default training 0.100, Adaptive Sampling 0.500)."
    )
    assert "Blood (rare): GAUDA is best" in text[2]
    assert text[3] == "The frequent classes are within 0.020 of each other across schemes (widest: Liver)."
    assert "GAUDA against default training: +0.120 label mean, +0.400 on the rare classes." in text
    assert "GAUDA against Adaptive Sampling: +0.020 label mean, +0.100 on the rare classes." in text


def test_training_scale_scales_every_training_stage_and_its_cadences() -> None:
    from gauda.pipeline.budget import scale_training
    from gauda.presets import resolve_config

    config = resolve_config(
        "tiny", overrides=["mask_autoencoder.dead_code_every=0", "image_autoencoder.segmentation_start=100"]
    )
    assert scale_training(config, 1.0) is config
    half = scale_training(config, 0.5)
    assert half.mask_autoencoder.steps == config.mask_autoencoder.steps // 2
    assert half.mask_autoencoder.adversarial_start == round(config.mask_autoencoder.adversarial_start / 2)
    assert half.mask_autoencoder.dead_code_every == 0  # "never" stays never
    assert half.image_autoencoder.steps == config.image_autoencoder.steps // 2
    assert half.image_autoencoder.segmentation_start == 50  # the segmentation term starts as late, in share
    assert (half.diffusion.steps, half.diffusion.warmup_steps) == (
        config.diffusion.steps // 2,
        round(config.diffusion.warmup_steps / 2),
    )
    assert half.segmentation.steps == config.segmentation.steps // 2
    assert half.segmentation.val_every == round(config.segmentation.val_every / 2)
    assert (half.data, half.toy, half.scheme) == (config.data, config.toy, config.scheme)
    tiny = scale_training(config, 0.001)
    assert tiny.segmentation.steps == 1 and tiny.segmentation.val_every == 1
    per_kind = resolve_config("tiny", overrides=["demo.training_scale=0.5", "demo.segmentation_scale=1",
                                                 "demo.diffusion_scale=0.25",
                                                 "demo.image_autoencoder_scale=null"])  # fmt: skip
    scaled = scale_training(per_kind)
    assert scaled.segmentation == per_kind.segmentation  # its own scale, 1: untouched
    assert scaled.diffusion.steps == round(per_kind.diffusion.steps / 4)
    assert scaled.image_autoencoder.steps == per_kind.image_autoencoder.steps // 2  # training_scale
    longer = scale_training(resolve_config("tiny", overrides=["demo.segmentation_scale=1.25"]))
    assert (longer.segmentation.steps, longer.segmentation.val_every) == (500, 125)  # more than the preset
    with pytest.raises(ConfigError, match=r"demo\.diffusion_scale: expected a number > 0, got 0"):
        resolve_config("tiny", overrides=["demo.diffusion_scale=0"])


def test_the_time_estimate_follows_the_measured_speed_of_long_stages() -> None:
    from gauda.pipeline.runner import Estimate, build_stages
    from gauda.presets import resolve_config

    config = resolve_config("tiny")
    stages_ = {stage.name: stage for stage in build_stages(config)}
    estimate = Estimate(stages_.values(), config)
    total = estimate.remaining()
    estimate.done(stages_["data"], 0.1)  # a cached data stage: no evidence about the machine
    after_data = estimate.remaining()
    assert after_data == pytest.approx(total - stages_["data"].reference_seconds(config))
    mask = stages_["autoencoder_mask"]
    estimate.done(mask, 2 * mask.reference_seconds(config))  # this machine is half as fast
    expected = 2 * (after_data - mask.reference_seconds(config))
    assert estimate.remaining() == pytest.approx(expected)


def test_the_report_cites_an_experiment_over_seeds_beside_the_demo() -> None:
    from gauda.pipeline.verdict import experiment_sentences

    def cell(mean: float, std: float) -> dict:
        return {"mean": mean, "std": std, "values": []}

    experiment = {
        "model": "ensemble",
        "columns": ["default", "gauda"],
        "seeds": [0, 1, 2],
        "scored_on": "all frames of newly rendered videos, data.synthetic.seed=1",
        "table": {
            "Blood": {"default": cell(0.0, 0.0), "gauda": cell(0.159, 0.203)},
            "Hook": {"default": {"mean": None, "std": None, "values": []}, "gauda": cell(0.5, 0.1)},
            "label mean": {"default": cell(0.599, 0.004), "gauda": cell(0.68, 0.029)},
        },
    }
    text = experiment_sentences(experiment, ["Hook", "Blood"])
    assert text == [
        "The experiment over 3 seeds (ensemble, scored on all frames of newly rendered videos, "
        "data.synthetic.seed=1): label mean default training 0.599 ± 0.004, GAUDA 0.680 ± 0.029.",
        "Its rare classes: Hook: default training no score, GAUDA 0.500 ± 0.100; "
        "Blood: default training 0.000 ± 0.000, GAUDA 0.159 ± 0.203.",
    ]


def test_a_demo_experiment_that_cannot_be_read_is_refused_before_any_stage(tmp_path, capsys, monkeypatch):
    args = ["demo", "--out", str(tmp_path / "demo"), "--set", f"demo.experiment={tmp_path}", "--dry-run"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "demo.experiment" in err and "experiment.json" in err
    assert not (tmp_path / "demo").exists()
