"""``gauda augment``: offline GAUDA, the real dataset plus generated pairs of the classes a trained
segmenter is most uncertain about, written for any segmenter (nnU-Net included) to train on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gauda.augmentation.offline import DRAWS, RECORD_FILE, augment_dataset
from gauda.cli.options import Overrides, run_configuration
from gauda.config import ConfigError
from gauda.segmentation.config import SEGMENTER_SLICES
from gauda.segmentation.evaluate import CHECKPOINT_NAMES


def augment(
    segmenter: Annotated[
        Path, typer.Option("--segmenter", help="Run folder of 'gauda train segmenter' (its uncertainty).")
    ],
    generator: Annotated[Path, typer.Option("--generator", help="Run folder of 'gauda train diffusion'.")],
    out: Annotated[
        Path, typer.Option("--out", help="Dataset to write (nnunet: nnUNet_raw/DatasetXXX_Name).")
    ],
    num_pairs: Annotated[
        int, typer.Option("--num", help="Generated pairs to add to the train split.", min=1)
    ],
    format: Annotated[
        str, typer.Option("--format", help="folder (gauda's images/, masks/) or nnunet (nnU-Net v2 raw).")
    ] = "folder",
    draw: Annotated[
        str,
        typer.Option(
            "--draw",
            help="uncertainty: pairs of the scheme.top_k classes of largest uncertainty on the validation "
            "split (GAUDA); data: unconditional pairs, the data's own class balance (the unguided control).",
        ),
    ] = "uncertainty",
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help=f"Segmenter checkpoint: {' or '.join(CHECKPOINT_NAMES)}.")
    ] = "best",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated pairs.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs sampled at once.", min=1)] = 16,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, ...")] = "auto",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing dataset at OUT.")
    ] = False,
    overrides: Overrides = None,
) -> None:
    """Write the segmenter's dataset (every split, recorded) plus N generated pairs in its train split.

    The classes come from the segmenter's class-wise uncertainty on its validation split, as the online
    scheme computes it (scheme.uncertainty_pooling, uncertainty_quantity, missed_ratio, top_k, condition,
    presence_pixels of the run's configuration; change them with --set scheme.top_k=2). Train on the
    result with --dataset folder --root OUT --set data.split.method=dataset, or with nnU-Net.
    """
    if draw not in DRAWS:
        raise ConfigError(f"--draw {draw!r}: expected one of {', '.join(DRAWS)}")
    if not (segmenter / "config.yaml").is_file():
        raise ConfigError(
            f"--segmenter {segmenter}: no config.yaml there; expected a run folder of gauda train segmenter"
        )
    config = run_configuration(segmenter, "gauda train segmenter", overrides, SEGMENTER_SLICES)
    record = augment_dataset(
        segmenter, generator, num_pairs, out, config.data, config.segmentation, config.scheme,
        draw=draw, format=format, checkpoint=checkpoint, seed=seed, batch_size=batch_size,  # type: ignore[arg-type]
        device=device, overwrite=overwrite,
    )  # fmt: skip
    asked = ", ".join(record["classes"]) or "unconditional pairs"
    Console(stderr=True).print(
        f"{record['num_pairs']} generated pairs ({asked}) with the real frames in {out}; "
        f"what was drawn and why: {out / RECORD_FILE}",
        highlight=False,
    )
