"""The generator's metrics: FID and KID identities and closed forms, agreement with MONAI and torchmetrics,
the FID Inception's weight files, the labelled in-domain extractor, conditions, hit rates and RO IoU."""

from __future__ import annotations

import pytest
import torch
from monai.metrics.fid import get_fid_score
from safetensors.torch import save_file
from torchmetrics.image.kid import poly_mmd

from gauda.config import ConfigError
from gauda.data.dataset import load_splits
from gauda.data.transforms import resize_pairs
from gauda.evaluation.features import (
    INCEPTION_NAME,
    SEGMENTER_ENCODER_NAME,
    choose_extractor,
    extract_features,
    image_batches,
    segmenter_encoder_features,
)
from gauda.evaluation.generator_eval import (
    GeneratedPairs,
    conditioned_hit_rates,
    load_segmenter_run,
    real_only_evaluation,
    round_robin_conditions,
)
from gauda.evaluation.inception import WEIGHTS_ENV, WEIGHTS_URL, FIDInceptionV3, load_fid_inception
from gauda.metrics.generative import fid, frechet_distance, kid, unbiased_mmd2
from gauda.segmentation.bayesian import build_segmenter
from gauda.segmentation.config import SegmentationConfig
from gauda.segmentation.evaluate import evaluate_split


def sets_with_exact_moments(mu: torch.Tensor, variances: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n samples (n, D) whose sample mean is mu and whose sample covariance is diag(variances), exactly."""
    z = torch.randn(n, len(mu), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    whitening = torch.linalg.cholesky(torch.cov(z.T))  # L L^T = cov(z)
    z = torch.linalg.solve_triangular(whitening, z.T, upper=False).T  # cov(z) = I
    return z * variances.sqrt() + mu


def test_fid_of_a_set_against_itself_is_zero() -> None:
    generator = torch.Generator().manual_seed(0)
    for n, d in ((40, 6), (10, 32)):  # more samples than dimensions, and fewer (singular covariance)
        features = torch.randn(n, d, generator=generator) * 3 + 1
        total_variance = float(features.double().var(0).sum())  # the scale of each trace in the FID
        assert abs(fid(features, features)) < 1e-6 * total_variance


def test_fid_of_gaussian_sets_matches_the_closed_form() -> None:
    mu_1, mu_2 = torch.tensor([0.0, 1.0, -2.0]).double(), torch.tensor([1.0, 1.0, 0.5]).double()
    s_1, s_2 = torch.tensor([1.0, 4.0, 0.25]).double(), torch.tensor([2.0, 1.0, 0.25]).double()
    x, y = sets_with_exact_moments(mu_1, s_1, 50, 1), sets_with_exact_moments(mu_2, s_2, 70, 2)
    # diagonal covariances: Tr(S1 + S2 - 2 (S1 S2)^(1/2)) = sum (sqrt(s1) - sqrt(s2))^2
    closed_form = (mu_1 - mu_2).square().sum() + (s_1.sqrt() - s_2.sqrt()).square().sum()
    assert fid(x, y) == pytest.approx(float(closed_form), rel=1e-9)
    assert float(frechet_distance(mu_1, torch.diag(s_1), mu_2, torch.diag(s_2))) == pytest.approx(
        float(closed_form), rel=1e-12
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MONAI passes sqrtm's deprecated disp
def test_fid_agrees_with_monai() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(30, 5, generator=generator)
    y = torch.randn(25, 5, generator=generator) @ torch.randn(5, 5, generator=generator) + 0.5
    assert fid(x, y) == pytest.approx(float(get_fid_score(y, x)), rel=1e-7)


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two() -> None:
    generator = torch.Generator().manual_seed(4)
    same = torch.stack(
        [unbiased_mmd2(torch.randn(20, 4, generator=generator), torch.randn(20, 4, generator=generator))
         for _ in range(400)]
    )  # fmt: skip
    assert abs(float(same.mean())) < 3 * float(same.std()) / 400**0.5  # expectation 0
    assert (same < 0).any()  # an unbiased estimate of a zero distance goes below zero
    real = torch.randn(200, 4, generator=generator)
    shifted = torch.randn(200, 4, generator=generator) + 1.0
    result = kid(real, shifted, num_subsets=20, subset_size=50)
    assert result.mean > 5 * result.std > 0 and result.subset_size == 50 and result.num_subsets == 20


def test_mmd_agrees_with_torchmetrics_poly_mmd() -> None:
    generator = torch.Generator().manual_seed(5)
    x, y = torch.randn(12, 7, generator=generator).double(), torch.randn(12, 7, generator=generator).double()
    assert float(unbiased_mmd2(x, y)) == pytest.approx(float(poly_mmd(x, y)), rel=1e-10)


def test_kid_is_reproducible_and_refuses_bad_subsets_and_shapes() -> None:
    generator = torch.Generator().manual_seed(6)
    x, y = torch.randn(30, 3, generator=generator), torch.randn(20, 3, generator=generator)
    assert kid(x, y, num_subsets=5, seed=1) == kid(x, y, num_subsets=5, seed=1)
    assert kid(x, y, num_subsets=5).subset_size == 20  # min(1000, 30, 20)
    with pytest.raises(ValueError, match=r"subset_size 21: expected 2\.\.20"):
        kid(x, y, subset_size=21)
    with pytest.raises(ValueError, match=r"3 \(real\) and 4 \(generated\) dimensions"):
        fid(x, torch.randn(20, 4))
    with pytest.raises(ValueError, match="at least 2"):
        kid(x, y[:1])


def test_missing_inception_weights_name_the_download(tmp_path, monkeypatch) -> None:
    missing = tmp_path / "pt_inception.pth"
    with pytest.raises(ConfigError, match=r"^--inception-weights .*no such file") as error:
        load_fid_inception(missing)
    assert WEIGHTS_URL in str(error.value) and "never downloads" in str(error.value)
    monkeypatch.setenv(WEIGHTS_ENV, str(missing))
    with pytest.raises(ConfigError, match=rf"^{WEIGHTS_ENV} .*no such file"):
        choose_extractor(None, torch.nn.Identity(), torch.device("cpu"))


def test_inception_weights_saved_as_safetensors_load_back_and_give_2048_features(tmp_path) -> None:
    torch.manual_seed(0)
    network = FIDInceptionV3()
    # torchvision's InceptionV3 has 27,161,264 parameters; less its aux classifier and fc: 21,785,568
    assert sum(p.numel() for p in network.parameters()) == 21_785_568
    state = {k: v for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)  # as in pytorch-fid's
    save_file(state, str(tmp_path / "inception.safetensors"))
    loaded = load_fid_inception(tmp_path / "inception.safetensors")
    reference = network.state_dict()
    loaded_state = loaded.state_dict()
    assert all(torch.equal(loaded_state[key], reference[key]) for key in state if not key.startswith("fc."))
    extractor = choose_extractor(tmp_path / "inception.safetensors", torch.nn.Identity(), torch.device("cpu"))
    features = extract_features(extractor, [torch.rand(2, 3, 16, 16)], torch.device("cpu"))
    assert extractor.name == INCEPTION_NAME and features.shape == (2, 2048) and torch.isfinite(features).all()


def test_weights_of_another_network_are_refused(tmp_path) -> None:
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match=r"other\.pth: not FID InceptionV3 weights"):
        load_fid_inception(tmp_path / "other.pth")


@pytest.mark.parametrize("model", ["ensemble", "phiseg"])
def test_without_inception_weights_the_extractor_is_the_labelled_segmenter_encoder(
    model, monkeypatch
) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    config = SegmentationConfig(model=model, channels=(4, 6, 8), ensemble_size=2, latent_levels=2)
    segmenter = build_segmenter(config, in_channels=3, num_classes=3)
    extractor = choose_extractor(None, segmenter, torch.device("cpu"))
    assert extractor.name == SEGMENTER_ENCODER_NAME and "not standard FID" in extractor.name
    images = torch.rand(5, 3, 16, 16)
    features = extract_features(extractor, image_batches(images, 2), torch.device("cpu"))
    assert features.shape == (5, 8) and features.dtype == torch.float64
    assert torch.allclose(features[:1].float(), segmenter_encoder_features(segmenter, images[:1]), atol=1e-6)


def test_round_robin_conditions_give_every_class_pairs_and_hit_rates() -> None:
    conditions = round_robin_conditions(7, 3, seed=0)
    assert conditions.shape == (7, 3) and torch.equal(conditions.sum(1), torch.ones(7))
    assert sorted(conditions.sum(0).tolist()) == [2.0, 2.0, 3.0]
    assert torch.equal(conditions, round_robin_conditions(7, 3, seed=0))
    masks = conditions.argmax(1)[:, None, None].expand(7, 2, 2).clone()  # each mask holds its class
    masks[conditions[:, 0] > 0] = 1  # ... except the pairs conditioned on class 0
    rates = conditioned_hit_rates(masks, conditions, ("a", "b", "c"))
    assert rates == {"a": 0.0, "b": 1.0, "c": 1.0}
    one_pair = conditioned_hit_rates(masks[:1], conditions[:1], ("a", "b", "c"))
    assert sum(rate is None for rate in one_pair.values()) == 2  # classes without pairs have no rate


def test_resize_pairs_resizes_images_bilinear_and_masks_nearest() -> None:
    images, masks = torch.rand(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8))
    same = resize_pairs(images, masks, (8, 8))
    assert same[0] is images and same[1] is masks
    bigger_images, bigger_masks = resize_pairs(images, masks, (16, 16))
    assert bigger_images.shape == (2, 3, 16, 16) and bigger_masks.shape == (2, 16, 16)
    assert torch.equal(bigger_masks[:, ::2, ::2], masks) and bigger_masks.dtype == torch.long


def test_real_only_iou_of_real_pairs_equals_the_models_test_iou(segmenter_run) -> None:
    model, _, config, device = load_segmenter_run(segmenter_run)
    splits = load_splits(config.data, progress=False)
    samples = [splits.test[i] for i in range(len(splits.test))]
    images = torch.stack([s["image"] for s in samples])  # the real test pairs, passed as generated ones
    masks = torch.stack([s["mask"] for s in samples])
    pairs = GeneratedPairs(images, masks, splits.class_names)
    real_only = real_only_evaluation(model, pairs, config, splits.class_names, device).table
    segmentation = config.segmentation
    samples, batch_size = segmentation.num_samples("test"), segmentation.eval_batch_size
    own = evaluate_split(
        model, splits.test, splits.class_names, samples, batch_size, device, seed=segmentation.seed
    ).table
    assert real_only.label_mean_iou == own.label_mean_iou
    assert torch.equal(real_only.iou.nan_to_num(-1), own.iou.nan_to_num(-1))


def test_a_flat_panel_of_the_sweep_figure_is_widened_to_read_its_value() -> None:
    from matplotlib.figure import Figure

    from gauda.evaluation.generator_eval import _least_span

    axis = Figure().subplots()
    axis.plot([4.0], [0.0586272372651])  # one w: matplotlib would span 1e-13 around the value
    _least_span(axis)
    low, high = axis.get_ylim()
    assert high - low >= 0.1 * 0.0586 * 0.999 and low < 0.0586272372651 < high
    wide = Figure().subplots()
    wide.plot([1.0, 4.0], [0.2, 0.9])
    before = wide.get_ylim()
    _least_span(wide)
    assert wide.get_ylim() == before  # a panel with a spread is left alone
