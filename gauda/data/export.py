"""``gauda data export``: any dataset, remapped and resized, written in the ``folder`` or nnU-Net format."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from gauda.config import to_yaml
from gauda.data.cache import cached_frames
from gauda.data.config import DataConfig
from gauda.data.dataset import Frames, open_source
from gauda.data.folder import check_output_folder
from gauda.data.splits import split_summary, split_videos
from gauda.data.writers import DatasetFormat, write_dataset


def export_dataset(
    config: DataConfig,
    out: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    full_config: object = None,
    format: DatasetFormat = "folder",
) -> Path:
    """Write the configured dataset (class-mapped, at ``config.image_size``) to ``out`` in ``format``.

    Beside the frames it records the configured split of its videos (``split.json`` of a folder dataset,
    ``gauda.json`` of an nnU-Net one, whose test split goes to imagesTs/labelsTs) and writes
    ``config.yaml`` (``full_config`` if given, else the data configuration). Nothing at ``out`` changes
    unless the whole export succeeds.
    """
    check_output_folder(out, overwrite, inputs=[config.root] if config.root else [])  # before the work
    source = open_source(config)
    videos = source.videos()
    assignment = split_videos({v: len(f) for v, f in videos.items()}, config.split, source.recorded_split)
    summary = split_summary(videos, assignment, config.split)
    frames: Frames = source
    if config.image_size is not None:
        frames = cached_frames(source, config.image_size, config.cache_dir, progress=progress)
    with write_dataset(
        out, source.class_names, format, overwrite, split=summary, seed=config.split.seed
    ) as writer:
        for index in tqdm(range(len(source)), desc=f"exporting {source.name}", disable=not progress):
            record = source.records[index]
            writer.add(record.name, record.video, *frames.read(index))
        writer.write_text("config.yaml", to_yaml(full_config if full_config is not None else config))
    return Path(out)
