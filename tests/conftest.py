"""Shared fixtures: tiny datasets written in the exact on-disk layouts of CaDIS, CholecSeg8k and folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def run_cli(
    args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``gauda ARGS`` in this process as its console script runs it: (exit status, stdout, stderr with
    the console's line wrapping undone)."""
    from gauda.cli import main

    monkeypatch.setattr(sys, "argv", ["gauda", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    err = " ".join(captured.err.split())
    return (code if isinstance(code, int) else 0 if code is None else 1), captured.out, err


# Tests use tiny shapes, where one thread is fastest and never oversubscribes a shared CPU.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own resized-frame cache instead of ~/.cache/gauda."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GAUDA_CACHE_DIR", str(cache))
    return cache


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def label_grid(values: list[int], height: int = 6, width: int = 8) -> np.ndarray:
    """A (height, width) uint8 mask whose pixels cycle through ``values`` (each value at least once)."""
    flat = np.resize(np.asarray(values, dtype=np.uint8), height * width)
    return flat.reshape(height, width)


def write_cadis(root: Path, videos: dict[str, list[np.ndarray]]) -> Path:
    """CaDIS layout: <root>/VideoNN/Images/<frame>.png and <root>/VideoNN/Labels/<frame>.png."""
    rng = np.random.default_rng(0)
    for video, masks in videos.items():
        for k, mask in enumerate(masks):
            name = f"{video}_frame{k:03d}.png"
            image = rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
            save_png(root / video / "Images" / name, image)
            save_png(root / video / "Labels" / name, mask)
    return root


def write_cholecseg8k(root: Path, clips: dict[str, list[np.ndarray]], rgb: bool = True) -> Path:
    """CholecSeg8k layout: <root>/videoNN/videoNN_<start>/frame_<k>_endo[_watershed_mask].png."""
    rng = np.random.default_rng(1)
    for clip, masks in clips.items():
        video = clip.split("_")[0]
        start = int(clip.split("_")[1])
        for offset, mask in enumerate(masks):
            k = start + offset
            folder = root / video / clip
            save_png(folder / f"frame_{k}_endo.png", rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8))
            stored = np.repeat(mask[..., None], 3, axis=2) if rgb else mask
            save_png(folder / f"frame_{k}_endo_watershed_mask.png", stored)
            save_png(folder / f"frame_{k}_endo_color_mask.png", np.zeros((*mask.shape, 3), np.uint8))
            save_png(folder / f"frame_{k}_endo_mask.png", stored)
    return root


def write_folder_dataset(
    root: Path, class_names: list[str], frames: dict[str, tuple[str, np.ndarray]]
) -> Path:
    """Folder layout: images/<stem>.png, masks/<stem>.png, classes.json, videos.json."""
    rng = np.random.default_rng(2)
    for stem, (_, mask) in frames.items():
        save_png(root / "images" / f"{stem}.png", rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8))
        save_png(root / "masks" / f"{stem}.png", mask)
    (root / "classes.json").write_text(json.dumps(class_names))
    (root / "videos.json").write_text(json.dumps({stem: video for stem, (video, _) in frames.items()}))
    return root


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory: pytest.TempPathFactory):
    """A trained (for a few steps) tiny generator: both autoencoders and a diffusion run on 16 px frames."""
    from tiny_runs import train_tiny_generator

    return train_tiny_generator(tmp_path_factory.mktemp("tiny_generator"))


@pytest.fixture(scope="module")
def segmenter_run(tiny_generator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmenter trained (a few steps) on the tiny generator's real data: the RO model, the SO settings
    and the judge of an image autoencoder's reconstructions."""
    from tiny_runs import train_tiny_segmenter

    config = tiny_generator.config(("segmentation.device=cpu",))
    return train_tiny_segmenter(config, tmp_path_factory.mktemp("segmenter") / "run")
