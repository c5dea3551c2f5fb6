"""Logged training metrics: a CSV in the run folder (long format: step, name, value), and TensorBoard
when it is installed. A resumed run drops the rows past the step it resumes from, so the log never
holds two histories."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from gauda.io import atomic_write_text

logger = logging.getLogger(__name__)


class MetricsLog:
    """Append ``step, name, value`` rows to ``metrics.csv``; mirror them to TensorBoard if available.

    ``resume_step``: a resumed run's last step that its checkpoint holds, in the run's own numbering of
    the rows; the rows logged after it (by the run that was stopped) are dropped.
    """

    def __init__(
        self,
        run_dir: str | Path,
        resume_step: int | None = None,
        tensorboard: bool = True,
        enabled: bool = True,
    ) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.enabled = enabled  # False: log nothing (the ranks of a torchrun job but rank 0)
        self._writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not self.path.exists():
            atomic_write_text(self.path, "step,name,value\n")
        else:
            kept = [row for row in self.read() if row[0] <= resume_step]
            atomic_write_text(
                self.path, "step,name,value\n" + "".join(f"{s},{n},{v!r}\n" for s, n, v in kept)
            )
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.path.parent / "tensorboard"))
            except ImportError:  # tensorboard is optional; the CSV is the record
                logger.debug("tensorboard not installed; logging to %s only", self.path)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            for name, value in values.items():
                handle.write(f"{step},{name},{float(value)!r}\n")
                if self._writer is not None and math.isfinite(float(value)):
                    self._writer.add_scalar(name, float(value), step)

    def read(self) -> list[tuple[int, str, float]]:
        with self.path.open() as handle:
            return [(int(r["step"]), r["name"], float(r["value"])) for r in csv.DictReader(handle)]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
