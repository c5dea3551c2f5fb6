"""The GPU suite's code path, at toy sizes on the CPU (``--smoke``): what runs the day a GPU is lent must
already work, write its report as it goes and survive a part that fails."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import process_env

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"


def load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_smoke_run_completes_every_part_and_reports_it(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], env=process_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    parts = json.loads((tmp_path / "gpu_suite.json").read_text())["parts"]
    assert list(parts) == ["fit", "sampling", "gauda", "distributed"]
    for name, part in parts.items():
        assert "error" not in part, f"{name}: {part.get('traceback')}"
    fit = parts["fit"]["rows"]
    assert {r["stage"] for r in fit} == {
        "image autoencoder",
        "mask autoencoder",
        "diffusion",
        "phiseg",
        "ensemble",
    }
    assert all(r["fits"] and r["finite_loss"] and r["images_per_second"] > 0 for r in fit)
    assert {(r["model"], r["batch"]) for r in parts["sampling"]["rows"]} == {
        (model, batch) for model in ("eager", "torch.compile (eager)") for batch in (2, 4)
    }
    assert parts["sampling"]["denoiser"]["gflop_per_forward"] > 0
    schemes = [r["scheme"] for r in parts["gauda"]["rows"]]
    assert schemes == ["default", "gauda (asynchronous)", "gauda (synchronous)"]
    assert parts["gauda"]["rows"][1]["generating_seconds"] > 0
    assert parts["distributed"]["returncode"] == 0 and parts["distributed"]["model_written"]
    report = (tmp_path / "gpu_suite.md").read_text()
    assert "## fit" in report and "| image autoencoder | fp32 | True |" in report


def test_a_failing_part_is_recorded_and_the_next_one_still_runs(tmp_path) -> None:
    suite = load_suite().Suite(tmp_path, {"device_name": "cpu", "smoke": True, "torch": "x", "classes": 2,
                                          "command": "test"})  # fmt: skip

    def broken() -> dict:
        raise RuntimeError("CUDA error: an illegal memory access")

    suite.run("fit", broken)
    saved = json.loads((tmp_path / "gpu_suite.json").read_text())["parts"]
    assert "illegal memory access" in saved["fit"]["error"]  # written before the next part starts
    suite.run("sampling", lambda: {"rows": [{"batch": 2, "pairs_per_second": 1.0}]})
    saved = json.loads((tmp_path / "gpu_suite.json").read_text())["parts"]
    assert list(saved) == ["fit", "sampling"] and saved["sampling"]["rows"][0]["batch"] == 2
    report = (tmp_path / "gpu_suite.md").read_text()
    assert "**failed**: `RuntimeError: CUDA error" in report and "| 2 | 1.0 |" in report


def test_unknown_parts_and_a_missing_gpu_are_refused(tmp_path) -> None:
    args = [sys.executable, str(SCRIPT), "--smoke", "--parts", "fit,warp", "--out", str(tmp_path)]
    done = subprocess.run(args, env=process_env(), capture_output=True, text=True)
    assert (
        done.returncode == 2
        and "--parts warp: expected some of fit, sampling, gauda, distributed" in done.stderr
    )
    if not load_suite().torch.cuda.is_available():
        done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--out", str(tmp_path)],
                              env=process_env(), capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 2 and "no CUDA device is visible" in done.stderr
