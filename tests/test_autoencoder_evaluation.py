"""What an autoencoder keeps: the class-weighted L1 of the image autoencoder and ``gauda evaluate
autoencoder`` (a real-trained segmenter on reconstructions against originals, masks by class)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from test_segmentation_cli import run_cli

from gauda.autoencoders.losses import (
    class_weighted_l1,
    inverse_frequency_weights,
    inverse_sqrt_frequency_weights,
    pixel_weights,
)
from gauda.evaluation.reconstruction import FIGURE_FILE, class_frame_counts, segment_reconstructions
from gauda.segmentation.bayesian import build_segmenter
from gauda.segmentation.config import SEGMENTATION_PRESETS

CLASS_NAMES = ("a", "b", "c")


def test_class_weighted_l1_with_equal_weights_is_the_plain_l1() -> None:
    output, target = torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5)
    mask = torch.randint(0, 3, (2, 5, 5))
    mask[0, 0, 0] = 255
    assert torch.allclose(class_weighted_l1(output, target, mask, torch.ones(3)), F.l1_loss(output, target))


def test_class_weighted_l1_counts_an_error_on_a_heavy_class_more() -> None:
    target = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, 0, 0] = 1  # one pixel of the rare class 1
    weights = torch.tensor([1.0, 10.0])
    on_rare, on_common = target.clone(), target.clone()
    on_rare[0, :, 0, 0] = 1.0
    on_common[0, :, 3, 3] = 1.0
    assert class_weighted_l1(on_rare, target, mask, weights) > 5 * class_weighted_l1(
        on_common, target, mask, weights
    )
    assert class_weighted_l1(on_common, target, mask, weights) == pytest.approx(1 / 25)  # weight sum 25


def test_shares_normalised_by_the_mean_weight_sum_average_to_the_whole_batch_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    output = torch.rand(4, 3, 6, 6, generator=generator, requires_grad=True)
    target = torch.rand(4, 3, 6, 6, generator=generator)
    mask = torch.randint(0, 3, (4, 6, 6), generator=generator)
    weights = torch.tensor([0.5, 1.0, 4.0])
    (whole,) = torch.autograd.grad(class_weighted_l1(output, target, mask, weights), output)
    sums = [pixel_weights(mask[share], weights).sum() for share in (slice(0, 2), slice(2, 4))]
    normaliser = torch.stack(sums).mean()  # what ddp.mean gives every process
    grads = [
        torch.autograd.grad(
            class_weighted_l1(output[share], target[share], mask[share], weights, normaliser), output
        )[0]
        for share in (slice(0, 2), slice(2, 4))
    ]
    assert torch.allclose((grads[0] + grads[1]) / 2, whole, atol=1e-7)  # DDP averages the two


def test_inverse_frequency_weights_generalise_the_square_root_ones() -> None:
    counts = torch.tensor([10000, 100, 0, 1])
    assert torch.allclose(inverse_frequency_weights(counts, 0.5), inverse_sqrt_frequency_weights(counts))
    assert inverse_frequency_weights(counts, 0.0).tolist() == [1.0, 1.0, 0.0, 1.0]
    stronger = inverse_frequency_weights(counts, 1.0)
    assert stronger[3] / stronger[0] > inverse_sqrt_frequency_weights(counts)[3] / 1.0


class _Identity(torch.nn.Module):
    """An autoencoder that reconstructs perfectly (the VQGAN's forward signature)."""

    def forward(self, x: torch.Tensor):
        return x, None, {}


class _Grey(torch.nn.Module):
    """An autoencoder that loses everything: a uniform grey frame."""

    def forward(self, x: torch.Tensor):
        return torch.zeros_like(x), None, {}


def _frames(count: int = 6) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    frames = []
    for i in range(count):
        mask = torch.zeros(16, 16, dtype=torch.long)
        mask[:, 8:] = 1
        if i == 4:
            mask[2:5, 2:5] = 2  # the rare class, in one frame
        image = torch.rand(3, 16, 16, generator=generator) * 0.2 + mask.float()[None] / 3
        frames.append({"image": image, "mask": mask, "name": f"f{i}"})
    return frames


def _segmenter() -> torch.nn.Module:
    config = replace(SEGMENTATION_PRESETS["tiny"], channels=(4, 8), ensemble_size=2, latent_levels=1)
    return build_segmenter(config, 3, len(CLASS_NAMES))


def test_a_perfect_reconstruction_scores_exactly_as_the_originals() -> None:
    frames = _frames()
    result = segment_reconstructions(
        _Identity(), _segmenter(), frames, CLASS_NAMES, None, 4, torch.device("cpu"), num_pictures=3
    )
    assert torch.equal(result.original.iou.nan_to_num(-1), result.reconstructed.iou.nan_to_num(-1))
    per_class = result.per_class()
    assert all(row["ratio"] in (None, 1.0) for row in per_class.values())
    assert len(result.rows) == 5 and len(result.rows[0]) == 3  # five picture rows, three frames
    # the frame with the rarest class is shown first
    assert torch.equal(
        torch.from_numpy(result.rows[0][0]).permute(2, 0, 1).float(),
        (frames[4]["image"] * 255).round(),
    )


def test_the_segmenter_sees_the_reconstructions_not_the_originals() -> None:
    result = segment_reconstructions(
        _Grey(), _segmenter(), _frames(), CLASS_NAMES, None, 4, torch.device("cpu"), num_pictures=6
    )
    originals, on_reconstructions = result.rows[3], result.rows[4]
    # every reconstruction is the same grey frame, so the segmenter predicts the same mask for each
    assert all((picture == on_reconstructions[0]).all() for picture in on_reconstructions)
    assert not all((picture == originals[0]).all() for picture in originals)


def test_class_frame_counts_count_frames_not_pixels() -> None:
    assert class_frame_counts(_frames(), 3).tolist() == [6, 6, 1]


@pytest.mark.slow
def test_evaluate_autoencoder_compares_the_segmenter_on_reconstructions(
    tiny_generator, segmenter_run, capsys, monkeypatch, tmp_path
) -> None:
    out = tmp_path / "image.json"
    args = ["evaluate", "autoencoder", "--run", str(tiny_generator.image_autoencoder)]
    args += ["--segmenter", str(segmenter_run), "--split", "val", "--out", str(out), "--json"]
    code, text, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    result = json.loads(text)
    assert result == json.loads(out.read_text())
    assert result["modality"] == "image" and {"psnr", "ssim", "per_class", "class_frames"} <= set(result)
    row = next(iter(result["per_class"].values()))
    assert set(row) == {"iou_original", "iou_reconstructed", "ratio"}
    assert (tmp_path / FIGURE_FILE).is_file()
    # the table as a user reads it
    code, text, err = run_cli([*args[:-3], "--out", str(tmp_path / "again.json")], capsys, monkeypatch)
    assert code == 0 and "IoU on reconstructions" in text, err


@pytest.mark.slow
def test_evaluate_autoencoder_scores_a_mask_run_on_newly_rendered_videos(
    tiny_generator, capsys, monkeypatch, tmp_path
) -> None:
    out = tmp_path / "mask.json"
    args = ["evaluate", "autoencoder", "--run", str(tiny_generator.mask_autoencoder), "--split", "train"]
    args += ["--set", "data.synthetic.seed=5", "--out", str(out), "--json"]
    code, text, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    result = json.loads(text)
    assert result["modality"] == "mask" and result["data"]["synthetic_seed"] == 5
    assert set(result["per_class_iou"]) == set(result["class_frames"])
    assert sum(result["class_frames"].values()) >= result["num_frames"]


def test_evaluate_autoencoder_without_a_run_names_the_missing_file(capsys, monkeypatch, tmp_path) -> None:
    code, _, err = run_cli(["evaluate", "autoencoder", "--run", str(tmp_path)], capsys, monkeypatch)
    assert code != 0 and "config.yaml not found" in err and "gauda train autoencoder" in err
