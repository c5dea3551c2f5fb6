"""Segmentation metrics: identities, the treatment of absent and ignored classes, agreement with
torchmetrics and MONAI, and scoring a folder of masks against the same masks in memory."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import save_png
from monai.metrics import compute_iou
from monai.metrics.meandice import compute_dice
from torchmetrics.classification import (
    MulticlassAveragePrecision,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from gauda.data.errors import DataError
from gauda.evaluation import (
    SegmentationScores,
    average_precision,
    evaluate_mask_folders,
    frame_counts,
    iou_from_counts,
    score_histograms,
)

IGNORE = 255
NAMES = ("a", "b", "c", "d")


def table_of(prediction, target, probs=None, names=NAMES):
    scores = SegmentationScores(names)
    scores.update(prediction, target, [f"f{i}" for i in range(len(target))], probs)
    return scores.compute()


def random_masks(seed: int, frames: int = 6, size: int = 12, num_classes: int = 4, ignore: float = 0.1):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (frames, size, size), generator=generator)
    target[torch.rand(target.shape, generator=generator) < ignore] = IGNORE
    logits = torch.randn(frames, num_classes, size, size, generator=generator)
    one_hot = torch.nn.functional.one_hot(target.clamp(max=num_classes - 1), num_classes)  # (F, S, S, C)
    logits += 2.0 * one_hot.permute(0, 3, 1, 2)
    probs = logits.softmax(1)
    return probs.argmax(1), target, probs


def test_perfect_prediction_scores_one_everywhere() -> None:
    target = torch.tensor([[[0, 1], [2, 3]], [[0, 0], [1, IGNORE]]])
    probs = torch.nn.functional.one_hot(target.clamp(max=3), 4).permute(0, 3, 1, 2).float()
    table = table_of(target.clamp(max=3), target, probs)
    assert torch.equal(table.iou, torch.ones(4)) and torch.equal(table.dice, torch.ones(4))
    assert torch.allclose(table.ap, torch.ones(4, dtype=torch.float64))
    assert table.label_mean_iou == table.sample_mean_iou == table.sample_median_iou == 1.0


def test_class_absent_from_prediction_and_truth_is_excluded_from_the_frame_mean() -> None:
    # truth all class 0; prediction half 0, half 1: IoU_0 = 1/2, IoU_1 = 0; classes 2, 3 absent from both
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    prediction = torch.tensor([[[0, 0], [1, 1]]])
    table = table_of(prediction, target)
    assert table.frame_iou.tolist() == [0.25]  # (1/2 + 0) / 2, not (1/2 + 0 + 1 + 1) / 4
    assert torch.isnan(table.iou[2:]).all()
    assert table.label_mean_iou == 0.25  # classes never seen are not averaged either
    summary = table.to_json()
    assert summary["per_class"]["c"] == {"iou": None, "dice": None}  # missing, not 0 or 1
    json.dumps(summary, allow_nan=False)  # valid JSON: no NaN literals


def test_ignored_pixels_change_no_score() -> None:
    prediction, target, _ = random_masks(0, ignore=0.0)
    ignored = target.clone()
    ignored[:, :3] = IGNORE
    scrambled = prediction.clone()
    scrambled[:, :3] = (scrambled[:, :3] + 1) % 4  # different predictions where the truth is ignored
    cropped_pred, cropped_target = prediction[:, 3:], target[:, 3:]
    left = table_of(scrambled, ignored)
    right = table_of(cropped_pred, cropped_target)
    assert torch.allclose(left.iou, right.iou) and torch.allclose(left.frame_iou, right.frame_iou)


def test_label_mean_pools_pixels_and_sample_median_averages_the_two_middle_frames() -> None:
    target = torch.tensor([[[0, 0, 0, 1]], [[0, 1, 1, 1]]])  # (2, 1, 4)
    prediction = torch.tensor([[[0, 0, 1, 1]], [[0, 1, 1, 1]]])
    table = table_of(prediction, target)
    # pooled: class 0 I=3 U=4; class 1 I=4 U=5
    assert math.isclose(table.label_mean_iou, (3 / 4 + 4 / 5) / 2)
    # frame 0: (2/3 + 1/2) / 2, frame 1: 1
    assert torch.allclose(table.frame_iou, torch.tensor([(2 / 3 + 1 / 2) / 2, 1.0], dtype=torch.float64))
    assert math.isclose(table.sample_median_iou, ((2 / 3 + 1 / 2) / 2 + 1.0) / 2)


def test_pooled_iou_and_dice_agree_with_torchmetrics() -> None:
    prediction, target, _ = random_masks(1)
    table = table_of(prediction, target)
    jaccard = MulticlassJaccardIndex(num_classes=4, average=None, ignore_index=IGNORE)
    f1 = MulticlassF1Score(num_classes=4, average=None, ignore_index=IGNORE, multidim_average="global")
    assert torch.allclose(table.iou.float(), jaccard(prediction, target), atol=1e-6)
    assert torch.allclose(table.dice.float(), f1(prediction, target), atol=1e-6)


def test_frame_iou_and_dice_agree_with_monai_for_classes_in_the_truth() -> None:
    prediction, target, _ = random_masks(2, ignore=0.0)
    target[0][target[0] == 3] = 0  # frame 0 without class 3: MONAI reports NaN for it (ignore_empty)
    one_hot = lambda m: torch.nn.functional.one_hot(m, 4).permute(0, 3, 1, 2).float()  # noqa: E731
    expected = compute_iou(one_hot(prediction), one_hot(target), include_background=True, ignore_empty=True)
    counts = frame_counts(prediction, target, 4)
    ours = iou_from_counts(counts)
    present = counts.target > 0
    assert torch.isnan(expected[~present]).all()
    assert torch.allclose(ours[present].float(), expected[present], atol=1e-6)
    expected_dice = compute_dice(one_hot(prediction), one_hot(target), include_background=True)
    dice = 2 * counts.intersection / (counts.predicted + counts.target)
    assert torch.allclose(dice[present].float(), expected_dice[present], atol=1e-6)


def test_binned_average_precision_equals_torchmetrics_and_approaches_the_exact_one() -> None:
    _, target, probs = random_masks(3, frames=4, size=16)
    histograms = score_histograms(probs, target, num_thresholds=101)
    ours = average_precision(histograms)
    binned = MulticlassAveragePrecision(num_classes=4, average=None, thresholds=101, ignore_index=IGNORE)
    exact = MulticlassAveragePrecision(num_classes=4, average=None, thresholds=None, ignore_index=IGNORE)
    assert torch.allclose(ours.float(), binned(probs, target), atol=1e-5)
    assert torch.allclose(ours.float(), exact(probs, target), atol=2e-2)


def test_average_precision_pools_batches_like_one_batch() -> None:
    _, target, probs = random_masks(4)
    whole = average_precision(score_histograms(probs, target))
    parts = score_histograms(probs[:2], target[:2]) + score_histograms(probs[2:], target[2:])
    assert torch.equal(whole, average_precision(parts))


def test_frame_counts_rejects_values_that_are_no_class() -> None:
    with pytest.raises(ValueError, match=r"prediction: values \[7\]"):
        frame_counts(torch.full((1, 2, 2), 7), torch.zeros(1, 2, 2, dtype=torch.long), 4)


def write_masks(folder, masks: dict[str, np.ndarray]) -> None:
    for stem, mask in masks.items():
        save_png(folder / f"{stem}.png", mask.astype(np.uint8))


def test_folder_of_masks_scores_the_same_as_in_memory(tmp_path) -> None:
    prediction, target, _ = random_masks(5)
    stems = [f"frame{i:02d}" for i in range(len(target))]
    write_masks(tmp_path / "pred", dict(zip(stems, prediction.numpy(), strict=True)))
    write_masks(tmp_path / "gt" / "masks", dict(zip(stems, target.numpy(), strict=True)))  # a folder dataset
    (tmp_path / "classes.json").write_text(json.dumps(list(NAMES)))
    from_folder = evaluate_mask_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "classes.json")
    in_memory = table_of(prediction, target)
    assert from_folder.frame_names == tuple(stems)
    assert torch.equal(from_folder.iou, in_memory.iou)
    assert torch.equal(from_folder.frame_iou, in_memory.frame_iou)
    assert from_folder.to_json()["sample_median_iou"] == in_memory.to_json()["sample_median_iou"]


def test_missing_predicted_mask_is_an_error_naming_the_file(tmp_path) -> None:
    masks = {"x": np.zeros((4, 4)), "y": np.ones((4, 4))}
    write_masks(tmp_path / "gt", masks)
    write_masks(tmp_path / "pred", {"x": masks["x"]})
    (tmp_path / "classes.json").write_text(json.dumps(list(NAMES)))
    with pytest.raises(DataError, match=r"pred.y\.png"):
        evaluate_mask_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "classes.json")


def test_mask_value_outside_the_classes_is_an_error_naming_the_file(tmp_path) -> None:
    write_masks(tmp_path / "gt", {"x": np.zeros((4, 4))})
    write_masks(tmp_path / "pred", {"x": np.full((4, 4), 9)})
    (tmp_path / "classes.json").write_text(json.dumps(list(NAMES)))
    with pytest.raises(DataError, match=r"x\.png: label values \[9\]"):
        evaluate_mask_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "classes.json")
