"""Procedural endoscopic scenes with pixel-exact masks: the built-in dataset that needs no download.

A frame is painted in layers on normalised scene coordinates ([-1, 1] across the image, so the layout does
not depend on the render size): abdominal wall as base tissue, organs, blood, instruments, then smoke, the
endoscope's vignette and sensor noise. Each layer writes its class id into the mask exactly where it
paints, so image and mask agree pixel for pixel; smoke alone veils the image without being a class.

Frames of one video share a layout drawn from ``(seed, video)`` and differ by small, smooth motion (organ
drift and breathing, camera jitter, instruments sliding along their axis) and by noise drawn from
``(seed, video, frame)``. Which videos contain which class is a seeded permutation of the videos cut at a
fixed count per class, so the long tail of class frequencies holds by construction, not by luck.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gauda.data.config import SyntheticConfig

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "Background",  # outside the endoscope's circular field of view
    "Abdominal wall",
    "Liver",
    "Fat",
    "Gallbladder",
    "Blood",
    "Grasper",
    "L-hook",
    "Clip applier",
)
BACKGROUND, ABDOMINAL_WALL, LIVER, FAT, GALLBLADDER, BLOOD, GRASPER, HOOK, CLIP_APPLIER = range(9)
INSTRUMENTS: tuple[int, ...] = (GRASPER, HOOK, CLIP_APPLIER)

# Share of videos that contain each optional class. Organs and blood stay in view once there, so their
# frame frequency is about this share; instruments are in view in only part of the frames (_DUTY).
_VIDEO_SHARE = {
    LIVER: 0.7,
    FAT: 0.5,
    GALLBLADDER: 0.4,
    BLOOD: 0.2,
    GRASPER: 0.65,
    HOOK: 0.3,
    CLIP_APPLIER: 0.06,
}
# Share of frames an instrument is in view, over an in-and-out cycle of 8-12 frames. The clip applier's
# bound keeps it in at most 6 of any 10 consecutive frames (under 4 % of all frames with 6 % of the videos),
# and its cycle's gap (at most 8 frames) is shorter than a 10-frame video, so each of its videos shows it.
_DUTY = {GRASPER: (0.6, 1.0), HOOK: (0.5, 0.9), CLIP_APPLIER: (0.3, 0.5)}

# Base colour (RGB in [0, 1]), range of texture wave numbers and texture contrast of each tissue.
_TISSUE: dict[int, tuple[tuple[float, float, float], tuple[float, float], float]] = {
    ABDOMINAL_WALL: ((0.78, 0.34, 0.32), (2.0, 30.0), 0.22),
    LIVER: ((0.50, 0.12, 0.10), (2.0, 12.0), 0.22),
    FAT: ((0.93, 0.76, 0.38), (6.0, 40.0), 0.25),
    GALLBLADDER: ((0.40, 0.50, 0.30), (2.0, 10.0), 0.18),
    BLOOD: ((0.30, 0.015, 0.02), (6.0, 20.0), 0.30),
}
_GLOSS = {LIVER: 0.4, GALLBLADDER: 0.5, BLOOD: 0.7}  # strength of wet specular glints
_SILVER = (0.72, 0.73, 0.76)
# Each instrument has its own tint and tip, so that a rare one is hard only for being rare: a black
# insulated grasper with silver jaws, a blue-grey L-hook, a bronze clip applier holding a clip.
_SHAFT = {GRASPER: (0.16, 0.16, 0.18), HOOK: (0.42, 0.52, 0.72), CLIP_APPLIER: (0.78, 0.58, 0.26)}
_HALF_WIDTH = {GRASPER: 0.065, HOOK: 0.042, CLIP_APPLIER: 0.08}
_WAVES = 5  # sinusoids per texture: enough to break regularity, cheap to evaluate
_SMOKE_PROBABILITY = 0.12


def _entropy(seed: int) -> int:
    return seed % 2**64  # SeedSequence rejects negative integers


@dataclass(frozen=True, eq=False)
class _Blob:
    class_id: int
    centre: np.ndarray  # (2,) at rest; drifts by ``drift`` along slow sinusoids
    radius: float
    aspect: float  # elongation along ``orientation``
    orientation: float
    harmonics: np.ndarray  # relative amplitudes of cos(m theta + phase) for m = 2, 3, ...
    harmonic_phases: np.ndarray
    drift: np.ndarray
    drift_phases: np.ndarray
    colour: np.ndarray
    waves: np.ndarray  # (_WAVES, 2) wave vectors of the texture, which moves with the blob
    wave_phases: np.ndarray
    contrast: float
    first_frame: int  # only for blood: it appears at this frame, then spreads


@dataclass(frozen=True, eq=False)
class _Instrument:
    class_id: int
    entry: np.ndarray  # (2,) outside the field of view: the shaft comes in from there
    target: np.ndarray  # (2,) the tip's mean position
    slide: float  # amplitude of the in-and-out motion along the axis
    speed: float
    phase: float
    period: int  # frames of one cycle of being in view and out of it
    on_frames: int
    offset: int
    side: float  # +1 or -1: which way the hook bends; varies the jaws' rhythm


@dataclass(frozen=True, eq=False)
class _Layout:
    fov_centre: np.ndarray
    fov_radius: float
    jitter: np.ndarray  # (2,) amplitude of the camera's jitter
    jitter_phases: np.ndarray
    wall: _Blob  # the base tissue: only its colour and texture are used
    vessels: tuple[float, float, float, float]  # direction, frequency, warp, warp frequency
    blobs: tuple[_Blob, ...]  # painted in order, later ones on top
    instruments: tuple[_Instrument, ...]


@lru_cache(maxsize=16)
def _videos_with(seed: int, num_videos: int) -> dict[int, frozenset[int]]:
    """For each optional class, the videos that contain it: a fixed count, chosen by a seeded permutation."""
    chosen = {}
    for class_id, share in _VIDEO_SHARE.items():
        order = np.random.default_rng((_entropy(seed), 3, class_id)).permutation(num_videos)
        chosen[class_id] = frozenset(order[: max(1, round(share * num_videos))].tolist())
    return chosen


def _tissue(
    rng: np.random.Generator,
    class_id: int,
    radius: tuple[float, float],
    distance: tuple[float, float],
    aspect: tuple[float, float],
) -> _Blob:
    """A deformed ellipse of one tissue: its size, its centre's distance from the middle, its elongation."""
    colour, (low, high), contrast = _TISSUE[class_id]
    # Log-uniform wave numbers mix broad shading with fine grain.
    magnitude = np.exp(rng.uniform(np.log(low), np.log(high), _WAVES))
    angle = rng.uniform(0, 2 * np.pi, _WAVES)
    position_angle, position_distance = rng.uniform(0, 2 * np.pi), rng.uniform(*distance)
    return _Blob(
        class_id=class_id,
        centre=position_distance * np.array([np.cos(position_angle), np.sin(position_angle)]),
        radius=float(rng.uniform(*radius)),
        aspect=float(rng.uniform(*aspect)),
        orientation=float(rng.uniform(0, np.pi)),
        # Amplitudes fall with the harmonic's order: lumpy outlines, not stars.
        harmonics=rng.uniform(0.05, 0.3 if class_id == BLOOD else 0.16, 4) / np.arange(1, 5),
        harmonic_phases=rng.uniform(0, 2 * np.pi, 4),
        drift=rng.uniform(0.02, 0.05, 2),
        drift_phases=rng.uniform(0, 2 * np.pi, 2),
        colour=np.clip(np.array(colour) * rng.uniform(0.88, 1.12, 3), 0, 1).astype(np.float32),
        waves=np.stack([magnitude * np.cos(angle), magnitude * np.sin(angle)], axis=1),
        wave_phases=rng.uniform(0, 2 * np.pi, _WAVES),
        contrast=contrast,
        first_frame=int(rng.integers(0, 7)),
    )


@lru_cache(maxsize=256)
def _layout(seed: int, num_videos: int, video: int) -> _Layout:
    """What the frames of one video share. Every parameter is drawn, present or not, in a fixed order, so
    that one class's presence never shifts another's parameters."""
    rng = np.random.default_rng((_entropy(seed), 1, video))
    present = _videos_with(seed, num_videos)
    fov_centre, fov_radius = rng.uniform(-0.03, 0.03, 2), float(rng.uniform(0.9, 0.98))
    jitter, jitter_phases = rng.uniform(0.01, 0.03, 2), rng.uniform(0, 2 * np.pi, 2)
    wall = _tissue(rng, ABDOMINAL_WALL, (1.0, 1.0), (0.0, 0.0), (1.0, 1.0))
    vessels = (rng.uniform(0, np.pi), rng.uniform(2.5, 5.0), rng.uniform(1.0, 2.5), rng.uniform(2.0, 4.0))
    candidates = (
        # The liver is large and comes in from one side; gallbladder and blood lie nearer the middle.
        _tissue(rng, LIVER, (0.55, 0.8), (0.45, 0.75), (1.1, 1.5)),
        _tissue(rng, FAT, (0.25, 0.4), (0.2, 0.6), (1.0, 1.6)),
        _tissue(rng, GALLBLADDER, (0.17, 0.24), (0.0, 0.35), (1.5, 2.1)),
        _tissue(rng, BLOOD, (0.12, 0.2), (0.0, 0.45), (1.0, 1.4)),
    )
    # Instruments come in from well-separated sides, so that they rarely hide each other.
    first_angle = rng.uniform(0, 2 * np.pi)
    instruments = []
    for index, class_id in enumerate(INSTRUMENTS):
        angle = first_angle + index * 2 * np.pi / 3 + rng.uniform(-0.4, 0.4)
        period = int(rng.integers(8, 13))
        instruments.append(
            _Instrument(
                class_id=class_id,
                entry=fov_centre + 1.45 * np.array([np.cos(angle), np.sin(angle)]),
                target=rng.uniform(-0.3, 0.3, 2),
                slide=float(rng.uniform(0.05, 0.15)),
                speed=float(rng.uniform(0.4, 0.8)),
                phase=float(rng.uniform(0, 2 * np.pi)),
                period=period,
                on_frames=max(1, round(rng.uniform(*_DUTY[class_id]) * period)),
                offset=int(rng.integers(0, period)),
                side=float(rng.choice([-1.0, 1.0])),
            )
        )
    blobs = tuple(blob for blob in candidates if video in present[blob.class_id])
    tools = tuple(tool for tool in instruments if video in present[tool.class_id])
    return _Layout(fov_centre, fov_radius, jitter, jitter_phases, wall, vessels, blobs, tools)


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coordinates = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1
    return coordinates[None, :].repeat(size, 0), coordinates[:, None].repeat(size, 1)


def _texture(dx: np.ndarray, dy: np.ndarray, waves: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Mean of random sinusoids, in [-1, 1]: cheap smooth noise."""
    total = np.zeros_like(dx)
    for (kx, ky), phase in zip(waves.tolist(), phases.tolist(), strict=True):
        total += np.sin(kx * dx + ky * dy + phase)  # Python floats keep dx's float32
    return total / len(phases)


def _window(coordinates: np.ndarray, low: float, high: float) -> slice:
    """The indices of sorted ``coordinates`` within [low, high]."""
    start = int(np.searchsorted(coordinates, low, side="left"))
    return slice(start, max(start, int(np.searchsorted(coordinates, high, side="right"))))


def _paint_blob(
    image: np.ndarray, mask: np.ndarray, xs: np.ndarray, ys: np.ndarray, blob: _Blob, frame: int
) -> None:
    centre_x, centre_y = (blob.centre + blob.drift * np.sin(0.35 * frame + blob.drift_phases)).tolist()
    # Organs breathe; blood spreads from its first frame on.
    grow = min(1.0, 0.45 + 0.12 * (frame - blob.first_frame)) if blob.class_id == BLOOD else 1.0
    scale = blob.radius * grow * (1 + 0.02 * math.sin(0.9 * frame))
    # Work on the bounding box only, so that small blobs cost little.
    extent = scale * blob.aspect * (1 + float(np.abs(blob.harmonics).sum()))
    rows = _window(ys[:, 0], centre_y - extent, centre_y + extent)
    columns = _window(xs[0], centre_x - extent, centre_x + extent)
    dx, dy = xs[rows, columns] - centre_x, ys[rows, columns] - centre_y
    cosine, sine = math.cos(blob.orientation), math.sin(blob.orientation)
    lengthwise, crosswise = (dx * cosine + dy * sine) / blob.aspect, dy * cosine - dx * sine
    distance_squared = lengthwise * lengthwise + crosswise * crosswise
    # cos(m theta) and sin(m theta) by the angle-addition recurrence: arctan2 would cost more than the rest.
    distance = np.sqrt(distance_squared) + 1e-6
    cos_1, sin_1 = lengthwise / distance, crosswise / distance
    cos_m, sin_m = cos_1, sin_1
    rim = np.ones_like(dx)
    for amplitude, phase in zip(blob.harmonics.tolist(), blob.harmonic_phases.tolist(), strict=True):
        cos_m, sin_m = cos_m * cos_1 - sin_m * sin_1, sin_m * cos_1 + cos_m * sin_1  # m = 2, 3, ...
        rim += (amplitude * math.cos(phase)) * cos_m - (amplitude * math.sin(phase)) * sin_m
    relative = distance_squared / (rim * rim * scale * scale)
    inside = relative < 1
    # A dome profile darkens the rim, so the organ looks rounded and its outline shows.
    dome = np.sqrt(1 - relative[inside])
    dx, dy = dx[inside], dy[inside]
    texture = _texture(dx, dy, blob.waves, blob.wave_phases)
    colour = blob.colour * ((0.5 + 0.5 * dome) * (1 + blob.contrast * texture))[:, None]
    if blob.class_id in _GLOSS:
        # Wet glints where the bumpy surface faces the camera: near the dome's top, on peaks of finer texture.
        fine = _texture(dx, dy, blob.waves * 3, blob.wave_phases)
        colour += (_GLOSS[blob.class_id] * np.clip((dome + 0.3 * fine - 0.97) * 12, 0, 1))[:, None]
    image[rows, columns][inside] = colour
    mask[rows, columns][inside] = blob.class_id


def _metal(colour: tuple[float, float, float], across: np.ndarray, highlight: float) -> np.ndarray:
    """A cylinder lit from the camera: bright along its axis, dark at the sides, with a specular stripe."""
    across = np.clip(across, -1, 1)
    body = np.sqrt(1 - across * across)
    stripe = highlight * np.exp(-(((across - 0.35) / 0.18) ** 2))
    return np.asarray(colour, np.float32) * (0.2 + 0.8 * body)[:, None] + stripe[:, None]


def _paint_instrument(
    image: np.ndarray, mask: np.ndarray, xs: np.ndarray, ys: np.ndarray, tool: _Instrument, frame: int
) -> None:
    entry_x, entry_y = tool.entry.tolist()
    axis_x, axis_y = (tool.target - tool.entry).tolist()
    length = math.hypot(axis_x, axis_y)
    axis_x, axis_y = axis_x / length, axis_y / length
    depth = length + tool.slide * math.sin(tool.speed * frame + tool.phase)
    dx, dy = xs - (entry_x + depth * axis_x), ys - (entry_y + depth * axis_y)
    along, across = dx * axis_x + dy * axis_y, dy * axis_x - dx * axis_y  # from the tip; along > 0 beyond it
    width = _HALF_WIDTH[tool.class_id]
    shaft = (along <= 0) & (along >= -depth)
    # A soft shadow on the tissue, offset as if lit slightly off-axis; the mask is unaffected.
    penumbra = np.clip((1.5 * width - np.abs(across - 0.035)) / (0.6 * width), 0, 1)
    image *= (1 - 0.45 * penumbra * shaft)[..., None]
    # (region, position across the part in [-1, 1], colour, highlight), painted in order.
    parts = [(shaft & (np.abs(across) <= width), across / width, _SHAFT[tool.class_id], 0.45)]
    if tool.class_id == GRASPER:
        # A silver ring below the hinge, a round hinge, two tapered jaws opening and closing.
        parts.append((shaft & (along > -0.04) & (np.abs(across) <= width), across / width, _SILVER, 0.5))
        hinge = (along >= 0) & (along * along + across * across <= (0.8 * width) ** 2)
        parts.append((hinge, across / width, _SILVER, 0.5))
        opening = 0.12 + 0.18 * (1 + math.sin(0.7 * frame + tool.phase * tool.side))
        jaw_length, jaw_width = 0.16, 0.55 * width
        for sign in (-1.0, 1.0):
            cosine, sine = math.cos(opening), sign * math.sin(opening)
            jaw_along, jaw_across = along * cosine + across * sine, across * cosine - along * sine
            half = jaw_width * (1 - 0.6 * np.clip(jaw_along / jaw_length, 0, 1))
            jaw = (jaw_along >= 0) & (jaw_along <= jaw_length) & (np.abs(jaw_across) <= half)
            parts.append((jaw, jaw_across / half, _SILVER, 0.6))
    elif tool.class_id == HOOK:
        # A thin electrode rod ending in a short hook bent at a right angle.
        rod, bend = 0.4 * width, 0.14
        electrode = (along >= 0) & (along <= bend + rod) & (np.abs(across) <= rod)
        parts.append((electrode, across / rod, _SILVER, 0.7))
        sideways = across * tool.side
        hook = (np.abs(along - bend) <= rod) & (sideways >= 0) & (sideways <= 0.09)
        parts.append((hook, (along - bend) / rod, _SILVER, 0.7))
    else:
        # Two broad parallel jaws holding a bright clip between them.
        jaw_length = 0.13
        for sign in (-1.0, 1.0):
            jaw_across = (across - sign * 0.6 * width) / (0.3 * width)
            jaw = (along >= 0) & (along <= jaw_length) & (np.abs(jaw_across) <= 1)
            parts.append((jaw, jaw_across, _SHAFT[CLIP_APPLIER], 0.5))
        clip = (along >= 0.02) & (along <= jaw_length - 0.01) & (np.abs(across) <= 0.22 * width)
        parts.append((clip, across / (0.22 * width), (0.95, 0.95, 0.92), 0.3))
    for region, position, colour, highlight in parts:
        image[region] = _metal(colour, position[region], highlight)
        mask[region] = tool.class_id


def _has_smoke(config: SyntheticConfig, video: int, frame: int) -> bool:
    """Whether cautery smoke veils this frame; a draw of its own, so that asking costs no rendering."""
    return bool(np.random.default_rng((_entropy(config.seed), 4, video, frame)).random() < _SMOKE_PROBABILITY)


def _render(
    config: SyntheticConfig, video: int, frame: int, smoke: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``render_frame``, with smoke forced on or off unless ``smoke`` is None."""
    layout = _layout(config.seed, config.num_videos, video)
    size = config.image_size
    x, y = _grid(size)
    shift_x, shift_y = (layout.jitter * np.sin(0.8 * frame + layout.jitter_phases)).tolist()
    xs, ys = x + shift_x, y + shift_y  # scene coordinates: the scene shakes, the field of view does not
    wall = layout.wall
    texture = _texture(xs, ys, wall.waves, wall.wave_phases)
    direction, frequency, warp, warp_frequency = layout.vessels
    cosine, sine = math.cos(direction), math.sin(direction)
    # Thin lines where a warped sinusoid crosses zero.
    warped = warp * np.sin(warp_frequency * (xs * sine - ys * cosine))
    ridge = np.sin(frequency * (xs * cosine + ys * sine) + warped)
    vessels = np.exp(-(ridge * ridge) / 0.01)
    image = wall.colour * (1 + wall.contrast * texture)[..., None]
    # Vessels redden the wall (less green and blue) and fade in and out along their course.
    image *= 1 - (vessels * (0.6 + 0.4 * texture))[..., None] * np.array([0.1, 0.45, 0.4], np.float32)
    mask = np.full((size, size), ABDOMINAL_WALL, np.uint8)
    for blob in layout.blobs:
        if blob.class_id != BLOOD or frame >= blob.first_frame:
            _paint_blob(image, mask, xs, ys, blob, frame)
    for tool in layout.instruments:
        if (frame + tool.offset) % tool.period < tool.on_frames:
            _paint_instrument(image, mask, xs, ys, tool, frame)
    rng = np.random.default_rng((_entropy(config.seed), 2, video, frame))
    # Drawn whether or not there is smoke, so that the noise below is the same either way.
    waves, phases = rng.uniform(-3, 3, (_WAVES, 2)), rng.uniform(0, 2 * np.pi, _WAVES)
    thickness = rng.uniform(0.35, 0.7)
    if _has_smoke(config, video, frame) if smoke is None else smoke:
        # A patchy, whitish haze over the scene; it is not a class.
        density = thickness * (0.65 + 0.35 * _texture(x, y, waves, phases))
        image += (np.array([0.86, 0.84, 0.82], np.float32) - image) * density[..., None]
    # The endoscope lights the middle most; outside its circular field of view the frame is black.
    centre_x, centre_y = layout.fov_centre.tolist()
    radius_squared = ((x - centre_x) ** 2 + (y - centre_y) ** 2) / layout.fov_radius**2
    inside = radius_squared < 1
    light = 1.15 * (1 - 0.8 * radius_squared * np.sqrt(radius_squared))
    # Sensor noise on brightness only: a third of the cost of noise per channel, and as good a nuisance.
    light += 0.012 * rng.standard_normal((size, size), dtype=np.float32)
    image *= (light * inside)[..., None]
    mask[~inside] = BACKGROUND
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), mask


def render_frame(config: SyntheticConfig, video: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame of the synthetic dataset.

    Returns ``(image, mask)``: ``image`` is uint8 RGB of shape ``(S, S, 3)`` and ``mask`` uint8 of shape
    ``(S, S)`` holding indices into ``SYNTHETIC_CLASSES``, with ``S = config.image_size``. The result is a
    pure function of ``config.seed``, ``video``, ``frame``, ``config.image_size`` and, only through which
    videos contain which class, ``config.num_videos``: bit-identical whatever the order of calls.
    """
    return _render(config, video, frame)
