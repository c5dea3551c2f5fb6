"""GAUDA's generated pairs that count: every member walks the whole request, pairs without the requested
class are dropped, real frames of the requested classes are never replaced, and the real frames are drawn
by uncertainty; plus the random-class control."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from gauda.augmentation.config import SCHEME_PRESETS, scheme_variant
from gauda.augmentation.curation import presence_keep, requested_labels
from gauda.augmentation.mixing import mix_batch
from gauda.augmentation.producer import ChunkProducer
from gauda.augmentation.selection import class_weights_from_uncertainty, random_classes
from gauda.augmentation.uncertainty_guided import Request, UncertaintyGuidedAugmentation
from gauda.generation.generator import Sampling

NAMES = ("a", "b", "c")


class StubGenerator:
    """Pairs whose mask holds the conditioned class on its left half, except every third pair."""

    class_names, num_classes, device = NAMES, 3, torch.device("cpu")

    def sampling(self, *args) -> Sampling:
        return Sampling("ddim", 1, 1.0)

    def generate(self, conditions, sampling, generator):
        count = len(conditions)
        masks = torch.zeros(count, 4, 4, dtype=torch.long)
        for i, row in enumerate(conditions):
            if int(torch.randint(0, 3, (), generator=generator)) or i % 3:
                masks[i, :, :2] = int(row.argmax())
        return torch.rand(count, 3, 4, 4, generator=generator), masks


def _hook(**changes) -> UncertaintyGuidedAugmentation:
    config = replace(
        SCHEME_PRESETS["tiny"], num_pairs=8, generation_batch_size=4, asynchronous=False, **changes
    )
    hook = UncertaintyGuidedAugmentation(config, StubGenerator(), seed=0)  # type: ignore[arg-type]
    hook.trainer = SimpleNamespace(class_names=NAMES)  # type: ignore[assignment]
    hook.producer = ChunkProducer(hook._make_chunk, False, torch.device("cpu"))
    hook._submit(Request(0, (1,)))
    return hook


def _batch(members: int = 3, size: int = 4, holding: int | None = None) -> dict:
    classes = torch.zeros(members, size, 3)
    classes[..., 0] = 1
    if holding is not None:
        classes[:, :holding, 1] = 1  # the first frames hold the requested class
    return {
        "image": torch.zeros(members, size, 3, 4, 4),
        "mask": torch.zeros(members, size, 4, 4, dtype=torch.long),
        "classes": classes,
        "index": torch.arange(size).repeat(members, 1),
        "name": [[f"real-{m}-{i}" for i in range(size)] for m in range(members)],
    }


def _synthetic_names(batch: dict) -> list[set[str]]:
    return [{n for n in names if n.startswith("synthetic")} for names in batch["name"]]


def test_every_member_walks_every_pair_of_a_request_and_members_differ_at_a_step() -> None:
    hook = _hook(presence_pixels=0)
    seen: list[set[str]] = [set(), set(), set()]
    for step in range(8):  # one replaced frame per member and step (4 * 0.25)
        names = _synthetic_names(hook.on_batch(_batch(), step))
        assert len(set.union(*names)) == 3, step  # three members, three different pairs
        for member, member_names in enumerate(names):
            seen[member] |= member_names
    assert all(len(names) == 8 for names in seen)  # every member trained on all 8 pairs
    hook.close()


def test_the_presence_filter_drops_pairs_without_the_requested_class() -> None:
    masks = torch.zeros(3, 4, 4, dtype=torch.long)
    masks[0, 0, :3] = 2  # class 2 on 3 pixels
    masks[1, 0, :1] = 2  # on 1 pixel
    conditions = torch.tensor([[0.0, 0, 1], [0, 0, 1], [1, 0, 0]])
    assert presence_keep(masks, conditions, 2).tolist() == [True, False, True]
    hook = _hook(presence_pixels=1)
    for step in range(4):
        hook.on_batch(_batch(), step)
    kept = hook._stream
    assert kept.absent > 0 and len(kept) == 8 - kept.absent
    assert all((mask == 1).any() for mask in kept.masks)
    hook.close()


def test_pair_labels_keep_the_requested_classes_and_their_margin_and_ignore_the_rest() -> None:
    masks = torch.zeros(2, 6, 6, dtype=torch.long)
    masks[0, 2, 2] = 2
    masks[0, 5, 5] = 1
    conditions = torch.tensor([[0.0, 0, 1], [0, 1, 0]])  # pair 1 holds no pixel of its class
    labelled = requested_labels(masks, conditions, margin=1)
    near = torch.zeros(6, 6, dtype=torch.bool)
    near[1:4, 1:4] = True
    assert torch.equal(labelled[0][near], masks[0][near])  # the class and the 3x3 around it stay
    assert (labelled[0][~near] == 255).all()  # the rest, the other class included, is ignored
    assert (labelled[1] == 255).all()
    assert torch.equal(requested_labels(masks, conditions, margin=6)[0], masks[0])


def test_with_a_label_margin_the_mixed_pairs_supervise_only_near_their_class() -> None:
    hook = _hook(presence_pixels=1, pair_label_margin=0)
    out = hook.on_batch(_batch(), 0)
    synthetic = out["index"] == -1
    masks = out["mask"][synthetic]  # (k, 4, 4): class 1 on the left half, ignored elsewhere
    assert len(masks) == 3 and (masks[:, :, :2] == 1).all() and (masks[:, :, 2:] == 255).all()
    assert out["classes"][synthetic][:, [0, 2]].sum() == 0  # the ignored pixels hold no class
    hook.close()


def test_protected_frames_are_never_replaced() -> None:
    batch = _batch(2, 4, holding=3)
    protected = batch["classes"][..., [1]].bool().any(-1)
    images, masks = torch.ones(2, 2, 3, 4, 4), torch.full((2, 2, 4, 4), 2)
    names = [["syn-0", "syn-1"]] * 2
    mixed = mix_batch(batch, images, masks, names, 3, torch.Generator().manual_seed(0), protected)
    assert (mixed["index"][:, :3] >= 0).all()  # the three frames of the requested class stay
    assert (mixed["index"][:, 3] == -1).all()  # one free frame each: one pair, not two
    hook = _hook(presence_pixels=0, keep_requested_frames=True, replace_fraction=0.5)
    out = hook.on_batch(_batch(3, 4, holding=2), 0)
    assert (out["index"][:, :2] >= 0).all() and (out["index"][:, 2:] == -1).all()
    hook.close()


def test_uncertainty_weights_grow_with_ue_and_a_missed_class_weighs_most() -> None:
    weights = class_weights_from_uncertainty(torch.tensor([0.01, 0.02, 0.04, float("nan")]))
    assert weights[0] < weights[1] < weights[2] and weights.sum().item() == pytest.approx(1)
    assert weights[0] < weights[3] < weights[2]  # no estimate: the mean, neither favoured nor starved
    missed = class_weights_from_uncertainty(torch.tensor([0.01, 0.04, float("inf")]))
    assert missed[2] == pytest.approx(missed[1]) and missed[2] > missed[0]


def test_random_classes_are_distinct_and_seeded() -> None:
    first = random_classes(9, 3, torch.Generator().manual_seed(1))
    assert len(set(first)) == 3 and first == random_classes(9, 3, torch.Generator().manual_seed(1))


def test_variants_change_only_what_they_name() -> None:
    base = replace(SCHEME_PRESETS["tiny"], real_sampling="uncertainty", presence_pixels=4)
    literal = scheme_variant(base, "gauda-literal")
    assert literal.name == "gauda" and literal.real_sampling == "uniform" and literal.missed_ratio is None
    assert literal.uncertainty_pooling == "predicted" and literal.top_k == base.top_k
    assert scheme_variant(base, "gauda-random").class_choice == "random"
    assert scheme_variant(base, "gauda-uncertainty-weights").real_sampling == "uncertainty"
    assert SCHEME_PRESETS["tiny"].real_sampling == SCHEME_PRESETS["paper"].real_sampling == "adaptive"
    with pytest.raises(ValueError, match="scheme 'magic'"):
        scheme_variant(base, "magic")


def test_a_negative_pair_label_margin_is_refused() -> None:
    from gauda.config import ConfigError

    with pytest.raises(ConfigError, match="pair_label_margin"):
        replace(SCHEME_PRESETS["tiny"], pair_label_margin=-1)
