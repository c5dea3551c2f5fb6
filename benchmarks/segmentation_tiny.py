"""Test IoU of the `tiny` UNet ensemble and PHiSeg after their CPU training budget (at most 10 minutes each).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/segmentation_tiny.py --out runs/bench-segmentation

(On a shared 2-core machine, OMP_WAIT_POLICY=PASSIVE keeps a training step at ~1.3 s instead of ~8 s
while another process holds a core: by default the OpenMP threads spin-wait for each other.)

Runs, for each model, exactly what a user runs (one after the other, so they do not share the cores):

    gauda train segmenter --model MODEL --preset tiny --out OUT/MODEL
    gauda evaluate segmenter --run OUT/MODEL --split test --json

and prints Markdown: wall time of training, the load average before and after (the machine is shared),
and the paper's table for both models (per-class test IoU, label mean, sample mean, sample median).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

GAUDA = [str(Path(sys.executable).parent / "gauda")]  # the console script of this environment


def run(args: list[str]) -> str:
    result = subprocess.run(GAUDA + args, check=True, capture_output=True, text=True)
    return result.stdout


def _value(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(results: dict) -> None:
    """Print the Markdown tables of a ``results.json`` written by this script."""
    models, share = results["models"], results["class_share"]
    print("| model | steps | training wall time (s) | load average before / after | best val step |")
    print("| --- | --- | --- | --- | --- |")
    for model, r in models.items():
        print(f"| {model} | {r['trained']['step']} | {r['train_seconds']} | "
              f"{r['load_before']:.1f} / {r['load_after']:.1f} | {r['trained']['best_step']} |")  # fmt: skip
    names = list(models)
    print("\n| test split | % pixels | % frames | " + " | ".join(f"{m} IoU" for m in names)
          + " | " + " | ".join(f"{m} UE (Eq. 8)" for m in names) + " |")  # fmt: skip
    print("| --- | --- | --- |" + " --- |" * 2 * len(names))
    for name, (pixels, frames) in share.items():
        scores = [_value(models[m]["test"]["per_class"][name]["iou"]) for m in names]
        uncertainty = [_value(models[m]["test"]["per_class"][name]["uncertainty"], 4) for m in names]
        print(f"| {name} | {pixels:.2f} | {frames:.1f} | " + " | ".join(scores + uncertainty) + " |")
    for key, label in (("label_mean_iou", "label mean"), ("sample_mean_iou", "sample mean"),
                       ("sample_median_iou", "sample median")):  # fmt: skip
        values = " | ".join(_value(models[m]["test"][key]) for m in names)
        print(f"| **{label}** | | | {values} |" + " |" * len(names))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-segmentation"))
    parser.add_argument("--models", nargs="+", default=["ensemble", "phiseg"])
    parser.add_argument("--set", action="append", default=[], help="configuration override KEY=VALUE")
    parser.add_argument("--render", type=Path, help="only print the tables of an earlier results.json")
    args = parser.parse_args()
    if args.render is not None:
        render(json.loads(args.render.read_text()))
        return
    overrides = [item for value in args.set for item in ("--set", value)]
    models = {}
    for model in args.models:
        folder = args.out / model
        shutil.rmtree(folder, ignore_errors=True)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        command = ["train", "segmenter", "--model", model, "--preset", "tiny", "--out", str(folder)]
        trained = json.loads(run([*command, *overrides]))
        seconds = time.perf_counter() - start
        load_after = os.getloadavg()[0]
        evaluation = json.loads(
            run(["evaluate", "segmenter", "--run", str(folder), "--split", "test", "--json"])
        )
        models[model] = {
            "train_seconds": round(seconds, 1),
            "load_before": load_before,
            "load_after": load_after,
            "trained": trained,
            "test": evaluation,
        }
    # each class's share of all pixels and frames of the dataset at 64 px: the long tail
    inspected = json.loads(run(["data", "inspect", "--preset", "tiny", "--size", "64", "--json",
                                "--grid", str(args.out / "samples.png"), *overrides]))  # fmt: skip
    total = sum(c["pixels"] for c in inspected["classes"])
    share = {c["name"]: (100 * c["pixels"] / total, 100 * c["frame_fraction"]) for c in inspected["classes"]}
    results = {"models": models, "class_share": share}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    render(results)


if __name__ == "__main__":
    main()
