"""The one error type of the data stage; its message names the file(s) and what was expected."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset on disk that is not what gauda expects (missing, unreadable or inconsistent)."""


class DatasetProblems(DataError):  # noqa: N818 (a DataError; the name says what it carries)
    """Several problems found while scanning a dataset, reported together."""

    def __init__(self, dataset: str, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = "\n  - ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{dataset}: {len(problems)} problem(s) found:\n  - {shown}{more}")
