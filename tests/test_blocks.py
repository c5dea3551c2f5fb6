import pytest
import torch

from gauda.nn.blocks import Downsample, ResidualBlock, SelfAttention, Upsample, group_norm


@pytest.mark.parametrize(("in_channels", "out_channels"), [(8, 8), (8, 24), (224, 448), (3, 16)])
def test_residual_block_maps_channels_and_keeps_size(in_channels: int, out_channels: int) -> None:
    block = ResidualBlock(in_channels, out_channels)
    assert block(torch.randn(2, in_channels, 8, 6)).shape == (2, out_channels, 8, 6)


def test_adaptive_group_norm_starts_as_identity_and_then_depends_on_the_embedding() -> None:
    torch.manual_seed(0)
    plain = ResidualBlock(16, 16)
    adaptive = ResidualBlock(16, 16, embedding_channels=5)
    adaptive.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, 16, 4, 4)
    assert torch.allclose(adaptive(x, torch.randn(2, 5)), plain(x), atol=1e-6)  # zero-initialised
    torch.nn.init.normal_(adaptive.embedding.weight)
    a, b = adaptive(x, torch.zeros(2, 5)), adaptive(x, torch.ones(2, 5))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="pass an embedding"):
        adaptive(x)


@pytest.mark.parametrize("num_heads", [1, 4])
def test_self_attention_keeps_shape_and_mixes_positions(num_heads: int) -> None:
    attention = SelfAttention(32, num_heads)
    x = torch.randn(1, 32, 4, 4, requires_grad=True)
    out = attention(x)
    assert out.shape == x.shape
    out[0, :, 0, 0].sum().backward()
    assert x.grad[0, :, 3, 3].abs().sum() > 0  # a far position influences position (0, 0)


def test_down_and_up_sampling_halve_and_double() -> None:
    x = torch.randn(1, 8, 16, 16)
    assert Downsample(8, 12)(x).shape == (1, 12, 8, 8)
    assert Upsample(8)(x).shape == (1, 8, 32, 32)


@pytest.mark.parametrize(("channels", "groups"), [(32, 32), (224, 32), (24, 8), (3, 1), (1344, 32)])
def test_group_norm_picks_a_divisor(channels: int, groups: int) -> None:
    assert group_norm(channels).num_groups == groups
