"""``gauda evaluate generator``: FID, KID, Real-Only and Synthetic-Only IoU, conditioning hit rates and a
guidance sweep of a diffusion run (the work is ``gauda.evaluation.generator_eval``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gauda.cli.evaluate_segmenter import AsJson
from gauda.cli.options import Overrides, Sampler, SamplingSteps
from gauda.config import ConfigError
from gauda.data.splits import SPLITS
from gauda.diffusion.config import SAMPLER_NAMES
from gauda.evaluation.generator_eval import FIGURE_FILE, RESULT_FILE, evaluate_generator


def _cell(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def print_results(result: dict[str, Any], out: Path) -> None:
    """The sweep (one row per guidance scale), the main numbers and the per-class hit rates."""
    console = Console()
    sweep = Table(
        "guidance w", "FID", "KID", "RO IoU", "RO Dice", "hit rate",
        title=f"{result['num_samples']} pairs per w, {result['sampler']} {result['steps']} steps; "
        f"FID/KID features: {result['feature_extractor']}",
    )  # fmt: skip
    for entry in result["sweep"]:
        sweep.add_row(
            f"{entry['guidance']:g}",
            _cell(entry["fid"], 3),
            f"{entry['kid_mean']:.4f} ± {entry['kid_std']:.4f}",
            _cell(entry["ro_iou"]),
            _cell(entry["ro_dice"]),
            _cell(entry["mean_hit_rate"], 3),
        )
    console.print(sweep)
    title = f"conditioning hit rate at w = {result['guidance']:g}"
    hits = Table("class", "pairs conditioned on it that contain it", title=title)
    for name, rate in result["hit_rate"].items():
        hits.add_row(name, "–" if rate is None else f"{rate:.1%}")
    console.print(hits)
    console.print(
        f"w = {result['guidance']:g}: FID {_cell(result['fid'], 3)}, "
        f"KID {result['kid_mean']:.4f} ± {result['kid_std']:.4f}, RO IoU {_cell(result['ro_iou'])}, "
        f"SO IoU {_cell(result['so_iou'])}",
        highlight=False,
    )
    print_per_class(result, console, "iou")
    print_per_class(result, console, "ap")
    console.print(f"written: {out / RESULT_FILE}, {out / FIGURE_FILE}", highlight=False)


def print_per_class(result: dict[str, Any], console: Console, metric: str = "iou") -> None:
    """Per class: the real-trained segmenter on the test split, Real-Only on the generated pairs,
    Synthetic-Only (and Autoencoder-Only) on the test split; ``metric`` iou or ap. The average precision
    needs no threshold: a class that a tiny segmenter ranks well but never wins the argmax for (IoU 0)
    shows there whether the pairs taught it."""
    columns = {"real (test)": result["real_evaluation"], "RO": result["ro_evaluation"]}
    if result.get("ae_only_evaluation"):
        columns["AE-Only (test)"] = result["ae_only_evaluation"]
    if result.get("so_evaluation"):
        columns["SO (test)"] = result["so_evaluation"]
    title = {"iou": "IoU per class", "ap": "average precision per class (no threshold)"}[metric]
    table = Table("class", *columns, title=title)
    for name in result["real_evaluation"]["per_class"]:
        table.add_row(name, *(_cell(e["per_class"][name][metric], 3) for e in columns.values()))
    table.add_section()
    table.add_row("label mean", *(_cell(e[f"label_mean_{metric}"], 3) for e in columns.values()))
    console.print(table)


def generator(
    run: Annotated[Path, typer.Option("--run", help="Run folder of 'gauda train diffusion'.")],
    segmenter: Annotated[
        Path,
        typer.Option(
            "--segmenter",
            help="Run folder of 'gauda train segmenter' on the real data: RO IoU, the real data, and the "
            "settings of the SO segmenter.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the JSON, the figure and the SO run.")],
    num_samples: Annotated[int, typer.Option("--num", help="Pairs per guidance scale.", min=2)] = 256,
    guidance: Annotated[
        list[float] | None,
        typer.Option(
            "--guidance",
            help="Guidance scale w (repeatable: --guidance 1 --guidance 2 sweeps both); the first is the "
            "main evaluation (default: the run's).",
        ),
    ] = None,
    sampler: Sampler = None,
    steps: SamplingSteps = None,
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            "--inception-weights",
            help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or a safetensors of it), downloaded "
            "by hand; default $GAUDA_INCEPTION_WEIGHTS; without either, in-domain segmenter features.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the class order and the noise.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs sampled at once.", min=1)] = 16,
    real_split: Annotated[
        str, typer.Option("--real-split", help="Real frames that FID and KID compare with.")
    ] = "train",
    synthetic_only: Annotated[
        bool,
        typer.Option(
            "--so/--no-so",
            help="Train the Synthetic-Only segmenter (segmentation.steps of --segmenter's run).",
        ),
    ] = True,
    autoencoder_only: Annotated[
        bool,
        typer.Option(
            "--ae-only/--no-ae-only",
            help="Also train a segmenter on the real training pairs through both autoencoders: the "
            "autoencoders' share of what Synthetic-Only loses (the rest is the diffusion model's).",
        ),
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda, ... (default: the segmenter run's).")
    ] = None,
    as_json: AsJson = False,
    overrides: Overrides = None,
) -> None:
    """Evaluate a generator: FID and KID against real frames, Real-Only and Synthetic-Only IoU per class
    beside the real-trained segmenter's, the hit rate of each conditioned class, and a sweep over guidance
    scales; writes generator_evaluation.json
    and guidance_sweep.png into OUT (--set changes the segmenter run's configuration, e.g.
    segmentation.steps for the SO segmenter)."""
    if sampler is not None and sampler not in SAMPLER_NAMES:
        raise ConfigError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLER_NAMES)}")
    if real_split not in SPLITS:
        raise ConfigError(f"--real-split {real_split!r}: expected one of {', '.join(SPLITS)}")
    result = evaluate_generator(
        run,
        segmenter,
        out,
        num_samples=num_samples,
        guidance=guidance,
        sampler=sampler,
        steps=steps,
        inception_weights=inception_weights,
        seed=seed,
        batch_size=batch_size,
        real_split=real_split,
        synthetic_only=synthetic_only,
        autoencoder_only=autoencoder_only,
        overrides=overrides or (),
        device=device,
        progress=not as_json,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_results(result, out)
