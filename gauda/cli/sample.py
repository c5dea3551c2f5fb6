"""``gauda sample``: generate (image, mask) pairs with a trained diffusion run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gauda.cli.options import Sampler, SamplingSteps
from gauda.config import ConfigError
from gauda.diffusion.config import SAMPLER_NAMES
from gauda.generation.sample import REPORT_FILE, sample_pairs


def sample(
    run: Annotated[Path, typer.Option("--run", help="Run folder of gauda train diffusion.")],
    out: Annotated[Path, typer.Option("--out", help="Folder dataset to write (images/, masks/, grid.png).")],
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes", help='Comma-separated class names, e.g. "Grasper,Blood"; omit: unconditional.'
        ),
    ] = None,
    num_samples: Annotated[int, typer.Option("--num", help="Pairs to generate.", min=1)] = 16,
    sampler: Sampler = None,
    steps: SamplingSteps = None,
    guidance: Annotated[
        float | None,
        typer.Option(
            "--guidance", help="w of eps_null + w (eps_c - eps_null); 1 = unguided (default: the run's)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs sampled at once.", min=1)] = 16,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, ...")] = "auto",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing dataset at OUT.")
    ] = False,
    format: Annotated[
        str,
        typer.Option(
            "--format", help="folder (images/, masks/) or nnunet (nnU-Net v2 raw: imagesTr/, labelsTr/)."
        ),
    ] = "folder",
    report: Annotated[
        bool, typer.Option("--report", help="Print how often each requested class appears in the masks.")
    ] = False,
) -> None:
    """Sample pairs into OUT as a folder dataset, with grid.png and sample_report.json."""
    if sampler is not None and sampler not in SAMPLER_NAMES:
        raise ConfigError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLER_NAMES)}")
    result = sample_pairs(
        run, out, classes, num_samples, sampler, steps, guidance, seed, batch_size, device, overwrite,
        format=format,
    )  # fmt: skip
    console = Console()
    if report:
        table = Table(
            title=f"{result['num_samples']} pairs, {result['sampler']} {result['steps']} steps, "
            f"guidance {result['guidance']}: masks containing each class"
        )
        for column in ("class", "generated", "training frames"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for row in result["classes"]:
            table.add_row(
                row["class"], f"{row['generated_fraction']:.1%}", f"{row['training_frame_frequency']:.1%}"
            )
        console.print(table)
        if "all_requested_fraction" in result:
            console.print(f"all requested classes together: {result['all_requested_fraction']:.1%}")
    console.print(
        f"{result['num_samples']} pairs in {out} ({result['seconds_per_pair']:.3f} s per pair); "
        f"report: {out / REPORT_FILE}",
        highlight=False,
    )
