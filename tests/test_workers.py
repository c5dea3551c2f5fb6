"""The demo's side-by-side stages (``gauda.workers``): order, overlap, errors, dead workers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from rich.console import Console

from gauda.config import ConfigError
from gauda.workers import Job, longest_chains, run_jobs


def _record(folder: str, name: str, seconds: float) -> str:
    """A job: sleep, and leave when it started and ended in ``folder``."""
    began = time.time()
    time.sleep(seconds)
    Path(folder, f"{name}.json").write_text(json.dumps({"began": began, "ended": time.time()}))
    return name.upper()


def _fail(message: str) -> None:
    raise ConfigError(message)


def _die() -> None:
    os._exit(9)  # as a worker killed for memory


def _run(jobs: list[Job], tasks: dict, workers: int = 2) -> dict:
    values: dict = {}
    with open(os.devnull, "w") as quiet:
        run_jobs(jobs, lambda name: tasks[name], values.__setitem__, workers, 1, Console(file=quiet))
    return values


def test_longest_chains_put_the_critical_path_first() -> None:
    jobs = [Job("data", (), 1), Job("ae", ("data",), 10), Job("diffusion", ("ae",), 30), Job("toy", (), 5)]
    chains = longest_chains(jobs)
    assert chains == {"data": 41, "ae": 40, "diffusion": 30, "toy": 5}


@pytest.mark.slow
def test_jobs_wait_for_their_inputs_and_run_side_by_side(tmp_path) -> None:
    folder = str(tmp_path)
    jobs = [Job("a", (), 3), Job("b", ("a",), 1), Job("c", (), 1)]
    tasks = {name: (_record, (folder, name, 1.5)) for name in "abc"}
    values = _run(jobs, tasks)
    assert values == {"a": "A", "b": "B", "c": "C"}
    times = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in "abc"}
    assert times["b"]["began"] >= times["a"]["ended"]  # b reads a
    assert times["c"]["began"] < times["a"]["ended"] and times["a"]["began"] < times["c"]["ended"]


@pytest.mark.slow
def test_an_error_in_a_worker_is_raised_here_and_stops_the_others(tmp_path) -> None:
    jobs = [Job("slow", (), 10), Job("bad", (), 1)]
    tasks = {"slow": (_record, (str(tmp_path), "slow", 60)), "bad": (_fail, ("--set x=1: expected y",))}
    began = time.perf_counter()
    with pytest.raises(ConfigError, match="expected y"):
        _run(jobs, tasks)
    assert time.perf_counter() - began < 40  # the 60 s job was stopped, not waited for
    assert not (tmp_path / "slow.json").exists()


@pytest.mark.slow
def test_a_worker_that_dies_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="stage dies: its worker process ended without a result"):
        _run([Job("dies")], {"dies": (_die, ())}, workers=1)


def test_unknown_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown jobs: nothing"):
        _run([Job("a", ("nothing",))], {})
