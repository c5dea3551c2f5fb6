import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from gauda.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from gauda.runlog import MetricsLog


def test_model_and_optimiser_state_round_trip_exactly(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    model(torch.randn(5, 3)).sum().backward()
    optimiser.step()
    state = {"model": model.state_dict(), "optimizer": optimiser.state_dict(), "step": 7}
    path = save_checkpoint(tmp_path / "c.safetensors", state)
    state = load_checkpoint(path)
    assert state["step"] == 7
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value)
    restored = torch.optim.AdamW(model.parameters(), lr=1.0)
    restored.load_state_dict(state["optimizer"])
    assert restored.param_groups[0]["lr"] == 1e-3 and tuple(restored.param_groups[0]["betas"]) == (0.5, 0.9)
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg"], optimiser.state_dict()["state"][0]["exp_avg"]
    )


def test_random_generator_states_survive_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    save_checkpoint(tmp_path / "r.safetensors", {"rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "r.safetensors")["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def test_truncated_and_foreign_files_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"c\.safetensors: not a readable safetensors checkpoint"):
        load_checkpoint(path)
    pickled = tmp_path / "p.safetensors"
    pickled.write_bytes(pickle.dumps({"w": torch.ones(2)}))
    with pytest.raises(CheckpointError, match=r"p\.safetensors: a PyTorch pickle \(torch\.save\)"):
        load_checkpoint(pickled)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(2)})
    with pytest.raises(TypeError, match="cannot store object"):
        save_checkpoint(path, {"w": torch.zeros(2), "bad": object()})
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_metrics_log_drops_rows_past_the_resumed_step(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in range(5):
        log.log(step, {"loss": 1.0 / (step + 1)})
    resumed = MetricsLog(tmp_path, resume_step=2, tensorboard=False)
    resumed.log(3, {"loss": 9.0})
    assert [(s, v) for s, _, v in resumed.read()] == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 9.0)]
