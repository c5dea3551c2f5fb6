"""Class maps: from the label values stored in a dataset's mask files to gauda's class ids.

Every mask in gauda holds class ids ``0 .. num_classes - 1`` and ``IGNORE_INDEX`` for pixels that carry
no class (edges, unlabelled pixels, classes a setting drops). A stored value the map does not know is
an error, never a silent class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from gauda.data.errors import DataError
from gauda.metrics.segmentation import IGNORE_INDEX  # the metrics leave these pixels out

_UNKNOWN = -1

# CaDIS (CaDISv2) label ids 0..35 as stored in its Labels/*.png.
CADIS_CLASSES: tuple[str, ...] = (
    "Pupil", "Surgical Tape", "Hand", "Eye Retractors", "Iris", "Skin", "Cornea",
    "Hydrodissection Cannula", "Viscoelastic Cannula", "Capsulorhexis Cystotome", "Rycroft Cannula",
    "Bonn Forceps", "Primary Knife", "Phacoemulsifier Handpiece", "Lens Injector", "I/A Handpiece",
    "Secondary Knife", "Micromanipulator", "I/A Handpiece Handle", "Capsulorhexis Forceps",
    "Rycroft Cannula Handle", "Phacoemulsifier Handpiece Handle", "Capsulorhexis Cystotome Handle",
    "Secondary Knife Handle", "Lens Injector Handle", "Suture Needle", "Needle Holder",
    "Charleux Cannula", "Primary Knife Handle", "Vitrectomy Handpiece", "Mendez Ring", "Marker",
    "Hydrodissection Cannula Handle", "Troutman Forceps", "Cotton", "Iris Hooks",
)  # fmt: skip

# Setting II (the paper's): 17 classes, instruments merged with their handles, rare ones ignored.
_CADIS_SETTING_II: dict[str, tuple[int, ...]] = {
    "Pupil": (0,), "Surgical Tape": (1,), "Hand": (2,), "Eye Retractors": (3,), "Iris": (4,),
    "Skin": (5,), "Cornea": (6,),
    "Cannula": (7, 8, 10, 20, 27, 32),
    "Capsulorhexis Cystotome": (9, 22),
    "Tissue Forceps": (11, 33),
    "Primary Knife": (12, 28),
    "Phacoemulsification Handpiece": (13, 21),
    "Lens Injector": (14, 24),
    "Irrigation/Aspiration Handpiece": (15, 18),
    "Secondary Knife": (16, 23),
    "Micromanipulator": (17,),
    "Capsulorhexis Forceps": (19,),
}  # fmt: skip
_CADIS_SETTING_II_IGNORED = (25, 26, 29, 30, 31, 34, 35)

# CholecSeg8k watershed masks: gray value -> class, class ids in this order.
CHOLECSEG8K_CLASSES: tuple[tuple[str, int], ...] = (
    ("Black Background", 50), ("Abdominal Wall", 11), ("Liver", 21), ("Gastrointestinal Tract", 13),
    ("Fat", 12), ("Grasper", 31), ("Connective Tissue", 23), ("Blood", 24), ("Cystic Duct", 25),
    ("L-hook Electrocautery", 32), ("Gallbladder", 22), ("Hepatic Vein", 33), ("Liver Ligament", 5),
)  # fmt: skip
# 255: the 1-pixel white edge; 0: unlabelled; 35 and 36: stray values found in the released masks.
CHOLECSEG8K_IGNORED = (0, 255, 35, 36)


@dataclass(frozen=True)
class LabelMap:
    """A lookup from stored mask values (0..255) to class ids, ``IGNORE_INDEX`` or unknown."""

    class_names: tuple[str, ...]
    table: tuple[int, ...]  # 256 entries: class id, IGNORE_INDEX, or -1 for a value that must not occur

    @classmethod
    def build(
        cls, class_names: Iterable[str], sources: Mapping[int, Iterable[int]], ignored: Iterable[int] = ()
    ) -> LabelMap:
        """``sources[class_id]`` lists the stored values that become ``class_id``."""
        table = [_UNKNOWN] * 256
        for class_id, values in sources.items():
            for value in values:
                table[value] = class_id
        for value in ignored:
            table[value] = IGNORE_INDEX
        return cls(tuple(class_names), tuple(table))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def unknown_values(self, raw: np.ndarray) -> list[int]:
        present = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
        return [int(v) for v in present if self.table[v] == _UNKNOWN]

    def apply(self, raw: np.ndarray, source: str | Path = "mask") -> np.ndarray:
        """Map a uint8 array of stored values to class ids; unknown values raise ``DataError``."""
        unknown = self.unknown_values(raw)
        if unknown:
            known = sorted(v for v in range(256) if self.table[v] != _UNKNOWN)
            raise DataError(
                f"{source}: label values {unknown} are not in the class map; expected values in "
                f"{_ranges(known)} (classes or ignored)"
            )
        return self._lookup[raw]

    @cached_property
    def _lookup(self) -> np.ndarray:
        # unknown entries are never used: apply() rejects masks that contain them
        return np.asarray([IGNORE_INDEX if v == _UNKNOWN else v for v in self.table], dtype=np.uint8)


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(f"{start}-{v}" if v != start else f"{v}")
            start = None
    return "{" + ", ".join(parts) + "}"


def cadis_label_map(setting: str) -> LabelMap:
    """CaDIS class map for experimental setting ``I``, ``II`` (the paper's) or ``III``."""
    if setting == "I":  # anatomy + one merged instrument class
        names = (*CADIS_CLASSES[:7], "Instrument")
        sources = {i: (i,) for i in range(7)} | {7: tuple(range(7, 36))}
        return LabelMap.build(names, sources)
    if setting == "II":
        sources = {i: values for i, values in enumerate(_CADIS_SETTING_II.values())}
        return LabelMap.build(_CADIS_SETTING_II, sources, _CADIS_SETTING_II_IGNORED)
    if setting == "III":
        return LabelMap.build(CADIS_CLASSES[:25], {i: (i,) for i in range(25)}, range(25, 36))
    raise DataError(f"CaDIS setting {setting!r}: expected one of 'I', 'II', 'III'")


def cholecseg8k_label_map() -> LabelMap:
    names = [name for name, _ in CHOLECSEG8K_CLASSES]
    sources = {i: (gray,) for i, (_, gray) in enumerate(CHOLECSEG8K_CLASSES)}
    return LabelMap.build(names, sources, CHOLECSEG8K_IGNORED)


def index_label_map(class_names: Iterable[str]) -> LabelMap:
    """The identity map of the ``folder`` format: value = class id, 255 = ignore."""
    names = tuple(class_names)
    return LabelMap.build(names, {i: (i,) for i in range(len(names))}, (IGNORE_INDEX,))
