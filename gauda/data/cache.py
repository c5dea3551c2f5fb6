"""A disk cache of resized frames, so that decoding and resizing never hold training back.

The first use of a (dataset, size) reads, maps and resizes every frame once, in parallel threads, into
two ``.npy`` arrays; later uses memory-map them. The cache folder's name carries the source's
fingerprint (file sizes and times, class map, renderer version), so a changed dataset is never served
from a stale cache. A cache is built in a temporary folder and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from gauda.data.sources import FrameSource
from gauda.data.transforms import resize_pair

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("GAUDA_CACHE_DIR", Path.home() / ".cache" / "gauda"))


class CachedFrames:
    """Resized frames of a source: ``read(i)`` gives uint8 image (S, S, 3) and mask (S, S)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.images = np.load(folder / "images.npy", mmap_mode="r")  # (N, S, S, 3) uint8
        self.masks = np.load(folder / "masks.npy", mmap_mode="r")  # (N, S, S) uint8

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.images[index]), np.array(self.masks[index])


def cached_frames(
    source: FrameSource, size: int, cache_dir: str | Path | None = None, progress: bool = True
) -> CachedFrames:
    """The source's frames resized to ``size`` x ``size``, from the cache or built into it."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"{source.name}-{size}px-{source.fingerprint()}"
    if (folder / "index.json").is_file():
        return CachedFrames(folder)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        count = len(source)
        images = np.lib.format.open_memmap(staging / "images.npy", "w+", np.uint8, (count, size, size, 3))
        masks = np.lib.format.open_memmap(staging / "masks.npy", "w+", np.uint8, (count, size, size))

        def load(index: int) -> int:
            images[index], masks[index] = resize_pair(*source.read(index), size)
            return index

        # PNG decoding and resizing release the GIL, so threads use every core without copying arrays.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            jobs = pool.map(load, range(count))
            for _ in tqdm(jobs, total=count, desc=f"caching {source.name} at {size}px", disable=not progress):
                pass
        images.flush()
        masks.flush()
        names = [record.name for record in source.records]
        (staging / "index.json").write_text(json.dumps({"size": size, "names": names}))
        try:
            staging.rename(folder)
        except OSError:  # another process finished the same cache first; use theirs
            logger.info("cache %s was built concurrently; using the existing one", folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CachedFrames(folder)
