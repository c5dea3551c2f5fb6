"""The demo report's verdict: a few sentences written from the test scores, never by hand.

Which scheme leads on the label mean and by how much, who leads on each rare class, how far apart the
frequent classes are, and GAUDA against each baseline; with the caveat that the demo is one seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NAMES = {"default": "default training", "adaptive": "Adaptive Sampling", "gauda": "GAUDA"}


def rare_classes(classes: Sequence[Mapping[str, Any]], count: int = 3) -> list[str]:
    """The ``count`` classes in the fewest frames (``results["data"]["classes"]`` rows), rarest first."""
    present = [c for c in classes if c["frames"] > 0]
    return [c["name"] for c in sorted(present, key=lambda c: c["frames"])[:count]]


def _iou(evaluation: Mapping[str, Any], name: str) -> float | None:
    value = evaluation["per_class"].get(name, {}).get("iou")
    return None if value is None or value != value else float(value)  # NaN: absent from the test split


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def experiment_sentences(experiment: Mapping[str, Any], rare: Sequence[str]) -> list[str]:
    """What a ``gauda experiment`` (its ``experiment.json``) measured over seeds: the label mean of each
    column, mean +- std, and the rare classes' means, to read beside the demo's single seed."""
    table, columns = experiment["table"], list(experiment["columns"])
    seeds = len(experiment.get("seeds", []))

    def cell(row: str, column: str) -> str:
        mean, std = table[row][column]["mean"], table[row][column]["std"]
        return "no score" if mean is None else f"{mean:.3f} ± {std or 0.0:.3f}"  # None: no seed scored it

    def cells(row: str) -> str:
        return ", ".join(f"{NAMES.get(c, c)} {cell(row, c)}" for c in columns)

    where = experiment.get("scored_on", "the test split")
    sentences = [
        f"The experiment over {seeds} seeds ({experiment.get('model', '?')}, scored on {where}): "
        f"label mean {cells('label mean')}."
    ]
    present = [name for name in rare if name in table]
    if present:
        sentences.append("Its rare classes: " + "; ".join(f"{name}: {cells(name)}" for name in present) + ".")
    return sentences


def verdict(
    segmentation: Mapping[str, Mapping[str, Any]], rare: Sequence[str], cited: bool = False
) -> list[str]:
    """Sentences comparing the schemes' test scores (``results["segmentation"]``), rare classes ``rare``;
    ``cited``: an experiment over seeds follows (``experiment_sentences``)."""
    schemes = list(segmentation)
    means = {s: float(segmentation[s]["label_mean_iou"]) for s in schemes}
    ranked = sorted(schemes, key=lambda s: -means[s])
    leader = ranked[0]
    sentences = []
    if len(ranked) > 1:
        behind = ", ".join(f"{_signed(means[leader] - means[s])} over {NAMES.get(s, s)}" for s in ranked[1:])
        sentences.append(
            f"On the test label mean, {NAMES.get(leader, leader)} leads with {means[leader]:.3f} ({behind})."
        )
    for name in rare:
        scores = {s: _iou(segmentation[s], name) for s in schemes}
        known = {s: v for s, v in scores.items() if v is not None}
        if not known:
            sentences.append(f"{name} is absent from the test split: no score.")
            continue
        best = max(known, key=lambda s: known[s])
        listed = ", ".join(f"{NAMES.get(s, s)} {v:.3f}" for s, v in known.items())
        if known[best] == 0:
            sentences.append(f"{name} (rare) is missed by every scheme ({listed}).")
        else:
            sentences.append(f"{name} (rare): {NAMES.get(best, best)} is best ({listed}).")
    frequent = [n for n in segmentation[schemes[0]]["per_class"] if n not in rare]
    spreads = []
    for name in frequent:
        values = [v for s in schemes if (v := _iou(segmentation[s], name)) is not None]
        if len(values) > 1:
            spreads.append((max(values) - min(values), name))
    if spreads:
        spread, name = max(spreads)
        sentences.append(
            f"The frequent classes are within {spread:.3f} of each other across schemes (widest: {name})."
        )
    if "gauda" in schemes:
        for base in (s for s in schemes if s != "gauda"):
            rare_diffs = [
                g - b
                for n in rare
                if (g := _iou(segmentation["gauda"], n)) is not None
                and (b := _iou(segmentation[base], n)) is not None
            ]
            rare_text = (
                f", {_signed(sum(rare_diffs) / len(rare_diffs))} on the rare classes" if rare_diffs else ""
            )
            sentences.append(
                f"GAUDA against {NAMES.get(base, base)}: {_signed(means['gauda'] - means[base])} "
                f"label mean{rare_text}."
            )
    sentences.append(
        "One seed and one test split of a few videos: differences of a few hundredths are within "
        "the spread between seeds; the experiment over several seeds, scored on newly rendered videos, is "
        + ("gauda experiment, cited next." if cited else "gauda experiment (demo.experiment cites one here).")
    )
    return sentences
