import pytest
import torch

from gauda.data.batches import EpochBatchSampler, WeightedBatchSampler, rare_class_frame_weights


def test_epoch_batches_visit_every_sample_once_per_epoch() -> None:
    sampler = EpochBatchSampler(10, 5, seed=3)
    assert sorted(sampler.batch(0) + sampler.batch(1)) == list(range(10))


def test_frames_of_rare_classes_weigh_more_and_empty_frames_nothing() -> None:
    # four frames: background only, background + a class in 2 of 4 frames, the same plus a class in
    # 1 of 4 frames, and a frame whose pixels are all ignored
    counts = torch.tensor([[50, 0, 0], [40, 10, 0], [30, 10, 10], [0, 0, 0]])
    weights = rare_class_frame_weights(counts)
    assert weights[3] == 0
    assert weights[0].item() == pytest.approx((3 / 4) ** -0.5)
    assert weights[1].item() == pytest.approx(2**0.5) and weights[2].item() == pytest.approx(2.0)
    assert torch.equal(rare_class_frame_weights(counts > 0), weights)  # multi-hot vectors alike


def test_weighted_batches_follow_the_weights_and_skip_zero_weights() -> None:
    weights = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 8.0])
    sampler = WeightedBatchSampler(weights, 2, seed=0)
    drawn = torch.tensor([index for step in range(2000) for index in sampler.batch(step)])
    counts = torch.bincount(drawn, minlength=6)
    assert counts[0] == 0
    assert counts[5] > 3 * counts[1:5].float().mean()  # without replacement in a batch: below 8 times
    assert all(len(set(sampler.batch(step))) == 2 for step in range(50))  # no repeat within a batch


def test_weighted_batches_are_the_same_whether_resumed_or_fresh() -> None:
    weights = torch.rand(20)
    fresh = WeightedBatchSampler(weights, 4, seed=7)
    resumed = WeightedBatchSampler(weights, 4, seed=7, start_step=5)
    first = [batch for _, batch in zip(range(8), fresh, strict=False)]
    assert [batch for _, batch in zip(range(3), resumed, strict=False)] == first[5:8]
    assert fresh.steps_per_epoch == 5


@pytest.mark.parametrize(
    ("weights", "batch_size", "message"),
    [
        (torch.tensor([1.0, -1.0, 1.0]), 1, "weights: expected finite numbers >= 0"),
        (torch.tensor([1.0, 0.0, 0.0]), 2, r"batch_size 2: expected 1..1"),
    ],
)
def test_weighted_batches_refuse_bad_weights(weights, batch_size, message) -> None:
    with pytest.raises(ValueError, match=message):
        WeightedBatchSampler(weights, batch_size, seed=0)
