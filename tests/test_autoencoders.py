import json
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gauda.autoencoders.config import AutoencoderConfig
from gauda.autoencoders.evaluate import pooled_iou
from gauda.autoencoders.losses import (
    VGG16Features,
    adaptive_adversarial_weight,
    inverse_sqrt_frequency_weights,
    mask_dice_loss,
    perceptual_distance,
)
from gauda.autoencoders.quantizer import VectorQuantizer, perplexity
from gauda.autoencoders.runs import load_autoencoder
from gauda.autoencoders.trainer import train_autoencoder
from gauda.autoencoders.vqgan import VQGAN, mask_to_input
from gauda.checkpoint import CheckpointError, load_checkpoint
from gauda.config import ConfigError
from gauda.presets import resolve_config

SMALL = AutoencoderConfig(channels=(8, 16, 16), num_res_blocks=1, latent_channels=3, codebook_size=32,
                          discriminator_channels=(8, 16))  # fmt: skip


@pytest.mark.parametrize(
    ("channels", "size"), [((8,), 16), ((8, 16), 16), ((8, 16, 32), 32), ((8, 8, 16, 16), 32)]
)
@pytest.mark.parametrize(("in_channels", "out_channels"), [(3, 3), (9, 9)])
def test_shapes_across_configurations(channels, size, in_channels, out_channels) -> None:
    config = replace(SMALL, channels=channels)
    model = VQGAN(in_channels, out_channels, config)
    x = torch.randn(2, in_channels, size, size)
    output, indices, losses = model(x)
    latent = size // config.downsampling
    assert output.shape == (2, out_channels, size, size)
    assert indices.shape == (2, latent, latent)
    assert model.encode(x).shape == (2, config.latent_channels, latent, latent)
    assert model.decode(model.encode(x)).shape == (2, out_channels, size, size)
    assert set(losses) == {"codebook", "commitment"}


def test_straight_through_gradients_reach_the_encoder() -> None:
    model = VQGAN(3, 3, SMALL)
    output, _, _ = model(torch.randn(2, 3, 16, 16))
    output.pow(2).mean().backward()  # only the reconstruction, no quantisation loss
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_dead_code_restart_changes_only_dead_codes() -> None:
    quantizer = VectorQuantizer(16, 4)
    before = quantizer.codebook.detach().clone()
    quantizer.usage[:10] = 5  # codes 10..15 were never used
    restarted = quantizer.restart_dead_codes(torch.randn(2, 4, 4, 4), torch.Generator().manual_seed(0))
    after = quantizer.codebook.detach()
    assert restarted == 6
    assert torch.equal(after[:10], before[:10])
    assert not torch.isclose(after[10:], before[10:]).all(dim=1).any()
    assert quantizer.usage.sum() == 0


def test_perplexity_is_k_for_uniform_use_and_1_for_collapse() -> None:
    assert perplexity(torch.ones(8)).item() == pytest.approx(8.0)
    assert perplexity(torch.tensor([5, 0, 0, 0])).item() == pytest.approx(1.0)


def test_a_few_training_steps_on_a_tiny_batch_reduce_the_mask_loss() -> None:
    torch.manual_seed(0)
    model = VQGAN(4, 4, SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    mask = torch.randint(0, 4, (4, 16, 16))
    mask[:, :8] = 0
    losses = []
    for _ in range(30):
        output, _, vq = model(mask_to_input(mask, 4))
        loss = torch.nn.functional.cross_entropy(output, mask) + vq["codebook"] + vq["commitment"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_ignored_pixels_become_all_zero_one_hot_vectors() -> None:
    one_hot = mask_to_input(torch.tensor([[[0, 2, 255]]]), 3)
    assert one_hot[0, :, 0, 0].tolist() == [1, 0, 0] and one_hot[0, :, 0, 2].tolist() == [0, 0, 0]


def test_class_weights_favour_rare_classes_and_skip_absent_ones() -> None:
    weights = inverse_sqrt_frequency_weights(torch.tensor([10000, 100, 0, 1]))
    assert weights[2] == 0 and weights[3] > weights[1] > weights[0]
    assert weights[[0, 1, 3]].mean().item() == pytest.approx(1.0)


def test_adaptive_weight_balances_the_gradient_norms() -> None:
    layer = torch.nn.Parameter(torch.ones(3))
    rec, adv = (layer * 2).sum(), (layer * 8).sum()
    assert adaptive_adversarial_weight(rec, adv, layer).item() == pytest.approx(0.25, rel=1e-3)


def test_pooled_iou_is_one_for_a_perfect_confusion_and_nan_for_an_absent_class() -> None:
    iou = pooled_iou(torch.tensor([[5, 0, 0], [0, 3, 0], [0, 0, 0]]))
    assert iou[:2].tolist() == [1.0, 1.0] and torch.isnan(iou[2])


def test_perceptual_weights_load_from_a_user_file_and_measure_distance(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = VGG16Features()
    path = tmp_path / "vgg16.safetensors"
    save_file(
        {f"features.{k}": v.contiguous() for k, v in reference.features.state_dict().items()}, str(path)
    )
    loaded = VGG16Features.from_file(path)
    x = torch.rand(1, 3, 32, 32)
    assert perceptual_distance(loaded, x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert perceptual_distance(loaded, x, torch.rand(1, 3, 32, 32)).item() > 0
    with pytest.raises(CheckpointError, match=r"vgg\.pt: not found; expected VGG16 weights"):
        VGG16Features.from_file(tmp_path / "vgg.pt")


def small_run_config(steps: int, *extra: str):
    overrides = [
        "data.image_size=16", "data.synthetic.num_videos=5", "data.synthetic.frames_per_video=2",
        "data.synthetic.image_size=32", "data.split.fractions=[0.6, 0.2, 0.2]",
    ]  # fmt: skip
    small = {"channels": "[8, 16]", "codebook_size": 16, "batch_size": 2, "discriminator_channels": "[8, 16]",
             "steps": steps, "checkpoint_every": 3, "adversarial_start": 2, "adversarial_weight": 0.05,
             "dead_code_every": 2}  # fmt: skip
    for modality in ("image_autoencoder", "mask_autoencoder"):
        overrides += [f"{modality}.{key}={value}" for key, value in small.items()]
    return resolve_config("tiny", overrides=[*overrides, *extra])


@pytest.mark.parametrize(
    ("modality", "extra"),
    [
        ("image", ()),
        ("mask", ()),
        # the options that change what a step sees: a class-weighted image L1, rare-class batches
        (
            "image",
            ("image_autoencoder.class_weight_power=0.5", "image_autoencoder.frame_sampling=rare_classes"),
        ),
        # the segmentation term: its head and optimiser resume too
        (
            "image",
            (
                "image_autoencoder.segmentation_weight=0.5",
                "image_autoencoder.segmentation_start=2",
                "image_autoencoder.segmentation_channels=[4, 8]",
            ),
        ),
        (
            "mask",
            (
                "mask_autoencoder.frame_sampling=rare_classes",
                "mask_autoencoder.class_weighting=inverse_frequency",
            ),
        ),
    ],
    ids=["image", "mask", "image-weighted-rare", "image-segmentation-term", "mask-rare-inverse"],
)
def test_resume_after_stopping_gives_the_same_weights_as_an_uninterrupted_run(
    tmp_path: Path, modality, extra
) -> None:
    train_autoencoder(small_run_config(6, *extra), modality, tmp_path / "full", progress=False)
    train_autoencoder(small_run_config(3, *extra), modality, tmp_path / "stopped", progress=False)
    train_autoencoder(
        small_run_config(6, *extra), modality, tmp_path / "stopped", resume=True, progress=False
    )
    full = load_checkpoint(tmp_path / "full" / "last.safetensors")
    resumed = load_checkpoint(tmp_path / "stopped" / "last.safetensors")
    assert full["step"] == resumed["step"] == 6
    parts = ("model", "discriminator", "segmentation_head")
    for part in (part for part in parts if part in full):
        for key, value in full[part].items():
            assert torch.allclose(value.float(), resumed[part][key].float(), atol=1e-6), f"{part}.{key}"


def test_a_run_writes_its_artefacts_and_loads_back(tmp_path: Path) -> None:
    metrics = train_autoencoder(small_run_config(4), "mask", tmp_path / "run", progress=False)
    for name in ("config.yaml", "split.json", "metrics.csv", "last.safetensors", "model.safetensors",
                 "metrics.json", "reconstructions.png"):  # fmt: skip
        assert (tmp_path / "run" / name).is_file(), name
    assert set(metrics) >= {"per_class_iou", "mean_iou", "codebook_usage"}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["mean_iou"] == metrics["mean_iou"]
    model, info = load_autoencoder(tmp_path / "run")
    assert info["modality"] == "mask" and model.scale.item() != 1.0
    with pytest.raises(ConfigError, match=r"holds a run already .*--resume"):
        train_autoencoder(small_run_config(4), "mask", tmp_path / "run", progress=False)


def test_a_pickled_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"model": VQGAN(3, 3, SMALL).state_dict()}))
    with pytest.raises(CheckpointError, match=r"a PyTorch pickle \(torch\.save\), which gauda never loads"):
        load_autoencoder(path)


def test_mask_dice_loss_is_zero_for_a_perfect_prediction_and_ignores_ignored_pixels() -> None:
    mask = torch.randint(0, 3, (2, 8, 8))
    mask[0, :2, :2] = 255
    one_hot = mask_to_input(mask, 4)  # class 3 never occurs
    assert mask_dice_loss(one_hot * 40 - 20, one_hot).item() == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    loss = mask_dice_loss(logits, one_hot)
    assert 0 < loss.item() < 1
    changed = logits.detach().clone()
    changed[0, :, :2, :2] = torch.randn(4, 2, 2) * 10  # only ignored pixels change
    assert mask_dice_loss(changed, one_hot).item() == pytest.approx(loss.item(), abs=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad[0, :, :2, :2].abs().max() == 0
    assert logits.grad[1].abs().max() > 0
    # a thin class missed entirely costs as much as a large one missed: Dice is per class, not per pixel
    thin = torch.zeros(1, 8, 8, dtype=torch.long)
    thin[0, 3, :] = 1
    one_hot = mask_to_input(thin, 2)
    missed = mask_dice_loss(torch.stack([torch.full((8, 8), 20.0), torch.full((8, 8), -20.0)])[None], one_hot)
    assert missed.item() == pytest.approx(0.5 * (1 - 2 * 56 / (64 + 56)) + 0.5, abs=1e-3)
