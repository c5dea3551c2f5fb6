"""The demo's stages in order, each run once and reused while its configuration and inputs are unchanged.

OUT/<stage>/            a finished stage: its outputs and ``stage.json`` (fingerprint, result, seconds)
OUT/.<stage>.partial/   a stage at work; a re-run with the same fingerprint resumes it from its
                        checkpoint, one with another fingerprint starts it afresh
OUT/config.yaml         the configuration as given (``demo.training_scale`` not yet applied)
OUT/results.json        every stage's result, the timings and the configuration the stages ran
OUT/report.html         the report (``gauda.pipeline.report``)

A stage's fingerprint hashes the configuration slices it reads and the identities of the finished stages
it reads from, so a changed option redoes the stages it touches and everything downstream of them, and
nothing else. A finished folder is replaced only once its successor is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from gauda.config import ConfigError, save, to_dict
from gauda.evaluation.inception import WEIGHTS_ENV
from gauda.io import atomic_write_json, atomic_write_text
from gauda.pipeline import stages
from gauda.pipeline.budget import scale_training
from gauda.presets import GaudaConfig
from gauda.runlock import folder_lock
from gauda.workers import Job, Task, run_jobs, thread_share

logger = logging.getLogger(__name__)
STAGE_FILE = "stage.json"
FINGERPRINT_FILE = ".fingerprint"
RESULTS_FILE = "results.json"
# The demo options that the generator's evaluation reads.
GENERATOR_OPTIONS = ("generator_num_samples", "guidance_sweep", "synthetic_only", "sample_batch_size")


@dataclass(frozen=True)
class Stage:
    """One step of the demo.

    ``slices`` are the configuration it reads (a slice, ``diffusion``, or one field, ``demo.toy_seeds``),
    ``inputs`` the stages whose folders it reads,
    ``work`` its amount of work (training steps, pairs, ...) under a configuration and
    ``seconds_per_work`` what one unit took on the 2-core development CPU with the tiny preset, one torch
    thread per stage (only for the estimate of the remaining time, which corrects it by the speed of the
    stages run so far; measured by the fresh-clone ``make demo`` of BENCHMARKS.md).
    """

    name: str
    title: str
    run: stages.StageFunction
    slices: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    work: Callable[[GaudaConfig], float] = lambda config: 1.0
    seconds_per_work: float = 1.0

    def reference_seconds(self, config: GaudaConfig) -> float:
        """The stage's time on the development CPU under ``config`` (for the estimate only)."""
        return self.work(config) * self.seconds_per_work


def _sampling_work(config: GaudaConfig) -> float:
    """Denoiser calls per pair of the run's sampler (twice per step with guidance)."""
    return config.diffusion.sampling_steps * (1 if config.diffusion.guidance == 1 else 2)


def build_stages(config: GaudaConfig) -> list[Stage]:
    """The demo's stages for ``config`` (one segmentation stage per ``demo.schemes`` entry)."""
    demo, num_classes = config.demo, 9
    segmentation_work = lambda c: float(c.segmentation.steps)  # noqa: E731

    def forked_work(c: GaudaConfig) -> float:  # a forked segmenter trains from its first validation on
        return float(c.segmentation.steps - min(c.segmentation.val_every, c.segmentation.steps))

    first = demo.schemes[0]
    forked = (f"segmentation_{first}",) if demo.fork_segmenters else ()  # its state before validation
    segmenters = [
        Stage(
            f"segmentation_{scheme}",
            f"segmenter, {scheme} scheme",
            stages.segmentation_stage(scheme),
            ("data", "segmentation", "scheme") if scheme != "default" else ("data", "segmentation"),
            (*(("diffusion",) if scheme == "gauda" else ()), *(forked if scheme != first else ())),
            forked_work if forked and scheme != first else segmentation_work,
            0.45,
        )
        for scheme in demo.schemes
    ]
    return [
        Stage("data", "data", stages.data_stage, ("data",), seconds_per_work=3),
        Stage(
            "autoencoder_mask",
            "mask VQ-GAN (Eq. 4)",
            stages.autoencoder_stage("mask"),
            ("data", "mask_autoencoder"),
            work=lambda c: float(c.mask_autoencoder.steps),
            seconds_per_work=0.13,
        ),
        Stage(
            "autoencoder_image",
            "image VQ-GAN (Eq. 3)",
            stages.autoencoder_stage("image"),
            ("data", "image_autoencoder"),
            work=lambda c: float(c.image_autoencoder.steps),
            seconds_per_work=0.10,
        ),
        Stage(
            "diffusion",
            "latent diffusion (Eq. 5)",
            stages.diffusion_stage,
            ("data", "diffusion"),
            ("autoencoder_image", "autoencoder_mask"),
            work=lambda c: float(c.diffusion.steps),
            seconds_per_work=0.22,
        ),
        Stage(
            "samples",
            "samples per class",
            stages.samples_stage,
            ("diffusion", "demo.samples_per_class", "demo.sample_batch_size"),
            ("diffusion",),
            work=lambda c: num_classes * c.demo.samples_per_class * _sampling_work(c),
            seconds_per_work=0.003,
        ),
        *segmenters,
        Stage(
            "reconstruction",
            "what the autoencoders keep",
            stages.reconstruction_stage,
            ("data",),
            ("autoencoder_image", "autoencoder_mask", segmenters[0].name),
            seconds_per_work=36,
        ),
        Stage(
            "generator",
            "generator evaluation",
            stages.generator_stage,
            ("data", "segmentation", *(f"demo.{name}" for name in GENERATOR_OPTIONS)),
            ("diffusion", segmenters[0].name),
            work=lambda c: (
                c.demo.generator_num_samples * len(c.demo.guidance_sweep) * _sampling_work(c) / 100
                + (c.segmentation.steps if c.demo.synthetic_only else 0)
            ),
            seconds_per_work=0.38,
        ),
        Stage(
            "toy",
            "2D simulation",
            stages.toy_stage,
            ("toy", "demo.toy_seeds"),
            work=lambda c: float(c.demo.toy_seeds * c.toy.steps),
            seconds_per_work=0.0021,
        ),
    ]


def stage_names(config: GaudaConfig) -> list[str]:
    return [stage.name for stage in build_stages(config)]


def fingerprint(stage: Stage, config: GaudaConfig, identities: dict[str, str]) -> str:
    """A hash of what the stage's outputs depend on: its configuration slices and its inputs' identities
    (and, for the generator's evaluation, which Inception weights FID would use)."""
    about: dict[str, Any] = {
        "stage": stage.name,
        "config": {name: _option(config, name) for name in stage.slices},
        "inputs": {name: identities[name] for name in stage.inputs},
    }
    if stage.name == "generator":
        about["inception_weights"] = os.environ.get(WEIGHTS_ENV)
    return hashlib.sha256(json.dumps(about, sort_keys=True).encode()).hexdigest()[:16]


def _option(config: GaudaConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return to_dict(value) if dataclasses.is_dataclass(value) else value


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _minutes(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Estimate:
    """The remaining time: each stage's work at its reference speed, times the ratio of measured to
    reference seconds over the stages of at least 30 reference seconds run so far (1 until one has)."""

    def __init__(self, todo: Iterable[Stage], config: GaudaConfig) -> None:
        self.reference = {stage.name: stage.reference_seconds(config) for stage in todo}
        self.measured = 0.0
        self.expected = 0.0

    def done(self, stage: Stage, seconds: float) -> None:
        reference = self.reference.pop(stage.name, 0.0)
        if reference >= 30:  # short stages (a cached data stage) say little about the machine's speed
            self.measured += seconds
            self.expected += reference

    def remaining(self) -> float:
        factor = self.measured / self.expected if self.expected > 1 else 1.0
        return sum(self.reference.values()) * factor


def run_pipeline(
    config: GaudaConfig,
    out: str | Path,
    force: Sequence[str] = (),
    progress: bool = True,
    console: Console | None = None,
    write_report: Callable[[Path, dict[str, Any]], Path] | None = None,
) -> dict[str, Any]:
    """Run every stage not finished with the same fingerprint, then write ``results.json`` (and, with
    ``write_report``, the report); returns the results.

    Args:
        config: the whole resolved configuration (its training steps scaled by
            ``demo.training_scale`` for the stages, see ``gauda.pipeline.budget``).
        out: the demo folder (created; an earlier demo there is continued or reused).
        force: stages to redo even when finished (the stages downstream follow, as their inputs change).
        progress: show progress bars.
        console: where banners go (default: standard error).
        write_report: called with ``out`` and the results once they are written.
    """
    all_stages = build_stages(config)
    names = [stage.name for stage in all_stages]
    unknown = [name for name in force if name not in names]
    if unknown:
        raise ConfigError(f"--force {', '.join(unknown)}: expected stage names among {', '.join(names)}")
    console = console or Console(stderr=True)
    out = Path(out).resolve()
    with folder_lock(out):  # one demo at a time in a folder
        return _run_stages(all_stages, config, out, force, progress, console, write_report)


def _run_stages(
    all_stages: list[Stage],
    config: GaudaConfig,
    out: Path,
    force: Sequence[str],
    progress: bool,
    console: Console,
    write_report: Callable[[Path, dict[str, Any]], Path] | None,
) -> dict[str, Any]:
    save(config, out / "config.yaml")  # as given; the stages run the budget-scaled configuration
    config = scale_training(config)

    # Which stages run: forced ones, those whose fingerprint changed, and everything downstream of them.
    to_run: set[str] = set()
    identities: dict[str, str] = {}
    states: dict[str, dict[str, Any]] = {}
    for stage in all_stages:
        state = _read_json(out / stage.name / STAGE_FILE)
        if (
            stage.name in force
            or state is None
            or any(name in to_run for name in stage.inputs)
            or state.get("fingerprint") != fingerprint(stage, config, identities)
        ):
            to_run.add(stage.name)
        else:
            identities[stage.name], states[stage.name] = state["identity"], state
    estimate = Estimate([stage for stage in all_stages if stage.name in to_run], config)

    began = time.perf_counter()
    todo = [stage for stage in all_stages if stage.name in to_run]
    by_name = {stage.name: stage for stage in todo}
    workers = max(1, min(config.demo.jobs, len(todo)))

    def left() -> str:
        return _minutes(estimate.remaining() / workers)

    def prepare(name: str) -> Task:  # once the stages it reads are finished
        stage = by_name[name]
        inputs = {other: out / other for other in stage.inputs}
        return _run_named_stage, (config, name, out, fingerprint(stage, config, identities), inputs, progress)

    def finished(name: str, state: dict[str, Any]) -> None:
        states[name], identities[name] = state, state["identity"]
        estimate.done(by_name[name], state["seconds"])
        if workers > 1:
            console.rule(f"[bold]{by_name[name].title}[/] done in {_minutes(state['seconds'])} "
                         f"({_minutes(time.perf_counter() - began)} elapsed, ~{left()} left)")  # fmt: skip

    for number, stage in enumerate(all_stages, 1):
        banner = f"[bold]{number}/{len(all_stages)} {stage.title}[/]"
        if stage.name not in to_run:
            console.rule(f"{banner} (reused)")
        elif workers == 1:
            console.rule(f"{banner} ({_minutes(time.perf_counter() - began)} elapsed, ~{left()} left)")
            function, args = prepare(stage.name)
            finished(stage.name, function(*args))
    if workers > 1:
        threads = thread_share(workers)
        console.rule(f"[bold]{len(todo)} stages, {workers} at a time with {threads} torch thread(s) each[/] "
                     f"(~{left()} left)")  # fmt: skip
        jobs = [
            # every stage that reads the dataset waits for the data stage, which fills the frame cache
            Job(stage.name, tuple(n for n in _reads(stage) if n in by_name), stage.reference_seconds(config))
            for stage in todo
        ]
        run_jobs(jobs, prepare, finished, workers, threads, console, lambda: (
            f"{sum(name in states for name in by_name)}/{len(todo)} stages done, "
            f"{_minutes(time.perf_counter() - began)} elapsed, ~{left()} left"
        ))  # fmt: skip
    results = {stage.name: states[stage.name]["result"] for stage in all_stages}
    timings = {stage.name: states[stage.name]["seconds"] for stage in all_stages}
    reused = [stage.name for stage in all_stages if stage.name not in to_run]

    document = {
        **collect_results(results, config),
        "timings": timings,
        "reused": reused,
        "total_seconds": round(sum(timings.values()), 2),
        "wall_seconds": round(time.perf_counter() - began, 2),
        "jobs": config.demo.jobs,
        "config": to_dict(config),
    }
    atomic_write_json(out / RESULTS_FILE, document)
    if write_report is not None:
        path = write_report(out, document)
        console.print(f"report: {path}", highlight=False)
    console.print(f"results: {out / RESULTS_FILE}", highlight=False)
    return document


def _reads(stage: Stage) -> tuple[str, ...]:
    """The stages whose outputs ``stage`` reads: its inputs, and the data stage's cache."""
    data = ("data",) if "data" in stage.slices and stage.name != "data" else ()
    return (*data, *stage.inputs)


def _run_named_stage(
    config: GaudaConfig, name: str, out: Path, key: str, inputs: dict[str, Path], progress: bool
) -> dict[str, Any]:
    """``run_stage`` by the stage's name (stages hold closures, which a worker process cannot be sent)."""
    stage = next(stage for stage in build_stages(config) if stage.name == name)
    return run_stage(stage, config, out, key, inputs, progress)


def run_stage(
    stage: Stage,
    config: GaudaConfig,
    out: Path,
    key: str,
    inputs: dict[str, Path],
    progress: bool = True,
) -> dict[str, Any]:
    """Run one stage in its work folder (resuming work of the same fingerprint) and move it into place."""
    work, final = out / f".{stage.name}.partial", out / stage.name
    marker = work / FINGERPRINT_FILE
    resume = work.is_dir() and marker.is_file() and marker.read_text().strip() == key
    if work.exists() and not resume:
        shutil.rmtree(work)
    if resume:
        logger.info("%s: continuing the unfinished work in %s", stage.name, work)
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(key + "\n")
    started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    start = time.perf_counter()
    result = stage.run(stages.StageContext(config, work, inputs, resume=resume, progress=progress))
    seconds = round(time.perf_counter() - start, 2)
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    state = {
        "stage": stage.name,
        "fingerprint": key,
        "identity": hashlib.sha256(f"{key} {finished} {seconds}".encode()).hexdigest()[:16],
        "started": started,
        "finished": finished,
        "seconds": seconds,
        "resumed": resume,
        "result": _relocate(result, work, final),
    }
    _relocate_files(work, final)
    atomic_write_json(work / STAGE_FILE, state)
    old = out / f".{stage.name}.old"
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    work.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return state


def _relocate(value: Any, work: Path, final: Path) -> Any:
    """The result with paths inside the work folder pointing to where the folder is moved."""
    if isinstance(value, str) and value.startswith(str(work)):
        return str(final) + value[len(str(work)) :]
    if isinstance(value, dict):
        return {key: _relocate(item, work, final) for key, item in value.items()}
    if isinstance(value, list):
        return [_relocate(item, work, final) for item in value]
    return value


def _relocate_files(work: Path, final: Path) -> None:
    """Paths to the work folder recorded in the stage's own JSON and YAML files (a run folder records
    where it ran) are rewritten to where the folder is moved, each file atomically."""
    for path in sorted(work.rglob("*")):
        if path.suffix in (".json", ".yaml") and path.is_file():
            text = path.read_text()
            if str(work) in text:
                atomic_write_text(path, text.replace(str(work), str(final)))


def collect_results(results: dict[str, Any], config: GaudaConfig) -> dict[str, Any]:
    """The stages' results under the documented keys of ``results.json``."""
    return {
        "data": results["data"],
        "autoencoders": {"image": results["autoencoder_image"], "mask": results["autoencoder_mask"]},
        "reconstruction": results["reconstruction"],
        "diffusion": results["diffusion"],
        "samples": results["samples"],
        "segmentation": {scheme: results[f"segmentation_{scheme}"] for scheme in config.demo.schemes},
        "generator": results["generator"],
        "toy": results["toy"],
    }
