"""Two trainings one after another with all threads, against the same two side by side with half each.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/jobs.py --out runs/bench-jobs

What ``demo.jobs`` and ``gauda experiment --jobs`` rely on: on a 2-core CPU the tiny models use two
threads poorly, so two one-thread processes should finish two trainings sooner than one two-thread
process does one after the other. Trains the `tiny` ensemble (default scheme, seeds 0 and 1, --steps
steps) both ways in one run, each training in a worker process of ``gauda.workers`` (so both sides pay
the same start-up), and prints the wall times and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from gauda.experiment.runner import RunSpec, run_one
from gauda.presets import resolve_config
from gauda.workers import Job, run_jobs, thread_share


def _trainings(config, out: Path, workers: int, threads: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    specs = {spec.name: spec for spec in (RunSpec("default", False, 0), RunSpec("default", False, 1))}
    start = time.perf_counter()
    run_jobs(
        [Job(name) for name in specs],
        lambda name: (run_one, (config, specs[name], None, out, False)),
        lambda name, value: None,
        workers,
        threads,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-jobs"))
    parser.add_argument("--steps", type=int, default=100, help="training steps of each segmenter")
    parser.add_argument("--set", action="append", default=[], help="configuration override KEY=VALUE")
    args = parser.parse_args()
    config = resolve_config("tiny", overrides=[f"segmentation.steps={args.steps}", *args.set])
    threads = thread_share(1)
    after = _trainings(config, args.out / "one-after-another", 1, threads)
    beside = _trainings(config, args.out / "side-by-side", 2, thread_share(2))
    print(f"| two tiny ensemble trainings, {args.steps} steps each | wall time (s) |")
    print("| --- | --- |")
    print(f"| one after another, {threads} threads | {after:.1f} |")
    print(f"| side by side, {thread_share(2)} thread(s) each | {beside:.1f} |")
    print(f"\nratio (one after another / side by side): {after / beside:.2f}; "
          f"load average at the end: {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
