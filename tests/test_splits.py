import pytest

from gauda.data.config import SplitConfig
from gauda.data.errors import DataError
from gauda.data.splits import CADIS_OFFICIAL, SPLITS, split_indices, split_videos


def sizes(count: int, frames: int = 10) -> dict[str, int]:
    return {f"video{i:02d}": frames + (i % 7) for i in range(count)}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("count", [3, 17, 25, 80])
def test_every_video_lands_in_exactly_one_split_and_no_frame_is_shared(seed: int, count: int) -> None:
    videos = sizes(count)
    frame_ids = {v: list(range(i * 100, i * 100 + n)) for i, (v, n) in enumerate(videos.items())}
    assignment = split_videos(videos, SplitConfig(seed=seed))
    assert set(assignment) == set(videos) and set(assignment.values()) == set(SPLITS)
    indices = split_indices(frame_ids, assignment)
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not set(indices[a]) & set(indices[b])
    assert sum(len(i) for i in indices.values()) == sum(videos.values())


def test_random_split_is_close_to_the_requested_frame_fractions() -> None:
    videos = sizes(80)
    assignment = split_videos(videos, SplitConfig(fractions=(0.8, 0.1, 0.1), seed=3))
    total = sum(videos.values())
    for split, target in (("val", 0.1), ("test", 0.1)):
        share = sum(n for v, n in videos.items() if assignment[v] == split) / total
        assert abs(share - target) < 0.02, (split, share)


def test_the_seed_decides_the_split_and_repeats_it() -> None:
    videos = sizes(25)
    assert split_videos(videos, SplitConfig(seed=1)) == split_videos(videos, SplitConfig(seed=1))
    assert split_videos(videos, SplitConfig(seed=1)) != split_videos(videos, SplitConfig(seed=2))


def test_too_few_videos_for_a_three_way_split_is_an_error() -> None:
    with pytest.raises(DataError, match=r"has 2 video\(s\); a split by video .* needs at least 3"):
        split_videos(sizes(2), SplitConfig())
    assert set(split_videos(sizes(2), SplitConfig(fractions=(0.5, 0.5, 0.0))).values()) == {"train", "val"}


def test_cadis_official_split_puts_the_published_videos_in_val_and_test() -> None:
    videos = {f"Video{i:02d}": 100 for i in range(1, 26)}
    assignment = split_videos(videos, SplitConfig(method="official"))
    for split, names in CADIS_OFFICIAL.items():
        assert sorted(v for v, s in assignment.items() if s == split) == sorted(names)
    with pytest.raises(DataError, match=r"official val videos \['Video05'\]"):
        split_videos({v: n for v, n in videos.items() if v != "Video05"}, SplitConfig(method="official"))
