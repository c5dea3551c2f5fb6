"""``gauda evaluate autoencoder``: what a trained autoencoder keeps, judged by what segmentation needs (the
work is ``gauda.evaluation.reconstruction``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gauda.checkpoint import CheckpointError
from gauda.cli.evaluate_segmenter import AsJson
from gauda.cli.options import Overrides, run_configuration
from gauda.config import ConfigError
from gauda.evaluation.reconstruction import evaluate_autoencoder_run


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def print_results(result: dict[str, Any]) -> None:
    """Per class: frames holding it, and IoU (segmenter on originals / on reconstructions, or mask IoU)."""
    console = Console()
    frames = result["class_frames"]
    where = f"{result['split']} split, {result['num_frames']} frames"
    if result["modality"] == "mask":
        table = Table("class", "frames", "reconstruction IoU", title=f"mask autoencoder, {where}")
        for name, iou in result["per_class_iou"].items():
            table.add_row(name, str(frames[name]), _cell(iou))
        table.add_section()
        table.add_row("mean (classes present)", "", _cell(result["mean_iou"]))
        console.print(table)
    else:
        if "per_class" in result:
            table = Table(
                "class", "frames", "IoU on originals", "IoU on reconstructions", "ratio",
                title=f"image autoencoder, {where}: segmenter {result['segmenter']}",
            )  # fmt: skip
            for name, row in result["per_class"].items():
                table.add_row(
                    name,
                    str(frames[name]),
                    _cell(row["iou_original"]),
                    _cell(row["iou_reconstructed"]),
                    _cell(row["ratio"], 2),
                )
            table.add_section()
            table.add_row(
                "label mean",
                "",
                _cell(result["label_mean_iou_original"]),
                _cell(result["label_mean_iou_reconstructed"]),
                "",
            )
            console.print(table)
            console.print(f"figure: {result['figure']}", highlight=False)
        console.print(
            f"PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}, L1 {result['l1']:.4f}", highlight=False
        )
    console.print(f"codebook usage {result['codebook_usage']:.2f}", highlight=False)


def autoencoder(
    run: Annotated[Path, typer.Option("--run", help="Run folder of 'gauda train autoencoder'.")],
    segmenter: Annotated[
        Path | None,
        typer.Option(
            "--segmenter",
            help="Run folder of 'gauda train segmenter' trained on real frames: its per-class IoU on the "
            "image autoencoder's reconstructions against the originals (image autoencoders only).",
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split to score: train, val or test.")] = "test",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="JSON file to write (default RUN/evaluation_<split>.json)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, ...")] = "auto",
    as_json: AsJson = False,
    overrides: Overrides = None,
) -> None:
    """Score a trained autoencoder on a split: for images PSNR/SSIM and, with --segmenter, each class's
    IoU on reconstructions against originals (and a figure); for masks each class's reconstruction IoU with
    the number of frames that hold it. --set changes the run's configuration: --set data.synthetic.seed=1
    --split train scores on 640 newly rendered synthetic frames (tiny) that no model has seen."""
    config = run_configuration(run, "gauda train autoencoder", overrides)
    try:
        result = evaluate_autoencoder_run(
            run, config.data, segmenter, split, out, device=device, progress=not as_json
        )
    except CheckpointError as error:
        raise ConfigError(str(error)) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_results(result)
