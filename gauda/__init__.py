"""gauda: uncertainty-guided generative augmentation for surgical segmentation.

The Python API (``gauda.api``) is importable from here: ``gauda.load_generator``, ``gauda.sample``,
``gauda.train_segmenter``, ``gauda.evaluate_masks``; it loads torch only when first used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate_masks", "load_generator", "sample", "train_segmenter"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gauda import api

        return getattr(api, name)
    raise AttributeError(f"module 'gauda' has no attribute {name!r}")
