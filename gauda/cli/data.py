"""``gauda data inspect`` and ``gauda data export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gauda.cli.options import ConfigFile, DryRun, Overrides, Preset, build_config, print_dry_run
from gauda.data.config import DATASET_NAMES
from gauda.data.dataset import open_source
from gauda.data.export import export_dataset
from gauda.data.figures import save_pair_grid
from gauda.data.inspection import DatasetReport, grid_indices, inspect_dataset
from gauda.data.transforms import resize_pair
from gauda.data.writers import check_format

data_app = typer.Typer(
    help="Inspect and export datasets (synthetic, cadis, cholecseg8k, folder, nnunet).", no_args_is_help=True
)

Dataset = Annotated[
    str | None,
    typer.Option(
        "--dataset", help=f"Dataset: {', '.join(DATASET_NAMES)} (default: the preset's, synthetic)."
    ),
]
Root = Annotated[
    str | None,
    typer.Option(
        "--root", help="Folder of the dataset (not needed for synthetic; nnunet: nnUNet_raw/DatasetXXX_Name)."
    ),
]
Setting = Annotated[
    str | None, typer.Option("--setting", help="CaDIS class setting: I, II (the paper's, default) or III.")
]


def data_updates(dataset: str | None, root: str | None, setting: str | None, **extra: Any) -> dict[str, Any]:
    """The ``data`` slice set by a command's own options: unset options (None) leave the configuration alone,
    while ``extra`` values are applied as given (None included, e.g. image_size=None for native size)."""
    values = {"dataset": dataset, "root": root, "cadis_setting": setting}
    return {"data": {**{key: value for key, value in values.items() if value is not None}, **extra}}


@data_app.command("inspect")
def inspect(
    dataset: Dataset = None,
    root: Root = None,
    setting: Setting = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", help="Count at SIZE x SIZE after resizing (default: native resolution).", min=1
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    grid: Annotated[
        Path | None,
        typer.Option("--grid", help="PNG grid of samples with masks (default: ./<dataset>_samples.png)."),
    ] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", help="Pairs in the grid.", min=1)] = 12,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Count frames, videos, split sizes, per-class frames and pixels and ignored pixels; list every problem.

    Exits with status 1 when the dataset has problems (all of them are reported, not just the first).
    """
    config = build_config(preset, config_file, overrides, data_updates(dataset, root, setting))
    if dry_run:
        print_dry_run(config)
        return
    report = inspect_dataset(config.data, size=size, progress=not as_json)
    indices = grid_indices(report, num_samples)
    grid_path = None
    if indices:
        grid_path = grid or Path(f"{report.dataset}_samples.png")
        source = open_source(config.data, check=False)
        pairs = [resize_pair(*source.read(i), size or 256) for i in indices]  # readable: inspected above
        save_pair_grid(
            grid_path,
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            source.class_names,
            titles=[source.records[i].name for i in indices],
        )
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "grid": str(grid_path) if grid_path else None}, indent=2))
    else:
        _print_report(report, grid_path)
    if report.problems:
        raise typer.Exit(1)


def _print_report(report: DatasetReport, grid_path: Path | None) -> None:
    console = Console()
    summary = report.to_json()
    console.print(
        f"[bold]{report.dataset}[/]: {report.num_frames} frames in {report.num_videos} videos; "
        f"splits {summary['splits'] or 'n/a'}; counts at {report.resolution} resolution"
    )
    table = Table("id", "class", "frames", "% frames", "pixels", "% pixels")
    total = max(1, sum(c["pixels"] for c in summary["classes"]) + report.ignored_pixels)
    for c in summary["classes"]:
        table.add_row(
            str(c["id"]),
            c["name"],
            str(c["frames"]),
            f"{100 * c['frame_fraction']:.1f}",
            str(c["pixels"]),
            f"{100 * c['pixels'] / total:.2f}",
        )
    table.add_row(
        "", "(ignored)", "", "", str(report.ignored_pixels), f"{100 * report.ignored_pixels / total:.2f}"
    )
    console.print(table)
    if grid_path:
        console.print(f"sample grid: {grid_path}")
    if report.problems:
        console.print(f"[bold red]{len(report.problems)} problem(s):[/]")
        for problem in report.problems:
            console.print(f"  - {problem}", markup=False, highlight=False)


@data_app.command("export")
def export(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="New folder to write the dataset to (nnunet: nnUNet_raw/DatasetXXX_Name)."
        ),
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="folder (images/, masks/, classes.json) or nnunet (nnU-Net v2: imagesTr/, labelsTr/, "
            "imagesTs/ for the test split, dataset.json, splits_final.json by video).",
        ),
    ] = "folder",
    dataset: Dataset = None,
    root: Root = None,
    setting: Setting = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", help="Resize to SIZE x SIZE (default: the preset's data.image_size; 0 keeps native)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists (only once complete).")
    ] = False,
    preset: Preset = "tiny",
    config_file: ConfigFile = None,
    overrides: Overrides = None,
    dry_run: DryRun = False,
) -> None:
    """Write a dataset, class-mapped and resized, in the folder format or as an nnU-Net v2 raw dataset."""
    check_format(format)
    extra = {} if size is None else {"image_size": size or None}
    config = build_config(preset, config_file, overrides, data_updates(dataset, root, setting, **extra))
    if dry_run:
        print_dry_run(config)
        return
    path = export_dataset(config.data, out, overwrite=overwrite, full_config=config, format=format)
    Console(stderr=True).print(f"exported {config.data.dataset} to {path} ({format} format)", highlight=False)
