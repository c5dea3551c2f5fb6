"""The 2D simulation (Supplementary 8.2 and 8.3): data, ensemble, weighting rules, reproducibility, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gauda.cli import app
from gauda.config import ConfigError
from gauda.presets import PRESETS, resolve_config
from gauda.toy.config import TOY_PRESETS, ToyConfig
from gauda.toy.data import MINORITY_CLASS, generate, make_data, sample_class, sample_points
from gauda.toy.ensemble import Ensemble
from gauda.toy.experiment import (
    augmentation_counts,
    class_weights,
    draw_batches,
    most_uncertain,
    run_toy,
    summarize,
    train_run,
)
from gauda.uncertainty.classwise import classwise_uncertainty

# Small enough that every run below takes a fraction of a second.
SMALL = ToyConfig(num_train=200, num_val=100, num_test=400, steps=100, val_every=25, seeds=2)
SMALL_OVERRIDES = [
    f"toy.{key}={getattr(SMALL, key)}" for key in ("num_train", "num_val", "num_test", "steps", "val_every")
]


def radii(points: torch.Tensor) -> torch.Tensor:
    return points.norm(dim=1)


def test_sampled_points_have_exactly_the_configured_class_balance() -> None:
    config = replace(SMALL, minority_share=0.2)
    drawn = sample_points(config, 1000, torch.Generator().manual_seed(0))
    assert len(drawn) == 1000
    assert int((drawn.labels == MINORITY_CLASS).sum()) == 200
    assert drawn.points.shape == (1000, 2)
    assert drawn.labels[:200].float().mean() not in (0.0, 1.0), "classes must be shuffled, not in blocks"


def test_class_radius_and_noise_are_as_configured() -> None:
    config = replace(SMALL, majority_radius=3.0, minority_radius=1.5, noise=0.2)
    generator = torch.Generator().manual_seed(0)
    for class_id, radius in ((0, 3.0), (1, 1.5)):
        drawn = sample_class(config, class_id, 20000, generator)
        assert (drawn.labels == class_id).all()
        r = radii(drawn.points)
        assert r.mean() == pytest.approx(radius, abs=0.01)
        assert r.std() == pytest.approx(0.2, rel=0.03)
    noiseless = sample_class(replace(config, noise=0.0), 1, 100, generator)
    assert torch.allclose(radii(noiseless.points), torch.full((100,), 1.5))


def test_splits_all_carry_the_imbalance() -> None:
    data = make_data(SMALL, torch.Generator().manual_seed(0))
    assert [len(data.train), len(data.val), len(data.test)] == [200, 100, 400]
    for split in (data.train, data.val, data.test):
        assert split.share(MINORITY_CLASS) == pytest.approx(0.1)


def test_ensemble_of_identical_members_has_zero_uncertainty() -> None:
    ensemble = Ensemble(
        num_members=5, hidden_size=10, dropout=0.5, generator=torch.Generator().manual_seed(3)
    )
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(1))
    assert (classwise_uncertainty(ensemble.probabilities(x)).nan_to_num(0) > 0).any(), "members must differ"
    with torch.no_grad():
        for parameter in ensemble.parameters():
            parameter.copy_(parameter[:1].expand_as(parameter))
    probs = ensemble.probabilities(x)  # (N, B, C)
    assert probs.shape == (5, 300, 2)
    uncertainty = classwise_uncertainty(probs)
    estimated = uncertainty[~uncertainty.isnan()]
    assert len(estimated) >= 1
    # Zero up to the rounding of the float32 mean of N equal numbers (Eq. 7).
    assert torch.allclose(estimated, torch.zeros_like(estimated), rtol=0, atol=1e-12)


def test_ensemble_members_train_independently() -> None:
    ensemble = Ensemble(num_members=3, hidden_size=4, dropout=0.0, generator=torch.Generator().manual_seed(0))
    logits = ensemble(torch.randn(3, 8, 2))  # (N, B, C)
    assert logits.shape == (3, 8, 2)
    logits[0].sum().backward()  # a loss of member 0 only
    for parameter in ensemble.parameters():
        assert parameter.grad[1:].abs().sum() == 0
        assert parameter.grad[0].abs().sum() > 0


def test_each_member_draws_its_own_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    uniform = draw_batches(1000, None, 20, 32, generator)
    weighted = draw_batches(1000, torch.ones(1000), 20, 32, generator)
    for index in (uniform, weighted):
        assert index.shape == (20, 32)
        assert len({tuple(row.tolist()) for row in index}) == 20


def test_online_augmentation_generates_the_class_it_is_asked_for() -> None:
    generator = torch.Generator().manual_seed(0)
    for class_id in (0, 1):
        new = generate(SMALL, [class_id], 50, generator)
        assert len(new) == 50 and (new.labels == class_id).all()
    both = generate(SMALL, [1, 0], 5, generator)
    assert both.labels.tolist() == [1, 1, 1, 0, 0]


def test_most_uncertain_class_is_chosen_and_an_unpredicted_class_counts_as_most_uncertain() -> None:
    assert most_uncertain(torch.tensor([0.01, 0.2]), 1) == [1]
    assert most_uncertain(torch.tensor([0.2, 0.01]), 1) == [0]
    assert most_uncertain(torch.tensor([0.2, float("nan")]), 1) == [1]
    assert most_uncertain(torch.tensor([0.2, 0.01]), 2) == [0, 1]


def test_class_weights_are_proportional_to_scores_with_a_uniform_floor() -> None:
    assert class_weights(torch.tensor([0.1, 0.3]), floor=0.0).tolist() == pytest.approx([0.25, 0.75])
    assert class_weights(torch.tensor([0.1, 0.3]), floor=0.2).tolist() == pytest.approx([0.3, 0.7])
    assert class_weights(torch.tensor([0.0, 0.0]), floor=0.0).tolist() == pytest.approx([0.5, 0.5])
    assert class_weights(torch.tensor([0.02, float("nan")]), floor=0.0).tolist() == pytest.approx([0.5, 0.5])


def test_online_augmentation_doubles_the_training_data_and_pretrain_keeps_its_balance() -> None:
    assert augmentation_counts(1000, 3) == [333, 333, 334]
    data = make_data(SMALL, torch.Generator().manual_seed(0))
    online = train_run(SMALL, data, "online", seed=0)
    pretrain = train_run(SMALL, data, "pretrain", seed=0)
    assert len(online.pool) == len(pretrain.pool) == 2 * SMALL.num_train
    assert pretrain.minority_share == [pytest.approx(0.1)] * len(pretrain.steps)
    assert online.steps == [0, 25, 50, 75, 100]
    assert online.minority_share[0] == pytest.approx(0.1)
    assert online.minority_share[-1] > 0.1


def test_a_fixed_seed_reproduces_the_json_exactly() -> None:
    first = summarize(run_toy(SMALL, progress=False))
    assert first == summarize(run_toy(SMALL, progress=False))
    assert first != summarize(run_toy(replace(SMALL, seed=7), progress=False))
    assert json.dumps(first) == json.dumps(summarize(run_toy(SMALL, progress=False)))


def test_toy_presets_and_configuration_errors() -> None:
    assert PRESETS["tiny"].toy == TOY_PRESETS["tiny"]
    assert PRESETS["paper"].toy.num_members == 20 and PRESETS["paper"].toy.hidden_size == 10
    assert resolve_config("tiny", overrides=["toy.seeds=3"]).toy.seeds == 3
    with pytest.raises(ConfigError, match=r"toy\.minority_share: expected a number in \(0, 0\.5\], got 0\.7"):
        resolve_config("tiny", overrides=["toy.minority_share=0.7"])
    with pytest.raises(ConfigError, match=r"toy\.val_every: expected an integer in \[1, 100\), got 100"):
        resolve_config("tiny", overrides=["toy.steps=100", "toy.val_every=100"])


@pytest.mark.slow
def test_cli_writes_toy_json_with_every_key_config_and_figures(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    overrides = [arg for override in SMALL_OVERRIDES for arg in ("--set", override)]
    result = CliRunner().invoke(app, ["toy", "--seeds", "2", "--json", "--out", str(out), *overrides])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "toy.json").read_text())
    assert written["seeds"] == [0, 1]
    assert "class-balanced" in written["metric"]
    assert set(written["sampling"]) == {"accuracy_based", "uncertainty_based"}
    assert set(written["augmentation"]) == {"pretrain", "online"}
    for comparison in ("sampling", "augmentation"):
        for values in written[comparison].values():
            assert {"test_accuracy_mean", "test_accuracy_std", "steps_to_95"} <= set(values)
            assert 0 <= values["test_accuracy_mean"] <= 1
            assert values["steps_to_95"] in range(0, 101)
    for values in written["augmentation"].values():
        assert 0 < values["minority_share"] < 1
    assert written["augmentation"]["pretrain"]["minority_share"] == pytest.approx(0.1)
    assert json.loads(result.stdout[result.stdout.index("{") :]) == written
    for name in ("data.png", "accuracy.png", "minority_share.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = (out / "config.yaml").read_text()
    assert "toy:" in config and "steps: 100" in config and "seeds: 2" in config


def test_cli_dry_run_prints_the_toy_configuration_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["toy", "--dry-run", "--seeds", "3", "--out", str(tmp_path / "toy")])
    assert result.exit_code == 0, result.output
    assert "toy:" in result.stdout and "seeds: 3" in result.stdout and "num_members: 20" in result.stdout
    assert not (tmp_path / "toy").exists()
