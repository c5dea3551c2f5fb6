"""The experiment grid: every (scheme, classic augmentation, seed) run trained, then scored on the test
split; finished runs are found and reused, stopped runs resumed, so a re-run continues where it stopped.

Each run lives in ``OUT/runs/<scheme>[-aug]-seed<k>/`` as an ordinary ``gauda train segmenter`` run
folder (with its ``evaluation_test.json``), so any one of them can be inspected or re-evaluated alone.
The first scheme's runs save their state just before the first validation, and the other schemes' runs
of the same seed start there when it is on disk (``fork``): until its first validation every scheme trains
the same steps, so each such run is the one trained from step 0, bit for bit, less those steps' time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from gauda.augmentation.config import EXPERIMENT_SCHEMES, base_scheme, scheme_variant, segmenter_defaults
from gauda.augmentation.training import check_scheme, train_segmenter
from gauda.config import ConfigError, to_dict
from gauda.io import atomic_write_json
from gauda.presets import GaudaConfig
from gauda.segmentation.evaluate import evaluate_run
from gauda.segmentation.trainer import FORK_FILE, TrainingHook, run_changes
from gauda.workers import Job, run_jobs

logger = logging.getLogger(__name__)
EVALUATION_FILE = "evaluation_test.json"


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid and one seed."""

    scheme: str
    aug: bool
    seed: int

    @property
    def column(self) -> str:
        """The table column: scheme, with ``+aug`` for classic augmentation."""
        return f"{self.scheme}+aug" if self.aug else self.scheme

    @property
    def name(self) -> str:
        return f"{self.scheme}{'-aug' if self.aug else ''}-seed{self.seed}"


def plan_runs(schemes: Sequence[str], augs: Sequence[bool], seeds: Sequence[int]) -> list[RunSpec]:
    """The grid, scheme-major (all seeds of one column run before the next column)."""
    unknown = [s for s in schemes if s not in EXPERIMENT_SCHEMES]
    if unknown or not schemes:
        raise ConfigError(
            f"--schemes {','.join(schemes)}: expected a list of {', '.join(EXPERIMENT_SCHEMES)}"
        )
    if len(set(schemes)) != len(schemes):
        raise ConfigError(f"--schemes {','.join(schemes)}: a scheme is named twice")
    if not seeds:
        raise ConfigError("--seeds: expected at least one seed")
    return [RunSpec(s, a, k) for s in schemes for a in augs for k in seeds]


def run_config(base: GaudaConfig, spec: RunSpec, generator: str | None) -> GaudaConfig:
    """The configuration of one run: ``base`` with the run's scheme (or variant), augmentation and seed."""
    data = replace(base.data, augment=replace(base.data.augment, enabled=spec.aug))
    uses_generator = base_scheme(spec.scheme) == "gauda"
    scheme = replace(
        scheme_variant(base.scheme, spec.scheme), generator=generator if uses_generator else None
    )
    return replace(base, data=data, segmentation=replace(base.segmentation, seed=spec.seed), scheme=scheme)


def _check_reusable(run_dir: Path, config: GaudaConfig) -> None:
    """A run folder found on disk must hold this run: refuse one trained with another configuration."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    changed = run_changes(yaml.safe_load(saved.read_text()) or {}, to_dict(config), segmenter_defaults())
    if changed:
        raise ConfigError(
            f"--out: {run_dir} holds a run with another configuration ({', '.join(changed)}); "
            "choose a new --out, or delete that run folder to redo it"
        )


def train_and_evaluate(
    config: GaudaConfig,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    extra_hooks: Sequence[TrainingHook] = (),
    fork: Path | None = None,
    save_fork: bool = False,
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) one segmenter into ``run_dir`` and score its best checkpoint
    on the test split; returns ``evaluation_test.json`` (every frame's scores, the training summary).
    ``extra_hooks`` join the scheme's (e.g. ``SplitCurve`` for the test split's curves); ``fork`` (a run's
    ``FORK_FILE``, used when it exists) and ``save_fork`` as in ``train_segmenter``."""
    evaluation_path = run_dir / EVALUATION_FILE
    start = time.perf_counter()
    if fork is not None and not fork.is_file():
        logger.info("%s: no %s, training from step 0 (the same run, without the shared steps' saving)",
                    run_dir.name, fork)  # fmt: skip
        fork = None
    summary = train_segmenter(config, run_dir, resume=resume, progress=progress, extra_hooks=extra_hooks,
                              fork=fork, save_fork=save_fork)  # fmt: skip
    evaluate_run(run_dir, config.data, config.segmentation, "test", "best", progress=progress)
    evaluation = json.loads(evaluation_path.read_text())
    evaluation["training"] = {
        **summary,
        "wall_seconds_with_evaluation": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(evaluation_path, evaluation)
    return evaluation


def held_out_evaluation(
    config: GaudaConfig, run_dir: Path, seed: int, progress: bool = True
) -> dict[str, Any]:
    """Score a finished run on every frame of newly rendered synthetic videos (``data.synthetic.seed`` =
    ``seed``) and write ``evaluation_heldout-seed<seed>.json``; returns it with the run's training
    summary. Frames of many more videos than the test split, so the rare classes count."""
    if config.data.dataset != "synthetic":
        raise ConfigError(f"--held-out-seed {seed}: only the synthetic dataset can render new videos")
    if seed == config.data.synthetic.seed:
        raise ConfigError(
            f"--held-out-seed {seed}: the seed of the training videos (data.synthetic.seed); expected another"
        )
    data = replace(config.data, synthetic=replace(config.data.synthetic, seed=seed))
    name = f"heldout-seed{seed}"
    evaluate_run(run_dir, data, config.segmentation, "all", "best", progress=progress, name=name)
    path = run_dir / f"evaluation_{name}.json"
    evaluation = json.loads(path.read_text())
    evaluation["training"] = json.loads((run_dir / EVALUATION_FILE).read_text()).get("training")
    return evaluation


def run_one(
    base: GaudaConfig,
    spec: RunSpec,
    generator: str | None,
    out: Path,
    progress: bool = True,
    held_out_seed: int | None = None,
    fork_from: RunSpec | None = None,
) -> dict[str, Any]:
    """Train (or resume) and evaluate one run; reuse its evaluation when it was trained to
    ``segmentation.steps`` already. With ``held_out_seed``, the evaluation returned is the one on newly
    rendered videos (``held_out_evaluation``) instead of the test split's. ``fork_from``: the run (of the
    first scheme) whose state before its first validation this one starts from when it is on disk; None:
    this run is a first scheme's and saves that state."""
    config = run_config(base, spec, generator)
    run_dir = out / "runs" / spec.name
    _check_reusable(run_dir, config)
    evaluation_path = run_dir / EVALUATION_FILE
    evaluation = None
    if evaluation_path.is_file():
        found = json.loads(evaluation_path.read_text())
        # segmentation.steps may grow on a re-run (a resumable option): then the run trains on
        if (found.get("training") or {}).get("step") == config.segmentation.steps:
            logger.info("%s: finished already, reusing %s", spec.name, evaluation_path)
            evaluation = found
    if evaluation is None:
        resume = (run_dir / "last.safetensors").is_file()
        fork = out / "runs" / fork_from.name / FORK_FILE if fork_from else None
        evaluation = train_and_evaluate(
            config, run_dir, resume, progress, fork=fork, save_fork=fork_from is None
        )
    if held_out_seed is None:
        return evaluation
    held_out_path = run_dir / f"evaluation_heldout-seed{held_out_seed}.json"
    if held_out_path.is_file() and held_out_path.stat().st_mtime >= evaluation_path.stat().st_mtime:
        held_out = json.loads(held_out_path.read_text())
        held_out["training"] = evaluation.get("training")
        return held_out
    return held_out_evaluation(config, run_dir, held_out_seed, progress)


def run_grid(
    base: GaudaConfig,
    runs: Sequence[RunSpec],
    out: str | Path,
    generator: str | None = None,
    progress: bool = True,
    jobs: int = 1,
    held_out_seed: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Every run of the grid (run name -> its test evaluation with every frame's scores, or its
    evaluation on newly rendered videos with ``held_out_seed``); with ``jobs`` > 1, that many runs at a
    time in worker processes (``gauda.workers``)."""
    out = Path(out)
    if any(base_scheme(spec.scheme) == "gauda" for spec in runs):
        check_scheme(run_config(base, RunSpec("gauda", False, 0), generator))
    results: dict[str, dict[str, Any]] = {}
    first = runs[0].scheme if runs else None
    sources = {spec.name: None if spec.scheme == first else replace(spec, scheme=first) for spec in runs}
    if min(jobs, len(runs)) > 1:
        specs = {spec.name: spec for spec in runs}

        def finished(name: str, evaluation: dict[str, Any]) -> None:
            results[name] = evaluation
            logger.info("experiment: %s finished (%d of %d)", name, len(results), len(runs))

        run_jobs(
            [Job(spec.name) for spec in runs],
            lambda name: (
                run_one,
                (base, specs[name], generator, out, progress, held_out_seed, sources[name]),
            ),
            finished,
            min(jobs, len(runs)),
            headline=lambda: f"experiment: {len(results)} of {len(runs)} runs finished",
        )
        return {spec.name: results[spec.name] for spec in runs}
    for number, spec in enumerate(runs, 1):
        logger.info("experiment run %d/%d: %s", number, len(runs), spec.name)
        results[spec.name] = run_one(base, spec, generator, out, progress, held_out_seed, sources[spec.name])
    return results
