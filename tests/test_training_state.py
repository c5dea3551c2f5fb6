"""The training skeleton the autoencoder and diffusion trainers share: the resume guard, a train state
that saves and restores everything a resumed run needs, and the checkpoint cadence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gauda.checkpoint import CheckpointError
from gauda.config import ConfigError
from gauda.training.state import TrainState, check_run_folder, checkpoint_due


def make_state() -> tuple[TrainState, torch.nn.Linear, torch.optim.Optimizer]:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    return TrainState("toy", {"model": ("toy model", model)}, {"optimizer": optimizer}), model, optimizer


def test_a_saved_state_restores_weights_optimiser_rng_step_and_time(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state, model, optimizer = make_state()
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state.lap(7)
    path = state.save(tmp_path / "last.safetensors", {"config": {"lr": 0.1}})
    expected_draw = torch.rand(3)  # what the global RNG gives next after the save

    torch.manual_seed(123)
    again, other, other_optimizer = make_state()
    saved = again.restore(path, "cpu")
    assert saved["config"] == {"lr": 0.1} and saved["stage"] == "toy"
    assert again.step == 7 and again.seconds == pytest.approx(state.seconds)
    assert torch.equal(other.weight, model.weight)
    assert other_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert torch.equal(torch.rand(3), expected_draw)


def test_restore_names_the_network_whose_weights_do_not_fit(tmp_path: Path) -> None:
    state, _, _ = make_state()
    path = state.save(tmp_path / "last.safetensors")
    bigger = torch.nn.Linear(5, 2)
    wrong = TrainState("toy", {"model": ("toy model", bigger)}, {})
    with pytest.raises(CheckpointError, match="toy model"):
        wrong.restore(path, "cpu")


def test_the_run_folder_guard(tmp_path: Path) -> None:
    assert check_run_folder(tmp_path, "toy", resume=False) == tmp_path / "last.safetensors"
    with pytest.raises(ConfigError, match=r"no last\.safetensors to continue from"):
        check_run_folder(tmp_path, "toy", resume=True)
    state, _, _ = make_state()
    state.save(tmp_path / "last.safetensors")
    with pytest.raises(ConfigError, match=r"holds a run already .*--resume"):
        check_run_folder(tmp_path, "toy", resume=False)
    check_run_folder(tmp_path, "toy", resume=True)


def test_checkpoints_every_n_steps_and_after_the_last() -> None:
    due = [step for step in range(10) if checkpoint_due(step, 4, 10)]
    assert due == [3, 7, 9]
