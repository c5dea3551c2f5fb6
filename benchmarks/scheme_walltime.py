"""Wall time of GAUDA's training against default training on the same schedule and seed (issue 6).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/scheme_walltime.py \
        --generator runs/demo/diffusion --out runs/bench-schemes

Trains the `tiny` ensemble three times, one after the other, on the synthetic dataset with the same
seed and schedule: the default scheme, GAUDA with the background producer (``scheme.asynchronous``)
and GAUDA generating synchronously; GAUDA uses the diffusion run given as --generator (for example the
demo's). Prints Markdown: training wall time, its ratio to default, the time the trainer waited for
synthetic pairs and the time spent generating them, and the test label-mean IoU of each. Goal: GAUDA
at most +25 % on the 2-core CPU with the tiny preset (paper: +48 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from gauda.augmentation.training import train_segmenter
from gauda.presets import resolve_config
from gauda.segmentation.evaluate import evaluate_run

VARIANTS: dict[str, list[str]] = {
    "default": ["scheme.name=default"],
    "gauda (asynchronous)": ["scheme.name=gauda", "scheme.asynchronous=true"],
    "gauda (synchronous)": ["scheme.name=gauda", "scheme.asynchronous=false"],
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generator", type=Path, required=True, help="a gauda train diffusion run folder")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-schemes"))
    parser.add_argument("--set", action="append", default=[], help="configuration override KEY=VALUE")
    args = parser.parse_args()
    results = {}
    for name, overrides in VARIANTS.items():
        config = resolve_config(
            "tiny", overrides=[*overrides, f"scheme.generator={args.generator}", *args.set]
        )
        run = args.out / name.replace(" ", "_").replace("(", "").replace(")", "")
        shutil.rmtree(run, ignore_errors=True)
        load_before = os.getloadavg()[0]
        summary = train_segmenter(config, run, progress=False)
        test = evaluate_run(run, config.data, config.segmentation, "test", "best", progress=False)
        results[name] = {**summary, "test_label_mean_iou": test["label_mean_iou"], "load_before": load_before,
                         "load_after": os.getloadavg()[0]}  # fmt: skip
    base = results["default"]["wall_seconds"]
    print("| scheme | training wall time (s) | ratio to default | waited for pairs (s) | generating (s) "
          "| test label-mean IoU | load average before / after |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        wait, generating = r.get("synthetic_wait_seconds"), r.get("generation_seconds")
        cells = [
            name, f"{r['wall_seconds']:.1f}", f"{r['wall_seconds'] / base:.3f}",
            "–" if wait is None else f"{wait:.2f}", "–" if generating is None else f"{generating:.1f}",
            f"{r['test_label_mean_iou']:.3f}", f"{r['load_before']:.1f} / {r['load_after']:.1f}",
        ]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
