"""The procedural dataset: shapes, determinism, temporal coherence, class frequencies, smoke."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from gauda.data import synthetic
from gauda.data.config import DATA_PRESETS, SyntheticConfig
from gauda.data.synthetic import SYNTHETIC_CLASSES, render_frame

TINY = DATA_PRESETS["tiny"].synthetic
NUM_CLASSES = len(SYNTHETIC_CLASSES)


@pytest.fixture(scope="module")
def tiny_presence() -> np.ndarray:
    """(videos, frames, classes): whether each class occurs in each frame of the tiny preset."""
    presence = np.zeros((TINY.num_videos, TINY.frames_per_video, NUM_CLASSES), bool)
    for video in range(TINY.num_videos):
        for frame in range(TINY.frames_per_video):
            _, mask = render_frame(TINY, video, frame)
            assert mask.max() < NUM_CLASSES
            presence[video, frame] = np.bincount(mask.ravel(), minlength=NUM_CLASSES) > 0
    return presence


def test_class_list_starts_with_background_and_has_at_least_eight_classes() -> None:
    assert SYNTHETIC_CLASSES[0] == "Background"
    assert len(SYNTHETIC_CLASSES) >= 8
    assert len(set(SYNTHETIC_CLASSES)) == NUM_CLASSES


@pytest.mark.parametrize("size", [16, 64, 128])
def test_render_frame_returns_uint8_image_and_mask_of_the_configured_size(size: int) -> None:
    image, mask = render_frame(SyntheticConfig(image_size=size), 3, 2)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert mask.shape == (size, size) and mask.dtype == np.uint8


def test_mask_holds_class_ids_and_outside_the_field_of_view_is_black_background() -> None:
    for video in range(10):
        image, mask = render_frame(TINY, video, video % TINY.frames_per_video)
        assert mask.max() < NUM_CLASSES
        assert (mask == synthetic.ABDOMINAL_WALL).any()
        corners = (slice(0, 4), slice(-4, None))
        for rows in corners:
            for columns in corners:
                assert (mask[rows, columns] == synthetic.BACKGROUND).all()
                assert (image[rows, columns] == 0).all()
        # The field of view is lit: its middle is far from black.
        assert image[mask != synthetic.BACKGROUND].mean() > 60


def test_same_call_twice_gives_bit_identical_output() -> None:
    first_image, first_mask = render_frame(TINY, 7, 4)
    second_image, second_mask = render_frame(TINY, 7, 4)
    np.testing.assert_array_equal(first_image, second_image)
    np.testing.assert_array_equal(first_mask, second_mask)


def test_output_does_not_depend_on_the_order_of_calls() -> None:
    keys = [(video, frame) for video in (0, 5, 11) for frame in (0, 3, 9)]
    forward = {key: render_frame(TINY, *key) for key in keys}
    synthetic._layout.cache_clear()
    synthetic._videos_with.cache_clear()
    backward = {key: render_frame(TINY, *key) for key in reversed(keys)}
    for key in keys:
        np.testing.assert_array_equal(forward[key][0], backward[key][0])
        np.testing.assert_array_equal(forward[key][1], backward[key][1])


def test_different_videos_differ() -> None:
    masks = [render_frame(TINY, video, 0)[1] for video in range(6)]
    for index, mask in enumerate(masks):
        for other in masks[index + 1 :]:
            assert (mask != other).mean() > 0.01


def test_different_seeds_give_different_frames_and_any_integer_seed_works() -> None:
    _, mask = render_frame(TINY, 1, 1)
    _, other = render_frame(dataclasses.replace(TINY, seed=-3), 1, 1)
    assert (mask != other).mean() > 0.01


def test_consecutive_frames_have_similar_but_not_identical_masks() -> None:
    # Videos with a liver: it drifts, so its mask must change from frame to frame.
    for video in sorted(synthetic._videos_with(TINY.seed, TINY.num_videos)[synthetic.LIVER])[:4]:
        frames = [render_frame(TINY, video, frame) for frame in range(TINY.frames_per_video)]
        for (image, mask), (next_image, next_mask) in itertools.pairwise(frames):
            assert (mask == next_mask).mean() > 0.8
            assert (mask != next_mask).any()
            assert (image != next_image).any()


def test_every_class_occurs_in_the_tiny_preset(tiny_presence: np.ndarray) -> None:
    missing = [SYNTHETIC_CLASSES[c] for c in range(NUM_CLASSES) if not tiny_presence[..., c].any()]
    assert not missing


def test_rarest_instrument_occurs_in_at_most_five_percent_of_tiny_frames(tiny_presence: np.ndarray) -> None:
    frequency = tiny_presence.mean(axis=(0, 1))
    rarest = min(synthetic.INSTRUMENTS, key=lambda class_id: frequency[class_id])
    assert rarest == synthetic.CLIP_APPLIER
    assert 0 < frequency[rarest] <= 0.05


def test_class_frequencies_form_a_long_tail(tiny_presence: np.ndarray) -> None:
    frequency = dict(zip(SYNTHETIC_CLASSES, tiny_presence.mean(axis=(0, 1)), strict=True))
    assert frequency["Background"] == frequency["Abdominal wall"] == 1
    assert frequency["Liver"] > 0.5
    assert 0.3 < frequency["Grasper"] < 0.7
    assert 0.05 < frequency["Blood"] < 0.3
    assert 0.05 < frequency["L-hook"] < 0.35
    assert frequency["Clip applier"] < frequency["Blood"] < frequency["Gallbladder"] < frequency["Liver"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rare_instrument_quota_holds_for_other_seeds(seed: int) -> None:
    # Only the videos chosen for the clip applier can show it, so rendering those is enough.
    config = dataclasses.replace(TINY, seed=seed)
    videos = synthetic._videos_with(seed, config.num_videos)[synthetic.CLIP_APPLIER]
    shown = sum(
        (render_frame(config, video, frame)[1] == synthetic.CLIP_APPLIER).any()
        for video in videos
        for frame in range(config.frames_per_video)
    )
    assert 0 < shown <= 0.05 * config.num_videos * config.frames_per_video
    outside = next(video for video in range(config.num_videos) if video not in videos)
    for frame in range(config.frames_per_video):
        assert not (render_frame(config, outside, frame)[1] == synthetic.CLIP_APPLIER).any()


def test_smoke_changes_only_the_image() -> None:
    smoky = [
        (video, frame)
        for video in range(TINY.num_videos)
        for frame in range(TINY.frames_per_video)
        if synthetic._has_smoke(TINY, video, frame)
    ]
    # Smoke is occasional: present, but in a minority of frames.
    assert 0 < len(smoky) < 0.3 * TINY.num_videos * TINY.frames_per_video
    video, frame = smoky[0]
    image, mask = render_frame(TINY, video, frame)
    clear_image, clear_mask = synthetic._render(TINY, video, frame, smoke=False)
    np.testing.assert_array_equal(mask, clear_mask)
    inside = mask != synthetic.BACKGROUND
    # The haze lifts the dark parts of the scene towards white.
    difference = image[inside].astype(float) - clear_image[inside].astype(float)
    assert difference.mean() > 10
    assert (image[~inside] == clear_image[~inside]).all()
