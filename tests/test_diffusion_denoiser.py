"""The denoiser UNet: shapes across configurations, the condition's effect and its null embedding."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gauda.diffusion.config import DIFFUSION_PRESETS, DiffusionConfig
from gauda.diffusion.denoiser import DiffusionUNet, attention_heads, timestep_embedding

SMALL = DiffusionConfig(channels=(8, 16), num_res_blocks=1, attention_resolutions=(4,), num_heads=2)


@pytest.mark.parametrize(
    ("channels", "attention", "size"),
    [((8,), (), 4), ((8, 16), (4,), 8), ((8, 16, 16), (8, 2), 8), ((8, 8, 16, 16), (8, 4, 2), 16)],
)
@pytest.mark.parametrize("num_res_blocks", [1, 2])
def test_output_has_the_shape_of_the_joint_latents(channels, attention, size, num_res_blocks) -> None:
    config = replace(SMALL, channels=channels, attention_resolutions=attention, num_res_blocks=num_res_blocks)
    model = DiffusionUNet(6, 5, size, config)
    z = torch.randn(3, 6, size, size)
    eps = model(z, torch.tensor([0, 10, 999]), torch.eye(5)[:3], torch.tensor([False, True, False]))
    assert eps.shape == z.shape
    assert model(z, torch.tensor([1, 2, 3])).shape == z.shape  # no condition: null for every row


def test_attention_runs_only_at_the_configured_resolutions() -> None:
    model = DiffusionUNet(4, 3, 8, replace(SMALL, channels=(8, 16, 16), attention_resolutions=(4,)))
    down = [block.attention is not None for blocks in model.down for block in blocks]
    assert down == [False, True, False]


def test_heads_come_from_head_channels_when_set_and_must_divide_the_channels() -> None:
    assert attention_heads(replace(SMALL, head_channels=4), 16) == 4
    assert attention_heads(replace(SMALL, num_heads=8), 16) == 8
    with pytest.raises(ValueError, match="num_heads 3: must divide the 16 channels"):
        attention_heads(replace(SMALL, num_heads=3), 16)


def test_the_condition_changes_the_prediction_and_the_null_rows_use_the_null_embedding() -> None:
    torch.manual_seed(0)
    model = DiffusionUNet(4, 3, 8, SMALL)
    for p in model.parameters():  # leave the zero initialisation so that the condition matters
        torch.nn.init.normal_(p, std=0.1)
    z, t = torch.randn(1, 4, 8, 8).expand(3, -1, -1, -1), torch.full((3,), 100)
    classes = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 0]])
    eps = model(z, t, classes, torch.tensor([False, False, True]))
    assert not torch.allclose(eps[0], eps[1])
    assert torch.allclose(eps[2], model(z[:1], t[:1])[0], atol=1e-5)  # dropped row = unconditional


def test_timestep_embedding_is_distinct_per_timestep() -> None:
    embedding = timestep_embedding(torch.arange(1000), 32)
    assert embedding.shape == (1000, 32)
    assert torch.cdist(embedding, embedding).add(torch.eye(1000) * 10).min() > 1e-3


def test_presets_have_the_expected_sizes() -> None:
    tiny = DiffusionUNet(8, 9, 32, DIFFUSION_PRESETS["tiny"])
    assert 1e6 < sum(p.numel() for p in tiny.parameters()) < 5e6
    assert DIFFUSION_PRESETS["paper"].channels == (224, 448, 896, 1344)
    assert DIFFUSION_PRESETS["paper"].attention_resolutions == (16, 8, 4)
    assert DIFFUSION_PRESETS["paper"].num_heads == 64 and DIFFUSION_PRESETS["paper"].sampling_steps == 1000


def test_patches_fold_the_grid_so_the_levels_run_at_a_coarser_resolution() -> None:
    """patch_size 2 on a 16x16 grid: the same shapes out, features (and attention) at 8x8 and 4x4."""
    config = replace(SMALL, channels=(8, 16), attention_resolutions=(8,), patch_size=2)
    model = DiffusionUNet(6, 5, 16, config)
    z = torch.randn(2, 6, 16, 16)
    assert model(z, torch.tensor([0, 500])).shape == z.shape
    assert [block.attention is not None for blocks in model.down for block in blocks] == [True, False]
    features = []
    model.down[0][0].register_forward_hook(lambda module, args, out: features.append(out.shape[-1]))
    model(z, torch.tensor([1, 2]))
    assert features == [8]
    assert model.stem.in_channels == 6 * 4 and model.head.out_channels == 6 * 4


def test_a_grid_the_patches_and_levels_do_not_divide_is_refused() -> None:
    with pytest.raises(ValueError, match="patch_size 2 x 2"):
        DiffusionUNet(4, 3, 10, replace(SMALL, patch_size=2))
