"""Two processes with the gloo backend on the CPU train what one process trains with the same global batch.

Each test launches ``torchrun --nproc-per-node 2 -m gauda train ...`` and the one-process command, and
compares what they end with: the gradients' running averages, and the trained models' outputs on the
same inputs, equal up to the order of floating-point sums.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_runs import run_gauda, set_args, tiny_overrides

from gauda.autoencoders.runs import load_autoencoder
from gauda.checkpoint import load_checkpoint
from gauda.config import ConfigError
from gauda.diffusion.runs import load_diffusion
from gauda.distributed import Distributed
from gauda.segmentation.evaluate import load_segmenter


def test_each_rank_takes_a_contiguous_equal_share_of_the_global_batch() -> None:
    shares = [Distributed(rank, 3).shard(list(range(6))) for rank in range(3)]
    assert shares == [[0, 1], [2, 3], [4, 5]]
    assert torch.equal(
        Distributed(1, 2).shard(torch.arange(8).view(2, 4), dim=1), torch.tensor([[2, 3], [6, 7]])
    )
    assert Distributed().shard([1, 2, 3]) == [1, 2, 3]  # one process: the whole batch


def test_a_batch_that_does_not_split_evenly_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"diffusion\.batch_size 6: expected a multiple of the 4 processes"):
        Distributed(0, 4).check_divides(6, "diffusion.batch_size")


def assert_same_moments(one: Path, two: Path) -> None:
    """Adam's first moments (averages of the gradients) of two runs' last checkpoints agree: the two
    processes computed the global batch's gradients. (Raw weights may not: a bias followed by a
    normalisation has a gradient of ~0, which Adam turns into steps of either sign of the full size.)"""
    first, second = (load_checkpoint(run / "last.safetensors")["optimizer"]["state"] for run in (one, two))
    assert first.keys() == second.keys()
    for key in first:
        a, b = first[key]["exp_avg"], second[key]["exp_avg"]
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-3), f"parameter {key}: {(a - b).abs().max():.3g}"


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-3), f"largest difference {(a - b).abs().max():.3g}"


def train_both(args: list[str], tmp_path: Path, share: str) -> tuple[Path, Path]:
    """Run ``gauda ARGS --out DIR`` in one process and in two, checking that each of the two trained on
    its ``share`` ("2 of the 4 pairs") of every batch; returns the two run folders."""
    one, two = tmp_path / "one", tmp_path / "two"
    run_gauda([*args, "--out", str(one)])
    log = " ".join(run_gauda([*args, "--out", str(two)], processes=2).stderr.split())
    for rank in (0, 1):
        assert f"rank {rank} of 2: {share} of every" in log, log[-3000:]
    return one, two


@pytest.mark.slow
@pytest.mark.parametrize("class_weight_power", [0.0, 0.5])  # 0.5: the weighted mean over the global batch
def test_two_processes_train_the_diffusion_model_as_one_does(
    tiny_generator, tmp_path, class_weight_power
) -> None:
    overrides = [*tiny_overrides(tiny_generator.cache, steps=5), "diffusion.batch_size=4",
                 f"diffusion.class_weight_power={class_weight_power}"]  # fmt: skip
    args = ["train", "diffusion", "--image-autoencoder", str(tiny_generator.image_autoencoder),
            "--mask-autoencoder", str(tiny_generator.mask_autoencoder), *set_args(overrides)]  # fmt: skip
    one, two = train_both(args, tmp_path, "2 of the 4 pairs")
    assert json.loads((two / "metrics.json").read_text())["processes"] == 2
    assert_same_moments(one, two)
    (first, info), (second, _) = load_diffusion(one), load_diffusion(two)  # the EMA denoisers
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(4, first.in_channels, first.latent_size, first.latent_size, generator=generator)
    t, classes = torch.tensor([0, 10, 500, 999]), torch.eye(len(info["class_names"]))[:4]
    with torch.no_grad():
        assert_close(first(z, t, classes), second(z, t, classes))


@pytest.mark.slow
def test_two_processes_train_the_segmentation_ensemble_as_one_does(tmp_path) -> None:
    cache = tmp_path / "cache"
    overrides = [*tiny_overrides(cache), "segmentation.steps=4"]
    one, two = train_both(["train", "segmenter", *set_args(overrides)], tmp_path, "1 of the 2 frames")
    assert load_checkpoint(two / "last.safetensors")["step"] == 4
    assert_same_moments(one, two)
    (first, state), (second, _) = (
        load_segmenter(run / "last.safetensors", torch.device("cpu")) for run in (one, two)
    )
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert_close(first.sample_posterior(images), second.sample_posterior(images))
    other = load_checkpoint(two / "last.safetensors")
    assert state["best_score"] == pytest.approx(other["best_score"], abs=1e-4)  # rank 0 validated


@pytest.mark.slow
def test_two_processes_train_the_image_autoencoder_as_one_does(tmp_path) -> None:
    cache = tmp_path / "cache"
    # dead-code restarts every 2 steps: they see the codebook usage and encoder outputs of both shares
    overrides = [*tiny_overrides(cache), "image_autoencoder.steps=4", "image_autoencoder.dead_code_every=2"]
    # the plain L1: the class-weighted one's shares are checked exactly in test_autoencoder_evaluation
    # (after 4 steps with restarts its first moments differ by ~1e-4 relative, beyond this tolerance)
    # without the segmentation term either: its head's float differences reach the autoencoder's moments at
    # ~3e-6 after 4 steps (its two-process run is checked to run below)
    overrides += ["image_autoencoder.class_weight_power=0", "image_autoencoder.segmentation_weight=0"]
    args = ["train", "autoencoder", "--modality", "image", *set_args(overrides)]
    one, two = train_both(args, tmp_path, "1 of the 2 frames")
    assert_same_moments(one, two)
    (first, _), (second, _) = load_autoencoder(one), load_autoencoder(two)
    assert_close(first.quantizer.codebook, second.quantizer.codebook)  # the same dead codes restarted
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert_close(first.encode(images), second.encode(images))
        assert_close(first(images)[0], second(images)[0])


@pytest.mark.slow
def test_the_adversarial_mask_autoencoder_and_gauda_train_on_two_processes(tiny_generator, tmp_path) -> None:
    """Paths whose two-process result differs from one process by design or by float error (the
    discriminator's batch-norm statistics, the image autoencoder's segmentation head, each process's own
    generated pairs): they run, and rank 0 writes the run."""
    overrides = [*tiny_overrides(tiny_generator.cache), "mask_autoencoder.steps=3",
                 "mask_autoencoder.adversarial_start=1",
                 "mask_autoencoder.adversarial_weight=0.05"]  # fmt: skip
    mask = tmp_path / "mask"
    run_gauda(["train", "autoencoder", "--modality", "mask", "--out", str(mask), *set_args(overrides)], 2)
    assert json.loads((mask / "metrics.json").read_text())["steps"] == 3
    image = tmp_path / "image"  # with the segmentation term (the tiny preset's), its head wrapped in DDP
    image_overrides = [*tiny_overrides(tiny_generator.cache), "image_autoencoder.steps=3"]
    run_gauda(
        ["train", "autoencoder", "--modality", "image", "--out", str(image), *set_args(image_overrides)], 2
    )
    assert "segmentation_head" in load_checkpoint(image / "last.safetensors")
    gauda = tmp_path / "gauda"
    scheme = ["scheme.generation_batch_size=2", "scheme.num_pairs=4", "scheme.replace_fraction=0.5"]
    overrides = set_args([*tiny_overrides(tiny_generator.cache), *scheme])
    run_gauda(["train", "segmenter", "--scheme", "gauda", "--generator", str(tiny_generator.diffusion),
               "--out", str(gauda), *overrides], processes=2)  # fmt: skip
    choices = json.loads((gauda / "gauda_choices.json").read_text())["choices"]
    assert [c["step"] for c in choices] == [2, 4]
    assert load_checkpoint(gauda / "last.safetensors")["step"] == 4
