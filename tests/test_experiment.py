"""The experiment runner (``gauda experiment``): effect sizes, the paper's table, the grid and its reuse."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from test_schemes_training import GAUDA
from test_segmentation_cli import run_cli
from tiny_runs import tiny_config, tiny_overrides

from gauda.augmentation.uncertainty_guided import CHOICES_FILE
from gauda.config import ConfigError
from gauda.experiment import runner
from gauda.experiment.experiment import EXPERIMENT_FILE, run_experiment
from gauda.experiment.report import columns_of, gauda_comparisons, markdown_table, result_table
from gauda.experiment.runner import EVALUATION_FILE, RunSpec, plan_runs, run_config
from gauda.experiment.statistics import cohens_d, compare_frames, video_bootstrap
from gauda.segmentation.trainer import FORK_FILE

# -- statistics -------------------------------------------------------------------------------------------


def test_cohens_d_of_hand_computed_groups() -> None:
    # both groups have sample variance 1, so s_pooled = 1 and d is the difference of the means
    assert cohens_d(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0])) == pytest.approx(1.0)
    # variances 4 and 0: s_pooled = sqrt((4 + 0) / 2), difference 4 - 1
    assert cohens_d(np.array([2.0, 4.0, 6.0]), np.array([1.0, 1.0, 1.0])) == pytest.approx(3 / math.sqrt(2))


def test_cohens_d_is_positive_when_the_first_group_is_larger() -> None:
    a, b = np.array([0.6, 0.7, 0.9, 0.8]), np.array([0.5, 0.4, 0.6, 0.7])
    assert cohens_d(a, b) > 0
    assert cohens_d(b, a) == pytest.approx(-cohens_d(a, b))


def test_cohens_d_without_spread_is_infinite_or_zero() -> None:
    ones, zeros = np.ones(3), np.zeros(3)
    assert cohens_d(ones, zeros) == math.inf
    assert cohens_d(zeros, ones) == -math.inf
    assert cohens_d(ones, ones) == 0.0
    assert cohens_d(np.array([2.0]), np.array([1.0])) == math.inf  # one value each: no spread to estimate


def test_compare_frames_leaves_out_frames_missing_or_unscored_on_either_side() -> None:
    a = {"f1": 0.5, "f2": 0.7, "f3": None, "f4": 0.9, "f5": math.nan, "only_a": 0.1}
    b = {"f1": 0.4, "f2": 0.6, "f3": 0.5, "f4": 0.6, "f5": 0.2, "only_b": 0.3}
    comparison = compare_frames(a, b)
    assert comparison["num_frames"] == 3  # f1, f2, f4
    assert comparison["mean_difference"] == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    x, y = np.array([0.5, 0.7, 0.9]), np.array([0.4, 0.6, 0.6])
    assert comparison["cohens_d"] == pytest.approx(cohens_d(x, y))


@pytest.mark.parametrize(
    ("a", "b", "num_frames"),
    [
        ({"f1": 0.5}, {"f1": 0.4}, 1),
        ({"f1": 0.5, "f2": None}, {"f1": 0.4, "f2": 0.3}, 1),
        ({}, {"f1": 0.4}, 0),
    ],
)
def test_compare_frames_with_fewer_than_two_frames_has_no_statistics(a, b, num_frames) -> None:
    assert compare_frames(a, b) == {
        "num_frames": num_frames,
        "mean_difference": None,
        "cohens_d": None,
        "wilcoxon_p": None,
    }


def test_compare_frames_wilcoxon_p_matches_scipy_on_the_paired_frames() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.3, 0.9, 12), rng.uniform(0.2, 0.8, 12)
    names = [f"frame{k:02d}" for k in range(12)]
    comparison = compare_frames(dict(zip(names, x, strict=True)), dict(zip(names, y, strict=True)))
    assert comparison["num_frames"] == 12
    assert comparison["wilcoxon_p"] == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert comparison["mean_difference"] == pytest.approx(float(np.mean(x - y)))


def test_compare_frames_of_identical_scores_has_no_p_value() -> None:
    scores = {"f1": 0.5, "f2": 0.7, "f3": 0.2}
    comparison = compare_frames(scores, dict(scores))
    assert comparison["mean_difference"] == 0.0 and comparison["cohens_d"] == 0.0
    assert comparison["wilcoxon_p"] is None  # every difference is zero: the test is undefined


# -- the report -------------------------------------------------------------------------------------------

CLASSES = ["Background", "Tool"]


def evaluation(
    background: float | None, tool: float | None, frames: dict[str, float | None] | None = None
) -> dict[str, Any]:
    """An ``evaluation_test.json`` of two classes; the summary rows are the two classes' numbers."""
    known = [v for v in (background, tool) if v is not None]
    mean = float(np.mean(known)) if known else None
    return {
        "per_class": {"Background": {"iou": background}, "Tool": {"iou": tool}},
        "label_mean_iou": mean,
        "sample_mean_iou": mean,
        "sample_median_iou": background,
        "frames": {name: {"iou": iou} for name, iou in (frames or {}).items()},
    }


def test_result_table_has_the_mean_and_sample_std_over_seeds_of_every_row() -> None:
    runs = plan_runs(["default", "adaptive"], [False], [0, 1, 2])
    results = {
        "default-seed0": evaluation(0.5, 0.2),
        "default-seed1": evaluation(0.6, None),
        "default-seed2": evaluation(0.7, 0.4),
        "adaptive-seed0": evaluation(0.8, None),
        "adaptive-seed1": evaluation(0.8, None),
        "adaptive-seed2": evaluation(0.8, None),
    }
    table = result_table(runs, results, CLASSES)
    assert list(table) == [*CLASSES, "label mean", "sample mean", "sample median"]
    assert all(list(cells) == ["default", "adaptive"] for cells in table.values())
    background = table["Background"]["default"]
    assert background["mean"] == pytest.approx(0.6) and background["std"] == pytest.approx(0.1)
    assert background["values"] == [0.5, 0.6, 0.7]
    tool = table["Tool"]["default"]  # the seed without an estimate is left out, but kept in values
    assert tool["mean"] == pytest.approx(0.3) and tool["std"] == pytest.approx(math.sqrt(0.02))
    assert tool["values"] == [0.2, None, 0.4]
    assert table["Tool"]["adaptive"] == {"mean": None, "std": None, "values": [None, None, None]}
    assert table["Background"]["adaptive"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert table["label mean"]["default"]["mean"] == pytest.approx(np.mean([0.35, 0.6, 0.55]))


def test_result_table_of_one_seed_has_zero_spread() -> None:
    runs = plan_runs(["default"], [False], [3])
    table = result_table(runs, {"default-seed3": evaluation(0.5, 0.25)}, CLASSES)
    assert table["Tool"]["default"] == {"mean": 0.25, "std": 0.0, "values": [0.25]}


def test_markdown_table_puts_the_best_mean_of_each_row_in_bold() -> None:
    runs = plan_runs(["default", "adaptive"], [False], [0, 1])
    results = {
        "default-seed0": evaluation(0.5, 0.2),
        "default-seed1": evaluation(0.7, 0.4),
        "adaptive-seed0": evaluation(0.8, None),
        "adaptive-seed1": evaluation(0.8, None),
    }
    table = result_table(runs, results, CLASSES)
    lines = markdown_table(table, columns_of(runs)).splitlines()
    assert lines[0] == "| class | default | adaptive |"
    assert "| Background | 0.600 ± 0.141 | **0.800 ± 0.000** |" in lines
    tool = lines.index("| Tool | **0.300 ± 0.141** | – |")  # the only mean is the best; no estimate: a dash
    assert lines[tool + 1 :] == [
        "| |  |  |",  # a blank row sets the summary rows apart
        "| label mean | 0.450 ± 0.141 | **0.800 ± 0.000** |",
        "| sample mean | 0.450 ± 0.141 | **0.800 ± 0.000** |",
        "| sample median | 0.600 ± 0.141 | **0.800 ± 0.000** |",
    ]
    single = markdown_table(result_table(runs[:2], results, CLASSES), ["default"])
    assert "**" not in single  # one column: nothing to compare


def test_columns_of_keeps_the_plan_order() -> None:
    runs = plan_runs(["gauda", "default"], [False, True], [0, 1])
    assert columns_of(runs) == ["gauda", "gauda+aug", "default", "default+aug"]


def test_gauda_comparisons_pair_gauda_with_each_baseline_of_the_same_augmentation() -> None:
    runs = plan_runs(["default", "adaptive", "gauda"], [False, True], [0, 1])
    frames = {"default": 0.4, "adaptive": 0.5, "gauda": 0.6}
    results = {}
    for spec in runs:
        base = frames[spec.scheme] + (0.1 if spec.aug else 0.0) + 0.02 * spec.seed
        scores = {f"f{k}": base + 0.01 * k * (1 + spec.seed) for k in range(6)}
        results[spec.name] = evaluation(base, base, {**scores, "unscored": None})
    comparisons = gauda_comparisons(runs, results)
    assert [(c["scheme"], c["baseline"]) for c in comparisons] == [
        ("gauda", "default"),
        ("gauda", "adaptive"),
        ("gauda+aug", "default+aug"),
        ("gauda+aug", "adaptive+aug"),
    ]
    first = comparisons[0]
    assert first["num_frames"] == 6  # the frame without a score is left out
    assert first["mean_difference"] == pytest.approx(0.2)  # the frames averaged over both seeds first
    assert first["cohens_d"] > 0 and first["wilcoxon_p"] is not None


def test_gauda_comparisons_are_empty_without_gauda() -> None:
    runs = plan_runs(["default", "adaptive"], [False], [0])
    results = {spec.name: evaluation(0.5, 0.5, {"f0": 0.5, "f1": 0.6}) for spec in runs}
    assert gauda_comparisons(runs, results) == []


# -- the plan ---------------------------------------------------------------------------------------------


def test_plan_runs_is_scheme_major_over_augmentation_and_seeds() -> None:
    runs = plan_runs(["default", "gauda"], [False, True], [0, 1])
    assert [spec.name for spec in runs] == [
        "default-seed0", "default-seed1", "default-aug-seed0", "default-aug-seed1",
        "gauda-seed0", "gauda-seed1", "gauda-aug-seed0", "gauda-aug-seed1",
    ]  # fmt: skip


def test_run_spec_name_and_column() -> None:
    assert RunSpec("gauda", True, 2).name == "gauda-aug-seed2"
    assert RunSpec("gauda", True, 2).column == "gauda+aug"
    assert RunSpec("adaptive", False, 0).name == "adaptive-seed0"
    assert RunSpec("adaptive", False, 0).column == "adaptive"


@pytest.mark.parametrize(
    ("schemes", "seeds", "message"),
    [
        (
            ["default", "magic"],
            [0],
            "--schemes default,magic: expected a list of default, adaptive, uncertainty, gauda, gauda-",
        ),
        ([], [0], "--schemes : expected a list of"),
        (
            ["default", "adaptive", "default"],
            [0],
            "--schemes default,adaptive,default: a scheme is named twice",
        ),
        (["default"], [], "--seeds: expected at least one seed"),
    ],
    ids=["unknown", "none", "repeated", "no seeds"],
)
def test_plan_runs_refuses_unknown_repeated_or_missing_schemes_and_seeds(schemes, seeds, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_runs(schemes, [False], seeds)


def test_run_config_sets_scheme_augmentation_and_seed_and_the_generator_only_for_gauda(tmp_path) -> None:
    base = tiny_config(tmp_path)
    config = run_config(base, RunSpec("adaptive", True, 3), "some/diffusion")
    assert config.scheme.name == "adaptive" and config.scheme.generator is None
    assert config.data.augment.enabled and config.segmentation.seed == 3
    config = run_config(base, RunSpec("gauda", False, 1), "some/diffusion")
    assert config.scheme.generator == "some/diffusion" and not config.data.augment.enabled


# -- the command line -------------------------------------------------------------------------------------


def test_experiment_dry_run_prints_the_configuration_and_the_planned_runs(capsys, monkeypatch, tmp_path):
    args = ["experiment", "--out", str(tmp_path / "out"), "--schemes", "default,adaptive", "--seeds", "2"]
    code, out, _ = run_cli([*args, "--dry-run"], capsys, monkeypatch)
    assert code == 0 and "segmentation:" in out and "model: ensemble" in out
    names = "default-seed0, default-seed1, default-aug-seed0, default-aug-seed1, adaptive-seed0"
    assert f"# 8 runs: {names}, adaptive-seed1, adaptive-aug-seed0, adaptive-aug-seed1" in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--aug", "maybe"], "--aug 'maybe': expected one of off, on, both"),
        (["--schemes", "default,magic"], "--schemes default,magic"),
        (["--seeds", "0"], "--seeds"),
    ],
    ids=["aug", "schemes", "seeds"],
)
def test_experiment_with_a_bad_option_is_a_clear_error(option, message, capsys, monkeypatch, tmp_path):
    args = ["experiment", "--out", str(tmp_path / "out"), *option, "--dry-run"]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and message in err and out == ""
    assert not (tmp_path / "out").exists()


def test_experiment_with_gauda_and_no_generator_is_refused_before_any_run(capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(["experiment", "--out", str(tmp_path / "out")], capsys, monkeypatch)
    assert code == 2 and "--generator" in err and "diffusion run" in err
    assert not (tmp_path / "out").exists()


# -- end to end -------------------------------------------------------------------------------------------

SCHEMES = ["default", "adaptive"]


@dataclass(frozen=True)
class Finished:
    """A finished experiment: default and adaptive, no classic augmentation, seeds 0 and 1."""

    cache: Path
    out: Path
    experiment: dict[str, Any]

    def copy(self, to: Path) -> Path:
        return Path(shutil.copytree(self.out, to))

    def cli_args(self, out: Path, *extra: str) -> list[str]:
        args = ["experiment", "--out", str(out), "--schemes", ",".join(SCHEMES), "--aug", "off"]
        args += ["--seeds", "2", "--json"]
        for override in [*tiny_overrides(self.cache), *extra]:
            args += ["--set", override]
        return args


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    root = tmp_path_factory.mktemp("experiment")
    runs = plan_runs(SCHEMES, [False], [0, 1])
    experiment = run_experiment(tiny_config(root / "cache"), runs, root / "out", progress=False)
    return Finished(root / "cache", root / "out", experiment)


def evaluation_files(out: Path) -> dict[str, tuple[int, str]]:
    return {
        path.parent.name: (path.stat().st_mtime_ns, path.read_text())
        for path in sorted((out / "runs").glob(f"*/{EVALUATION_FILE}"))
    }


@pytest.mark.slow
def test_experiment_writes_the_table_comparisons_and_curves(finished: Finished) -> None:
    experiment = json.loads((finished.out / EXPERIMENT_FILE).read_text())
    assert experiment == finished.experiment
    assert experiment["columns"] == SCHEMES and experiment["seeds"] == [0, 1]
    assert experiment["comparisons"] == []  # no gauda column to compare
    assert experiment["generator"] is None and experiment["config"]["segmentation"]["steps"] == 4
    class_names = list(experiment["table"])[:-3]
    assert class_names and list(experiment["table"])[-3:] == ["label mean", "sample mean", "sample median"]
    for cells in experiment["table"].values():
        assert list(cells) == SCHEMES and all(len(cell["values"]) == 2 for cell in cells.values())
    names = ["default-seed0", "default-seed1", "adaptive-seed0", "adaptive-seed1"]
    assert list(experiment["runs"]) == names
    for name, run in experiment["runs"].items():
        assert run["training"]["step"] == 4 and run["scheme"] == name.split("-")[0]
        # adaptive started from default's state before the first validation of the same seed
        fork = run["training"].get("forked_from")
        assert fork == (None if name.startswith("default") else str(
            finished.out / "runs" / name.replace("adaptive", "default") / FORK_FILE))  # fmt: skip
        saved = json.loads((finished.out / "runs" / name / EVALUATION_FILE).read_text())
        assert saved["split"] == "test" and saved["frames"]
        assert saved["label_mean_iou"] == run["label_mean_iou"]
    label_mean = experiment["table"]["label mean"]["default"]
    assert label_mean["values"] == [experiment["runs"][n]["label_mean_iou"] for n in names[:2]]
    table = (finished.out / "table.md").read_text()
    assert "| class | default | adaptive |" in table and "| sample median |" in table
    assert (finished.out / "frame_iou_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_experiment_rerun_reuses_every_finished_run(finished, capsys, monkeypatch, tmp_path) -> None:
    out = finished.copy(tmp_path / "out")
    before = evaluation_files(out)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runner, "train_segmenter", refuse)
    monkeypatch.setattr(runner, "evaluate_run", refuse)
    code, printed, _ = run_cli(finished.cli_args(out), capsys, monkeypatch)
    assert code == 0
    assert evaluation_files(out) == before
    assert json.loads(printed)["table"] == finished.experiment["table"]
    assert json.loads((out / EXPERIMENT_FILE).read_text())["table"] == finished.experiment["table"]


@pytest.mark.slow
def test_experiment_prints_the_table_without_json(finished, capsys, monkeypatch, tmp_path) -> None:
    out = finished.copy(tmp_path / "out")
    args = [a for a in finished.cli_args(out) if a != "--json"]
    code, printed, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "label mean" in printed and "adaptive" in printed
    assert "experiment.json" in printed


@pytest.mark.slow
def test_experiment_in_a_folder_of_another_configuration_is_refused(
    finished, capsys, monkeypatch, tmp_path
) -> None:
    out = finished.copy(tmp_path / "out")
    before = evaluation_files(out)
    args = finished.cli_args(out, "segmentation.learning_rate=0.002")
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "segmentation.learning_rate" in err
    assert str(out / "runs" / "default-seed0") in err.replace(" ", "")  # rich may break a path
    assert evaluation_files(out) == before
    with pytest.raises(ConfigError, match="default-seed0"):
        run_experiment(
            tiny_config(finished.cache, extra=("segmentation.learning_rate=0.002",)),
            plan_runs(SCHEMES, [False], [0, 1]),
            out,
            progress=False,
        )


@pytest.mark.slow
def test_experiment_rerun_with_more_steps_trains_on_and_evaluates_again(finished, tmp_path) -> None:
    out = finished.copy(tmp_path / "out")
    before = evaluation_files(out)
    runs = plan_runs(["default"], [False], [0])
    more = tiny_config(finished.cache, extra=("segmentation.steps=6",))
    experiment = run_experiment(more, runs, out, progress=False)
    assert experiment["runs"]["default-seed0"]["training"]["step"] == 6
    after = evaluation_files(out)
    assert after["default-seed0"] != before["default-seed0"]
    assert after["adaptive-seed0"] == before["adaptive-seed0"]  # not planned this time: left alone


@pytest.mark.slow
def test_experiment_with_gauda_compares_it_with_the_baseline(tiny_generator, tmp_path) -> None:
    config = tiny_generator.config(extra=GAUDA)
    runs = plan_runs(["default", "gauda", "gauda-random"], [False], [0, 1])
    experiment = run_experiment(
        config, runs, tmp_path / "out", str(tiny_generator.diffusion), progress=False, held_out_seed=7
    )
    assert experiment["columns"] == ["default", "gauda", "gauda-random"]
    assert experiment["generator"] == str(tiny_generator.diffusion)
    assert experiment["scored_on"].endswith("data.synthetic.seed=7")
    comparison, control = experiment["comparisons"]
    assert comparison["scheme"] == "gauda" and comparison["baseline"] == "default"
    assert control["baseline"] == "gauda-random"
    assert comparison["num_frames"] >= 2 and isinstance(comparison["cohens_d"], float)
    p = comparison["wilcoxon_p"]
    assert p is None or 0 < p <= 1  # None only when gauda and default scored every frame alike
    assert set(comparison["seed_differences"]["per_seed"]) == {"0", "1"}
    assert comparison["video_bootstrap"]["num_videos"] >= 2
    run = tmp_path / "out" / "runs" / "gauda-random-seed1"
    assert (run / CHOICES_FILE).is_file() and (run / "evaluation_heldout-seed7.json").is_file()
    held_out = json.loads((run / "evaluation_heldout-seed7.json").read_text())
    assert held_out["split"] == "all" and all(f["video"] for f in held_out["frames"].values())
    assert held_out["num_frames"] == 10  # every frame of the 5 newly rendered videos of 2 frames


def test_compare_frames_without_spread_writes_no_infinity_into_json() -> None:
    names = ["a", "b", "c"]
    comparison = compare_frames(dict.fromkeys(names, 1.0), dict.fromkeys(names, 0.0))
    assert comparison["cohens_d"] is None and "no spread" in comparison["cohens_d_note"]
    json.loads(json.dumps(comparison, allow_nan=False))  # strict JSON


@pytest.mark.slow
def test_experiment_with_two_jobs_trains_every_run_in_workers(finished, tmp_path) -> None:
    runs = plan_runs(SCHEMES, [False], [0, 1])
    experiment = run_experiment(tiny_config(finished.cache), runs, tmp_path / "out", progress=False, jobs=2)
    assert list(experiment["runs"]) == list(finished.experiment["runs"])
    for name, run in experiment["runs"].items():
        assert run["training"]["step"] == 4
        # one thread in a worker against the test's threads: the sums' order, not the runs, differs
        assert run["label_mean_iou"] == pytest.approx(
            finished.experiment["runs"][name]["label_mean_iou"], abs=0.05
        )
    assert (tmp_path / "out" / "table.md").is_file()


def test_video_bootstrap_resamples_videos_and_brackets_the_mean() -> None:
    a = {"v1-0": 0.9, "v1-1": 0.8, "v2-0": 0.6, "v3-0": 0.7, "v3-1": 0.75}
    b = {name: value - 0.1 for name, value in a.items()}
    videos = {name: name.split("-")[0] for name in a}
    result = video_bootstrap(a, b, videos, num_resamples=500)
    assert result["num_videos"] == 3 and result["num_frames"] == 5
    assert result["mean_difference"] == pytest.approx(0.1)
    assert result["low"] == pytest.approx(0.1) and result["high"] == pytest.approx(0.1)  # no spread
    b["v2-0"] = 0.9  # one video where a loses
    spread = video_bootstrap(a, b, videos, num_resamples=500)
    assert spread["low"] < spread["mean_difference"] < spread["high"] and spread["low"] < 0
    assert video_bootstrap(a, b, dict.fromkeys(a, "one"))["mean_difference"] is None  # one video
