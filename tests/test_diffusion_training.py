"""Training the joint latent diffusion model: learning rate, EMA, latent cache, resume, the run's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_config

from gauda.autoencoders.losses import inverse_frequency_weights
from gauda.autoencoders.trainer import class_pixel_counts, train_autoencoder
from gauda.checkpoint import CheckpointError, load_checkpoint
from gauda.config import ConfigError
from gauda.data.dataset import PairedDataset, load_splits
from gauda.diffusion.config import DiffusionConfig
from gauda.diffusion.runs import load_diffusion
from gauda.diffusion.trainer import learning_rate, train_diffusion, update_ema
from gauda.diffusion.weighting import dataset_cell_weights


@pytest.fixture(scope="module")
def autoencoders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two autoencoder runs trained for two steps on 16 px frames (2 + 2 latent channels at 8x8)."""
    root = tmp_path_factory.mktemp("autoencoders")
    config = tiny_config(root / "cache")
    for modality in ("image", "mask"):
        train_autoencoder(config, modality, root / modality, progress=False)
    return root / "image", root / "mask", root / "cache"


def test_learning_rate_warms_up_then_decays_polynomially_to_zero() -> None:
    config = DiffusionConfig(learning_rate=1.0, warmup_steps=10, steps=110, lr_power=2.0)
    assert learning_rate(0, config) == pytest.approx(0.1)
    assert learning_rate(9, config) == pytest.approx((1 - 9 / 110) ** 2)
    assert learning_rate(60, config) == pytest.approx((50 / 110) ** 2)
    assert learning_rate(109, config) < 1e-3


def test_ema_moves_towards_the_model_by_one_minus_decay() -> None:
    ema, model = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = ema.weight.detach().clone()
    update_ema(ema, model, 0.9)
    assert torch.allclose(ema.weight, 0.9 * before + 0.1 * model.weight)


@pytest.mark.parametrize(
    "option", ["diffusion.frame_sampling=uniform", "diffusion.frame_sampling=rare_classes",
               "diffusion.class_weight_power=0.5", "diffusion.class_weight_power=0"]
)  # fmt: skip
def test_resume_after_stopping_gives_the_same_weights_as_an_uninterrupted_run(
    tmp_path, autoencoders, option
) -> None:
    image, mask, cache = autoencoders
    config = tiny_config(cache, extra=(option,))
    train_diffusion(config, tmp_path / "full", image, mask, progress=False)
    stopped = train_diffusion(config, tmp_path / "stopped", image, mask, progress=False, stop_at=4)
    assert stopped == {"stopped_at": 4, "steps": 6}
    assert not (tmp_path / "stopped" / "model.safetensors").exists()
    # the resumed run finds its autoencoders in the run folder (and its configuration in config.yaml)
    train_diffusion(config, tmp_path / "stopped", resume=True, progress=False)
    full = load_checkpoint(tmp_path / "full" / "last.safetensors")
    resumed = load_checkpoint(tmp_path / "stopped" / "last.safetensors")
    assert full["step"] == resumed["step"] == 6
    for part in ("model", "ema"):
        for key, value in full[part].items():
            assert torch.allclose(value, resumed[part][key], atol=1e-6), f"{part}.{key}"


def test_a_run_writes_its_artefacts_and_its_model_loads_back(tmp_path, autoencoders) -> None:
    image, mask, cache = autoencoders
    metrics = train_diffusion(tiny_config(cache, steps=2), tmp_path / "run", image, mask, progress=False)
    for name in ("config.yaml", "split.json", "autoencoders.json", "latents.safetensors", "metrics.csv",
                 "last.safetensors", "model.safetensors", "metrics.json"):  # fmt: skip
        assert (tmp_path / "run" / name).is_file(), name
    assert metrics["latent_shape"] == [4, 8, 8]
    model, info = load_diffusion(tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "autoencoders.json").read_text())
    assert info["autoencoders"] == {k: str((tmp_path / "run" / v).resolve()) for k, v in recorded.items()}
    assert info["image_channels"] == info["mask_channels"] == 2 and len(info["class_names"]) == 9
    assert info["class_frequency"].shape == (9,) and (info["class_frequency"] <= 1).all()
    z = torch.randn(2, 4, 8, 8)
    assert model(z, torch.tensor([5, 500]), torch.eye(9)[:2]).shape == z.shape
    with pytest.raises(ConfigError, match=r"holds a run already .*--resume"):
        train_diffusion(tiny_config(cache, steps=2), tmp_path / "run", image, mask, progress=False)


def test_a_latent_cache_of_other_frames_is_refused(tmp_path, autoencoders) -> None:
    image, mask, cache = autoencoders
    train_diffusion(tiny_config(cache, steps=1), tmp_path / "run", image, mask, progress=False)
    (tmp_path / "run" / "last.safetensors").unlink()
    other = tiny_config(cache, steps=1, extra=("data.split.seed=5",))
    with pytest.raises(CheckpointError, match="latents of other frames"):
        train_diffusion(other, tmp_path / "run", image, mask, progress=False)


def test_swapped_autoencoders_are_refused(tmp_path, autoencoders) -> None:
    image, mask, cache = autoencoders
    with pytest.raises(ConfigError, match="a mask autoencoder; expected image"):
        train_diffusion(tiny_config(cache), tmp_path / "run", mask, image, progress=False)


def test_class_weights_change_the_loss_the_denoiser_trains_on(tmp_path, autoencoders) -> None:
    image, mask, cache = autoencoders
    plain_config = tiny_config(cache, steps=2, extra=("diffusion.class_weight_power=0",))
    plain = train_diffusion(plain_config, tmp_path / "plain", image, mask, progress=False)
    weighted_config = tiny_config(
        cache, steps=2, extra=("diffusion.class_weight_power=1.0", "diffusion.class_weight_timesteps=1.0")
    )
    weighted = train_diffusion(weighted_config, tmp_path / "weighted", image, mask, progress=False)
    assert plain["final_loss"] != pytest.approx(weighted["final_loss"], rel=1e-4)
    first, second = (
        load_checkpoint(tmp_path / name / "last.safetensors")["model"] for name in ("plain", "weighted")
    )
    assert any(not torch.allclose(first[key], second[key]) for key in first)


def test_dataset_cell_weights_are_the_class_weights_unrescaled(autoencoders) -> None:
    # class_weight_timesteps < 1 was measured with these weights: rescaling them changes what it does
    *_, cache = autoencoders
    splits = load_splits(tiny_config(cache).data, progress=False)
    train = PairedDataset(splits.train.frames, splits.train.source, splits.train.indices)
    weights = dataset_cell_weights(train, power=1.0, size=8)
    class_weights = inverse_frequency_weights(class_pixel_counts(train), 1.0)
    assert weights.shape == (len(train), 8, 8)
    assert weights.min() >= class_weights[class_weights > 0].min() - 1e-6
    assert weights.max() <= class_weights.max() + 1e-6
    assert weights.mean() < 1  # the frequent classes' cells weigh less than a plain step's


def test_class_weights_on_the_noisiest_steps_only_lie_between_none_and_all(tmp_path, autoencoders) -> None:
    image, mask, cache = autoencoders
    power = "diffusion.class_weight_power=1.0"

    def final_loss(name: str, *extra: str) -> float:
        config = tiny_config(cache, steps=2, extra=extra)
        return train_diffusion(config, tmp_path / name, image, mask, progress=False)["final_loss"]

    every = final_loss("every", power, "diffusion.class_weight_timesteps=1.0")
    # a share so small that no timestep is weighted (T = 1000: weighted from t = 1000 on): Eq. 5
    plain = final_loss("plain", "diffusion.class_weight_power=0")
    none = final_loss("none", power, "diffusion.class_weight_timesteps=0.0004")
    assert none == pytest.approx(plain, rel=1e-6)
    assert final_loss("half", power, "diffusion.class_weight_timesteps=0.5") not in (every, plain)
