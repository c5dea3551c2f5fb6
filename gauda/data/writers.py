"""The dataset formats gauda writes (``--format``): its own ``folder`` format and nnU-Net v2's raw format."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from gauda.config import ConfigError
from gauda.data.folder import SPLIT_FILE, write_folder
from gauda.data.nnunet import write_nnunet

DatasetFormat = Literal["folder", "nnunet"]
FORMATS: tuple[str, ...] = ("folder", "nnunet")


class DatasetWriter(Protocol):
    staging: Path

    def add(self, name: str, video: str, image: np.ndarray, mask: np.ndarray) -> None: ...
    def write_text(self, relative: str, text: str) -> None: ...


def check_format(value: str, option: str = "--format") -> DatasetFormat:
    if value not in FORMATS:
        raise ConfigError(f"{option} {value!r}: expected one of {', '.join(FORMATS)}")
    return value  # type: ignore[return-value]


@contextmanager
def write_dataset(
    out: str | Path,
    class_names: Sequence[str],
    format: DatasetFormat = "folder",
    overwrite: bool = False,
    split: Mapping[str, Any] | None = None,
    always_train: Collection[str] = (),
    seed: int = 0,
) -> Iterator[DatasetWriter]:
    """A writer of a ``format`` dataset at ``out`` (nothing at ``out`` changes unless the body succeeds).

    Args:
        out: the dataset folder.
        class_names: names of the class ids the masks hold.
        format: ``folder`` or ``nnunet``.
        overwrite: replace an existing dataset at ``out``.
        split: the split summary of the frames' videos (``split_summary``), recorded with the dataset
            (``split.method=dataset`` reads it back); nnunet: its test videos go to imagesTs/labelsTs.
        always_train: nnunet: videos that train in every fold of ``splits_final.json`` (generated pairs).
        seed: nnunet: of the folds' tie-breaking order.
    """
    check_format(format)
    if format == "nnunet":
        with write_nnunet(out, class_names, overwrite, split, always_train, seed=seed) as writer:
            yield writer
        return
    with write_folder(out, class_names, overwrite=overwrite) as folder:
        yield folder
        if split is not None:
            folder.write_text(SPLIT_FILE, json.dumps(dict(split), indent=2))
