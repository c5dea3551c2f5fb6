"""The pure pieces of the training schemes: Adaptive Sampling weights, top-k, conditions, batch mixing,
curation agreement, and the background producer's life cycle."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from gauda.augmentation.adaptive import class_weights_from_iou, frame_weights
from gauda.augmentation.curation import mask_agreement
from gauda.augmentation.mixing import mix_batch, replaced_count
from gauda.augmentation.producer import ChunkProducer, ProducerClosedError
from gauda.augmentation.selection import pair_conditions, top_k_uncertain

NAN = float("nan")


@pytest.mark.parametrize("rule", ["softmax", "linear"])
def test_adaptive_class_weights_grow_as_a_class_iou_falls(rule) -> None:
    weights = class_weights_from_iou(torch.tensor([0.9, 0.5, 0.7, 0.1]), rule)
    assert torch.isclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert weights.argsort().tolist() == [0, 2, 1, 3]
    lower = class_weights_from_iou(torch.tensor([0.9, 0.3, 0.7, 0.1]), rule)
    assert lower[1] > weights[1]  # the same class, now scoring worse, gets more weight


def test_a_class_without_iou_gets_the_weight_of_the_mean_iou() -> None:
    weights = class_weights_from_iou(torch.tensor([0.2, NAN, 0.6]))
    assert torch.isclose(weights[1], class_weights_from_iou(torch.tensor([0.2, 0.4, 0.6]))[1])
    assert torch.isfinite(class_weights_from_iou(torch.tensor([NAN, NAN]))).all()


def test_frame_weights_take_the_max_or_mean_over_the_classes_present() -> None:
    classes = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    class_weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    assert frame_weights(classes, class_weights, "max").tolist() == pytest.approx([0.3, 0.5, 0.2])
    assert frame_weights(classes, class_weights, "mean").tolist() == pytest.approx([0.25, 0.5, 0.2])


def test_top_k_picks_the_most_uncertain_classes_and_skips_those_without_an_estimate() -> None:
    uncertainty = torch.tensor([0.1, NAN, 0.5, 0.3, NAN, 0.5])
    assert top_k_uncertain(uncertainty, 2) == [2, 5]
    assert top_k_uncertain(uncertainty, 3) == [2, 5, 3]
    assert top_k_uncertain(uncertainty, 10) == [2, 5, 3, 0]
    assert top_k_uncertain(torch.full((3,), NAN), 2) == []


def test_pair_conditions_each_go_round_robin_and_joint_ask_for_all() -> None:
    each = pair_conditions([4, 1], 5, 6, "each")
    assert each.sum(dim=1).tolist() == [1] * 5
    assert each.argmax(dim=1).tolist() == [4, 1, 4, 1, 4]
    joint = pair_conditions([4, 1], 3, 6, "joint")
    assert (joint.sum(dim=1) == 2).all() and joint[:, [1, 4]].all()
    with pytest.raises(ValueError, match="no classes"):
        pair_conditions([], 3, 6)


@pytest.mark.parametrize(
    ("batch_size", "fraction", "count"), [(8, 0.25, 2), (10, 0.25, 3), (3, 0.1, 0), (4, 1, 4)]
)
def test_replaced_count_rounds_half_up(batch_size, fraction, count) -> None:
    assert replaced_count(batch_size, fraction) == count


def _batch(members: int, size: int) -> dict:
    return {
        "image": torch.zeros(members, size, 3, 4, 4),
        "mask": torch.zeros(members, size, 4, 4, dtype=torch.long),
        "classes": torch.zeros(members, size, 3),
        "index": torch.arange(members * size).view(members, size),
        "name": [[f"real-{m}-{i}" for i in range(size)] for m in range(members)],
        "video": [["v"] * size for _ in range(members)],
    }


def test_mixing_replaces_exactly_k_frames_per_member_and_leaves_the_rest() -> None:
    batch = _batch(3, 8)
    count = replaced_count(8, 0.25)
    images = torch.ones(3, count, 3, 4, 4)
    masks = torch.full((3, count, 4, 4), 2)
    names = [[f"syn-{m}-{i}" for i in range(count)] for m in range(3)]
    mixed = mix_batch(batch, images, masks, names, 3, torch.Generator().manual_seed(0))
    for member in range(3):
        synthetic = mixed["index"][member] == -1
        assert int(synthetic.sum()) == count
        assert (mixed["image"][member, synthetic] == 1).all() and (
            mixed["image"][member, ~synthetic] == 0
        ).all()
        assert mixed["classes"][member, synthetic].tolist() == [[0, 0, 1]] * count
        assert sorted(n for n in mixed["name"][member] if n.startswith("syn")) == names[member]
        assert [v for v, s in zip(mixed["video"][member], synthetic, strict=True) if s] == [
            "synthetic"
        ] * count
    assert (batch["image"] == 0).all() and batch["name"][0][0] == "real-0-0"  # the input is untouched
    again = mix_batch(batch, images, masks, names, 3, torch.Generator().manual_seed(0))
    assert torch.equal(again["index"], mixed["index"])


def test_mask_agreement_is_the_frame_mean_iou() -> None:
    masks = torch.tensor([[[0, 0], [1, 1]], [[0, 0], [1, 1]]])
    prediction = torch.tensor([[[0, 0], [1, 1]], [[0, 0], [0, 1]]])
    assert mask_agreement(prediction, masks, 2).tolist() == pytest.approx([1.0, (2 / 3 + 1 / 2) / 2])


def _slow_chunk(request: str, index: int) -> str:
    time.sleep(0.01)
    return f"{request}:{index}"


@pytest.mark.parametrize("asynchronous", [False, True])
def test_producer_gives_the_same_chunks_in_both_modes_and_drops_an_old_request(asynchronous) -> None:
    producer = ChunkProducer(_slow_chunk, asynchronous)
    try:
        producer.submit("a", 3)
        assert [producer.chunk(i) for i in (0, 2, 1)] == ["a:0", "a:2", "a:1"]
        producer.submit("b", 2)
        assert producer.chunk(1) == "b:1"
        with pytest.raises(IndexError, match="chunk 2: the request has 2 chunks"):
            producer.chunk(2)
    finally:
        producer.close()
    assert not producer.alive


def test_a_failure_in_the_background_reaches_the_consumer_and_close_stops_the_thread() -> None:
    def fail(request: str, index: int) -> str:
        raise OSError("disk gone")

    producer = ChunkProducer(fail, asynchronous=True)
    producer.submit("a", 1)
    with pytest.raises(RuntimeError, match="failed in the background") as error:
        producer.chunk(0)
    assert isinstance(error.value.__cause__, OSError)
    producer.close()
    assert not producer.alive


def test_close_wakes_a_consumer_that_is_waiting() -> None:
    release = threading.Event()

    def blocked(request: str, index: int) -> str:
        release.wait(5)
        return "late"

    producer = ChunkProducer(blocked, asynchronous=True)
    producer.submit("a", 1)
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            producer.chunk(0)
        except BaseException as error:
            outcome.append(error)

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.05)
    closer = threading.Thread(target=producer.close)
    closer.start()
    consumer.join(2)
    release.set()
    closer.join(5)
    assert outcome and isinstance(outcome[0], ProducerClosedError)
    assert not producer.alive


def test_a_replace_fraction_that_replaces_no_frame_is_refused() -> None:
    from gauda.augmentation.training import check_scheme
    from gauda.config import ConfigError
    from gauda.presets import resolve_config

    config = resolve_config(
        "tiny",
        overrides=["scheme.name=gauda", "scheme.generator=nowhere", "segmentation.batch_size=1",
                   "scheme.replace_fraction=0.25"],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"scheme.replace_fraction 0.25: gives no pair to a batch of 1"):
        check_scheme(config)
