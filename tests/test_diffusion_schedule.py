"""The noise schedule (Eq. 1), the condition (Eq. 5, 6) and the samplers on an analytic denoiser."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from gauda.diffusion.condition import classifier_free_guidance, draw_condition, drop_condition
from gauda.diffusion.config import DiffusionConfig
from gauda.diffusion.schedule import alpha_bar, beta_schedule, config_betas, q_sample
from gauda.generation.samplers import ddim_sample, ddpm_sample, dpmpp_sample, dpmpp_sde_sample, make_scheduler


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "cosine"])
def test_alpha_bar_decreases_from_near_one_to_near_zero(schedule) -> None:
    a = alpha_bar(beta_schedule(schedule, 1000))
    assert (a[1:] < a[:-1]).all()
    assert a[0] > 0.98 and a[-1] < 0.01


def test_q_sample_has_the_mean_and_variance_of_eq_1() -> None:
    generator = torch.Generator().manual_seed(0)
    z0 = torch.full((20_000, 1, 1, 1), 2.0)
    a = torch.full((20_000,), 0.36)
    z_t = q_sample(z0, torch.randn(z0.shape, generator=generator), a)
    assert z_t.mean().item() == pytest.approx(0.6 * 2.0, abs=0.02)
    assert z_t.var().item() == pytest.approx(1 - 0.36, rel=0.03)


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "cosine"])
def test_diffusers_ddpm_scheduler_matches_our_schedule(schedule) -> None:
    betas = beta_schedule(schedule, 1000, 0.0015, 0.0195)
    ours = make_scheduler("ddpm", betas, 1000).alphas_cumprod.double()
    assert torch.allclose(ours, alpha_bar(betas), rtol=1e-5)
    name = {"cosine": "squaredcos_cap_v2"}.get(schedule, schedule)
    theirs = DDPMScheduler(1000, 0.0015, 0.0195, beta_schedule=name).alphas_cumprod.double()
    assert torch.allclose(theirs, alpha_bar(betas), rtol=1e-4, atol=1e-7)


def test_guidance_weight_one_gives_the_conditional_and_zero_the_unconditional_prediction() -> None:
    eps_null, eps_cond = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    assert torch.allclose(classifier_free_guidance(eps_null, eps_cond, 1.0), eps_cond, atol=1e-6)
    assert torch.equal(classifier_free_guidance(eps_null, eps_cond, 0.0), eps_null)
    assert torch.allclose(classifier_free_guidance(eps_null, eps_cond, 3.0), 3 * eps_cond - 2 * eps_null)


def test_drawn_conditions_are_never_empty_and_hold_only_present_classes() -> None:
    generator = torch.Generator().manual_seed(0)
    present = (torch.rand(5000, 9, generator=generator) < 0.3).float()
    present[:, 4] = 1.0  # every row has at least one class
    condition = draw_condition(present, 0.5, generator)
    assert (condition.sum(1) >= 1).all()
    assert (condition <= present).all()
    # each present class is kept about half the time (a bit more: rows that kept none keep one)
    kept = condition.sum() / present.sum()
    assert 0.5 < kept.item() < 0.65


def test_a_frame_without_classes_gets_an_empty_condition() -> None:
    condition = draw_condition(torch.zeros(3, 5), 0.5, torch.Generator().manual_seed(0))
    assert condition.sum() == 0


def test_condition_dropout_rate_is_p_uncond() -> None:
    null = drop_condition(50_000, 0.1, torch.Generator().manual_seed(0))
    assert null.dtype == torch.bool and null.float().mean().item() == pytest.approx(0.1, abs=0.005)


# Data N(mu, s^2) per channel: the optimal noise predictor is analytic (the posterior mean of eps):
# eps*(z_t, t) = (z_t - sqrt(abar_t) mu) sqrt(1 - abar_t) / (abar_t s^2 + 1 - abar_t).
MU = torch.tensor([1.5, -0.5]).reshape(1, 2, 1, 1)
SIGMA = torch.tensor([0.5, 2.0]).reshape(1, 2, 1, 1)


def gaussian_denoiser(betas: torch.Tensor):
    abar = alpha_bar(betas).float()

    def denoiser(z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        a = abar[t].reshape(-1, 1, 1, 1)  # (B, 1, 1, 1)
        return (z - a.sqrt() * MU) * (1 - a).sqrt() / (a * SIGMA**2 + 1 - a)

    return denoiser


# DDIM is first order: at 50 steps it narrows s = 0.5 to 0.46 (0.49 at 1000 steps), hence its tolerance.
@pytest.mark.parametrize(
    ("sampler", "steps", "tolerance"),
    [
        (ddpm_sample, 1000, 0.06),
        (ddim_sample, 50, 0.1),
        (dpmpp_sample, 10, 0.06),
        (dpmpp_sample, 20, 0.06),
        (dpmpp_sde_sample, 20, 0.06),
    ],
)
def test_samplers_recover_the_mean_and_variance_of_gaussian_data(sampler, steps, tolerance) -> None:
    betas = config_betas(DiffusionConfig())
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(4000, 2, 1, 1, generator=generator)
    z0 = sampler(gaussian_denoiser(betas), noise, None, steps, 1.0, betas=betas, generator=generator)
    assert torch.allclose(z0.mean((0, 2, 3)), MU.flatten(), atol=0.1)
    assert torch.allclose(z0.std((0, 2, 3)), SIGMA.flatten(), rtol=tolerance)


@pytest.mark.parametrize("sampler", [ddpm_sample, ddim_sample, dpmpp_sample, dpmpp_sde_sample])
def test_a_fixed_seed_gives_identical_samples(sampler) -> None:
    betas = config_betas(DiffusionConfig())

    def run(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(8, 2, 2, 2, generator=generator)
        return sampler(gaussian_denoiser(betas), noise, None, 20, 1.0, betas=betas, generator=generator)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_guided_sampling_calls_the_denoiser_with_and_without_the_condition() -> None:
    betas = config_betas(DiffusionConfig())
    seen: list[bool] = []

    def denoiser(z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        seen.append(condition is None)
        return torch.zeros_like(z) if condition is None else torch.ones_like(z) * condition[:, :1, None, None]

    condition = torch.ones(2, 3)
    ddim_sample(denoiser, torch.zeros(2, 1, 1, 1), condition, 5, 2.0, betas=betas)
    assert seen.count(True) == seen.count(False) == 5
    seen.clear()
    ddim_sample(denoiser, torch.zeros(2, 1, 1, 1), condition, 5, 1.0, betas=betas)
    assert seen == [False] * 5


def test_v_prediction_converts_back_to_the_exact_noise() -> None:
    from gauda.diffusion.schedule import eps_from_v, v_target

    generator = torch.Generator().manual_seed(0)
    z0, eps = torch.randn(4, 3, 5, 5, generator=generator), torch.randn(4, 3, 5, 5, generator=generator)
    abar = torch.tensor([0.9999, 0.5, 1e-2, 1.4e-4])
    z_t = q_sample(z0, eps, abar)
    assert torch.allclose(eps_from_v(z_t, v_target(z0, eps, abar), abar), eps, atol=1e-5)


def test_a_v_predicting_denoiser_hands_samplers_the_noise(monkeypatch) -> None:
    from gauda.diffusion.config import DiffusionConfig
    from gauda.diffusion.denoiser import DiffusionUNet
    from gauda.diffusion.schedule import v_target

    config = DiffusionConfig(
        channels=(8, 16), num_res_blocks=1, attention_resolutions=(4,), num_heads=2, prediction="v"
    )
    model = DiffusionUNet(2, 3, 8, config).eval()
    generator = torch.Generator().manual_seed(1)
    z0, eps = torch.randn(2, 2, 8, 8, generator=generator), torch.randn(2, 2, 8, 8, generator=generator)
    t = torch.tensor([3, 990])
    abar = model.alpha_bar[t]
    z_t = q_sample(z0, eps, abar)
    monkeypatch.setattr(model, "forward", lambda z, t, classes=None, null=None: v_target(z0, eps, abar))
    assert torch.allclose(model.as_denoiser()(z_t, t, None), eps, atol=1e-4)
    assert "alpha_bar" not in model.state_dict()  # derived from the configuration, never saved


def test_a_guided_step_of_the_network_batches_both_predictions_and_equals_two_calls() -> None:
    from gauda.diffusion.denoiser import DiffusionUNet
    from gauda.generation.samplers import guided_noise

    config = DiffusionConfig(channels=(8, 16), num_res_blocks=1, attention_resolutions=(4,), num_heads=2)
    model = DiffusionUNet(4, 3, 8, config).eval()
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    generator = torch.Generator().manual_seed(0)
    z, t = torch.randn(2, 4, 8, 8, generator=generator), torch.tensor([10, 500])
    condition = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    denoiser = model.as_denoiser()
    with torch.no_grad():
        batched = guided_noise(denoiser, z, t, condition, 3.0)
        assert calls == [4]  # one call on the doubled batch
        separate = guided_noise(lambda z, t, c: denoiser(z, t, c), z, t, condition, 3.0)
    assert calls == [4, 2, 2]
    assert torch.allclose(batched, separate, atol=1e-5)


def test_every_sampler_name_has_one_function_and_default_steps() -> None:
    from typing import get_args

    from gauda.diffusion.config import SAMPLER_NAMES, SamplerName
    from gauda.generation.generator import DEFAULT_STEPS
    from gauda.generation.samplers import SAMPLERS, sampler_function

    assert SAMPLER_NAMES == get_args(SamplerName) == tuple(SAMPLERS) == tuple(DEFAULT_STEPS)
    assert all(sampler_function(name) is SAMPLERS[name][0] for name in SAMPLER_NAMES)
