"""Independent jobs side by side: the demo's stages (``demo.jobs``) and an experiment's runs
(``gauda experiment --jobs``). A few worker processes, each with its share of the CPU threads, take the
jobs whose inputs are finished, longest remaining chain first.

The tiny models use two threads poorly, so on a 2-core CPU two one-thread processes get through more
work than one two-thread process (BENCHMARKS.md, "Two trainings side by side"). Workers are spawned
once and run one job after another (importing torch and MONAI takes seconds). Their log records and
the last line of their progress bars come back over a pipe; the parent shows one line per running job
above its own log.
A job that fails stops the others: its error is raised in the parent, and the jobs it stopped keep
their checkpoints for the next run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import pickle
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

logger = logging.getLogger(__name__)

# What a job runs in its worker: a module-level function (it is pickled by name) and its arguments.
Task = tuple[Callable[..., Any], tuple[Any, ...]]


@dataclass(frozen=True)
class Job:
    """One unit of work: its name, the jobs that must finish before it, and its expected seconds."""

    name: str
    after: tuple[str, ...] = ()
    seconds: float = 1.0


def longest_chains(jobs: Sequence[Job]) -> dict[str, float]:
    """Each job's expected seconds plus those of the longest chain of jobs waiting on it (the order in
    which ready jobs start: the critical path first)."""
    waiting: dict[str, list[str]] = {job.name: [] for job in jobs}
    for job in jobs:
        for name in job.after:
            if name in waiting:
                waiting[name].append(job.name)
    seconds = {job.name: job.seconds for job in jobs}
    chains: dict[str, float] = {}

    def chain(name: str) -> float:
        if name not in chains:
            chains[name] = seconds[name] + max((chain(other) for other in waiting[name]), default=0.0)
        return chains[name]

    for job in jobs:
        chain(job.name)
    return chains


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: str | None = None
    started: float = 0.0
    status: str = ""


@dataclass
class _Board:
    """What the live display shows: a headline and one line per running job."""

    headline: Callable[[], str]
    workers: list[_Worker] = field(default_factory=list)

    def __rich__(self) -> Group:
        table = Table.grid(padding=(0, 1))
        for worker in self.workers:
            if worker.job is not None:
                elapsed = _clock(time.monotonic() - worker.started)
                table.add_row(Text(worker.job, style="bold"), Text(elapsed), Text(worker.status[-100:]))
        return Group(Text(self.headline(), style="dim"), table)


def thread_share(workers: int) -> int:
    """Torch threads for each of ``workers`` processes: this process's threads, shared out."""
    import torch

    return max(1, torch.get_num_threads() // workers)


def run_jobs(
    jobs: Sequence[Job],
    prepare: Callable[[str], Task],
    finished: Callable[[str, Any], None],
    workers: int,
    threads: int | None = None,
    console: Console | None = None,
    headline: Callable[[], str] = lambda: "",
) -> None:
    """Run ``jobs`` on ``workers`` spawned processes with ``threads`` torch threads each (default
    ``thread_share(workers)``), the live display on ``console`` (default: standard error).

    ``prepare(name)`` is called in this process when a job's inputs are finished and returns what its
    worker runs; ``finished(name, value)`` gets each job's return value as it ends. The first error of
    a job is raised here once every worker has stopped.
    """
    names = {job.name for job in jobs}
    unknown = sorted({name for job in jobs for name in job.after} - names)
    if unknown:
        raise ValueError(f"jobs wait on unknown jobs: {', '.join(unknown)}")
    threads = thread_share(workers) if threads is None else threads
    console = console or Console(stderr=True)
    chains = longest_chains(jobs)
    pending = sorted(jobs, key=lambda job: -chains[job.name])
    done: set[str] = set()
    context = multiprocessing.get_context("spawn")  # no forked copies of torch's thread pools
    board = _Board(headline)
    for _ in range(min(workers, len(jobs))):
        parent, child = context.Pipe()
        # not daemonic: a stage may start processes of its own (data loader workers)
        process = context.Process(target=_serve, args=(child, threads))
        process.start()
        child.close()
        board.workers.append(_Worker(process, parent))
    failed = False
    try:
        with Live(board, console=console, refresh_per_second=2, transient=True) as live:
            while pending or any(worker.job for worker in board.workers):
                for worker in (worker for worker in board.workers if worker.job is None):
                    ready = next((job for job in pending if set(job.after) <= done), None)
                    if ready is not None:
                        pending.remove(ready)
                        worker.conn.send((ready.name, *prepare(ready.name)))
                        worker.job, worker.started, worker.status = ready.name, time.monotonic(), "starting"
                busy = [worker for worker in board.workers if worker.job is not None]
                if not busy:
                    raise ValueError(f"jobs wait on each other: {', '.join(job.name for job in pending)}")
                for worker in busy:
                    while worker.job is not None and worker.conn.poll():
                        _receive(worker, live.console, finished, done)
                wait([worker.conn for worker in busy], timeout=0.5)
    except BaseException:
        failed = True
        raise
    finally:
        _stop(board.workers, failed)


def _receive(worker: _Worker, console: Console, finished: Callable[[str, Any], None], done: set[str]) -> None:
    try:
        message = worker.conn.recv()
    except EOFError:
        worker.process.join(timeout=5)
        raise RuntimeError(
            f"stage {worker.job}: its worker process ended without a result (exit code "
            f"{worker.process.exitcode}; killed for memory?)"
        ) from None
    kind = message[0]
    if kind == "log":
        _, level, text = message
        console.print(Text(f"{worker.job}: {text}", style="red" if level >= logging.WARNING else ""))
    elif kind == "status":
        worker.status = message[1]
    elif kind == "done":
        name, worker.job = worker.job, None
        assert name is not None
        done.add(name)
        finished(name, message[1])
    else:  # "error"
        _, error, trace = message
        logger.debug("stage %s failed in its worker:\n%s", worker.job, trace)
        raise error


def _stop(workers: list[_Worker], failed: bool) -> None:
    """Idle workers are asked to leave; busy ones (after a failure) are terminated."""
    for worker in workers:
        if worker.job is None and not failed:
            with contextlib.suppress(OSError):  # a worker that died already
                worker.conn.send(None)
        else:
            worker.process.terminate()
    for worker in workers:
        worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


# --- in the worker -------------------------------------------------------------------------------------


class _Sender:
    """Thread-safe sends to the parent (training threads and tqdm's monitor thread log too)."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.lock = conn, threading.Lock()

    def __call__(self, *message: Any) -> None:
        with self.lock:
            self.conn.send(message)


class _LogHandler(logging.Handler):
    def __init__(self, send: _Sender) -> None:
        super().__init__(logging.INFO)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send("log", record.levelno, record.getMessage())
        except Exception:  # a log line must never stop a stage
            self.handleError(record)


_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # tqdm moves the cursor for nested bars
_BAR = re.compile(r"\d+%\||\d+(?:/\d+)? \[\d")  # "40%|####" or "12/30 [00:01" (tqdm's format)


class _ProgressStream(io.TextIOBase):
    """The worker's standard error: progress bars become the job's status line, other complete lines are
    logged."""

    def __init__(self, send: _Sender) -> None:
        self.send, self.buffer_text = send, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer_text += text
        while "\r" in self.buffer_text or "\n" in self.buffer_text:
            cut = min(i for i in (self.buffer_text.find("\r"), self.buffer_text.find("\n")) if i >= 0)
            line = _ESCAPE.sub("", self.buffer_text[:cut]).strip()
            self.buffer_text = self.buffer_text[cut + 1 :]
            if line:
                self.send(*("status", line) if _BAR.search(line) else ("log", logging.INFO, line))
        return len(text)


def _serve(conn: Connection, threads: int) -> None:
    """A worker: run the tasks the parent sends, one at a time, until it sends None."""
    import torch

    torch.set_num_threads(threads)
    send = _Sender(conn)
    logging.basicConfig(level=logging.INFO, handlers=[_LogHandler(send)], force=True)
    sys.stderr = _ProgressStream(send)  # type: ignore[assignment]
    while True:
        try:
            task = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if task is None:
            return
        _, function, args = task
        try:
            value = function(*args)
        except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent handles it
            return
        except BaseException as error:
            send("error", _picklable(error), traceback.format_exc())
        else:
            send("done", value)


def _picklable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling (ConfigError, DataError, ...), else its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
