"""UNet and the vectorised UNet ensemble: shapes, the shared interface, and that one vectorised step
equals K separate steps."""

import copy

import pytest
import torch

from gauda.segmentation import BayesianSegmenter, SegmentationConfig, UNet, UNetEnsemble, build_segmenter
from gauda.segmentation.unet import masked_cross_entropy

torch.set_num_threads(2)


@pytest.mark.parametrize("channels", [(4, 8), (4, 8, 8), (8, 8, 16, 16)])
def test_unet_gives_logits_at_full_resolution_for_any_number_of_levels(channels) -> None:
    logits = UNet(3, 5, channels)(torch.rand(2, 3, 16, 16))
    assert logits.shape == (2, 5, 16, 16)


def test_unet_names_the_size_it_needs() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(3, 5, (4, 8, 8))(torch.rand(1, 3, 18, 18))


@pytest.mark.parametrize("model", ["ensemble", "phiseg"])
def test_both_models_implement_the_bayesian_segmenter_interface(model) -> None:
    config = SegmentationConfig(model=model, channels=(4, 8), ensemble_size=3, latent_levels=2)
    segmenter = build_segmenter(config, 3, 5)
    assert isinstance(segmenter, BayesianSegmenter)
    samples = segmenter.sample_posterior(torch.rand(2, 3, 8, 8), config.num_samples("val") or 3)
    assert samples.shape == (3 if model == "ensemble" else config.val_num_samples, 2, 5, 8, 8)
    assert torch.allclose(samples.sum(dim=2), torch.ones(()), atol=1e-5)


def test_ensemble_members_start_different_and_a_seed_reproduces_them() -> None:
    ensemble = UNetEnsemble(3, 3, 5, (4, 8), seed=1)
    again = UNetEnsemble(3, 3, 5, (4, 8), seed=1)
    weights = [m.stem.weight for m in ensemble.members]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    for name, value in ensemble.state_dict().items():
        assert torch.equal(value, again.state_dict()[name])


def test_ensemble_asked_for_another_number_of_samples_says_it_has_one_per_member() -> None:
    with pytest.raises(ValueError, match="3 members gives 3 posterior samples"):
        UNetEnsemble(3, 3, 5, (4, 8)).sample_posterior(torch.rand(1, 3, 8, 8), 5)


def batches(steps: int, members: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        images = torch.rand(members, 2, 3, 8, 8, generator=generator)
        masks = torch.randint(0, 5, (members, 2, 8, 8), generator=generator)
        masks[0, 0, :2] = 255  # ignored pixels
        yield images, masks


def test_vectorised_ensemble_gradients_equal_each_member_trained_alone() -> None:
    ensemble = UNetEnsemble(3, 3, 5, (4, 8))
    singles = [copy.deepcopy(member) for member in ensemble.members]
    images, masks = next(batches(1))
    ensemble.training_loss(images, masks)[0].backward()
    for k, single in enumerate(singles):
        masked_cross_entropy(single(images[k])[None], masks[k][None], 255).sum().backward()
        for vectorised, alone in zip(ensemble.members[k].parameters(), single.parameters(), strict=True):
            assert torch.allclose(vectorised.grad, alone.grad, atol=1e-6, rtol=1e-4)


def test_vectorised_ensemble_steps_equal_k_separate_steps() -> None:
    ensemble = UNetEnsemble(3, 3, 5, (4, 8))
    singles = [copy.deepcopy(member) for member in ensemble.members]
    optimiser = torch.optim.Adam(ensemble.parameters(), lr=1e-2)
    optimisers = [torch.optim.Adam(single.parameters(), lr=1e-2) for single in singles]
    for images, masks in batches(3):
        optimiser.zero_grad()
        ensemble.training_loss(images, masks)[0].backward()
        optimiser.step()
        for k, (single, single_optimiser) in enumerate(zip(singles, optimisers, strict=True)):
            single_optimiser.zero_grad()
            masked_cross_entropy(single(images[k])[None], masks[k][None], 255).sum().backward()
            single_optimiser.step()
    # Compared as functions: a bias right before a group norm has a zero gradient up to rounding, which
    # Adam turns into steps of random sign, but it cannot change the output.
    probe = torch.rand(2, 3, 8, 8)
    together = ensemble.sample_posterior(probe)
    with torch.no_grad():
        apart = torch.stack([torch.softmax(single(probe), dim=1) for single in singles])
    assert torch.allclose(together, apart, atol=1e-4)


def test_masked_cross_entropy_leaves_out_ignored_pixels_and_an_empty_batch_gives_zero() -> None:
    logits = torch.randn(1, 1, 3, 2, 2)
    masks = torch.tensor([[[[0, 255], [255, 255]]]])
    expected = torch.nn.functional.cross_entropy(logits[0, :, :, 0, 0], masks[0, :, 0, 0])
    assert torch.allclose(masked_cross_entropy(logits, masks, 255), expected)
    assert masked_cross_entropy(logits, torch.full_like(masks, 255), 255).item() == 0.0
