"""PHiSeg: shapes of the latents and loss terms, the KL and its level weights, posterior sampling."""

import math

import torch

from gauda.segmentation.phiseg import (
    PHiSeg,
    centred_one_hot,
    gaussian_kl,
    phiseg_loss,
    phiseg_loss_terms,
)

torch.set_num_threads(2)
CHANNELS = (4, 8, 8)  # 3 resolution levels: 16, 8, 4 px


def model(latent_levels: int = 2) -> PHiSeg:
    torch.manual_seed(0)
    return PHiSeg(3, 5, CHANNELS, latent_levels=latent_levels, latent_channels=2)


def data(batch: int = 2):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, 16, 16, generator=generator), torch.randint(
        0, 5, (batch, 16, 16), generator=generator
    )


def test_latents_live_on_the_coarsest_levels_with_the_configured_channels() -> None:
    phiseg = model(latent_levels=2)
    images, _ = data()
    latents = phiseg.prior.latents(phiseg.prior.image_features(images))
    # latent level 0 at resolution level 1 (8 px), level 1 at resolution level 2 (4 px)
    assert [tuple(z.shape) for z in latents.z] == [(2, 2, 8, 8), (2, 2, 4, 4)]
    assert all((s > 0).all() for s in latents.sigma)


def test_loss_terms_have_one_entry_per_latent_level_and_logits_are_full_size() -> None:
    phiseg = model(latent_levels=3)
    images, masks = data()
    cross_entropy, kl = phiseg.loss_terms(images, masks)
    assert cross_entropy.shape == (3,) and kl.shape == (3,)
    assert (kl >= 0).all() and (cross_entropy > 0).all()
    z = phiseg.prior.latents(phiseg.prior.image_features(images)).z
    assert [tuple(s.shape) for s in phiseg.likelihood(z)] == [(2, 5, 16, 16)] * 3
    loss, logs = phiseg.training_loss(images[None], masks[None])
    assert loss.dim() == 0 and set(logs) == {"cross_entropy", "kl"}


def test_kl_is_zero_when_posterior_equals_prior() -> None:
    phiseg = model()
    images, masks = data()
    latents = phiseg.prior.latents(phiseg.prior.image_features(images))
    logits = phiseg.likelihood(latents.z)
    _, kl = phiseg_loss_terms(logits, masks, latents, latents)
    assert torch.equal(kl, torch.zeros(2))


def test_gaussian_kl_matches_the_closed_form() -> None:
    one, zero = torch.ones(()), torch.zeros(())
    assert math.isclose(gaussian_kl(zero, one, one, one).item(), 0.5)  # (mu_q - mu_p)^2 / 2
    assert math.isclose(gaussian_kl(zero, one, zero, 2 * one).item(), math.log(2) + 1 / 8 - 0.5, rel_tol=1e-6)


def test_kl_of_level_l_is_weighted_four_to_the_l() -> None:
    loss = phiseg_loss(torch.zeros(3), torch.ones(3), kl_weight_base=4.0, kl_weight=1.0)
    assert loss.item() == 1 + 4 + 16
    assert phiseg_loss(torch.ones(3), torch.zeros(3)).item() == 3  # residual cross-entropies add up


def test_prior_in_training_is_conditioned_on_the_posterior_draws() -> None:
    phiseg = model()
    images, _ = data()
    features = phiseg.prior.image_features(images)
    given = [torch.zeros(2, 2, 8, 8), torch.zeros(2, 2, 4, 4)]
    a = phiseg.prior.latents(features, given=given)
    b = phiseg.prior.latents(features, given=[given[0], torch.ones(2, 2, 4, 4)])
    assert torch.equal(a.mu[1], b.mu[1]) and not torch.equal(a.mu[0], b.mu[0])
    assert all(z is draw for z, draw in zip(a.z, given, strict=True))  # no draws of its own


def test_posterior_samples_differ_sum_to_one_and_a_seed_reproduces_them() -> None:
    phiseg = model().eval()
    images, _ = data()
    first = phiseg.sample_posterior(images, 4, torch.Generator().manual_seed(3))
    again = phiseg.sample_posterior(images, 4, torch.Generator().manual_seed(3))
    assert first.shape == (4, 2, 5, 16, 16)
    assert torch.allclose(first.sum(dim=2), torch.ones(()), atol=1e-5)
    assert torch.equal(first, again)
    assert not torch.allclose(first[0], first[1])


def test_centred_one_hot_gives_ignored_pixels_no_class() -> None:
    encoded = centred_one_hot(torch.tensor([[[1, 255]]]), 3)
    assert encoded[0, :, 0, 0].tolist() == [-0.5, 0.5, -0.5]
    assert encoded[0, :, 0, 1].tolist() == [-0.5, -0.5, -0.5]
