"""The two comparisons of the simulation, each over several seeds.

(a) Supplementary 8.2: adaptive sampling whose class weights come from the validation accuracy
    (``accuracy_based``, the original Adaptive Sampling) or from the class-wise epistemic uncertainty
    of Eq. 8 (``uncertainty_based``).
(b) Supplementary 8.3: the training data doubled once before training with the data's own class
    balance (``pretrain``), or doubled over training by generating, at each validation step, points of
    the most uncertain class(es) (``online``, GAUDA's scheme).

Every scheme of one seed starts from the same data and the same initial ensemble. Test accuracy is the
class-balanced accuracy (the mean of per-class accuracies): on a test set with the training imbalance,
plain accuracy would mostly measure the majority class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gauda.toy.config import ToyConfig
from gauda.toy.data import MINORITY_CLASS, NUM_CLASSES, Points, ToyData, generate, make_data, sample_points
from gauda.toy.ensemble import Ensemble
from gauda.uncertainty.classwise import classwise_uncertainty, mean_prediction

logger = logging.getLogger(__name__)

Method = Literal["accuracy_based", "uncertainty_based", "pretrain", "online"]
Advance = Callable[[int], object]  # told the number of steps done since its last call (a progress bar)
SAMPLING_METHODS: tuple[Method, ...] = ("accuracy_based", "uncertainty_based")
AUGMENTATION_METHODS: tuple[Method, ...] = ("pretrain", "online")
METRIC = (
    "class-balanced accuracy (the mean of the per-class accuracies) of the ensemble's mean prediction on "
    "a test set with the training imbalance, where plain accuracy would be dominated by the majority class; "
    "'final' is the mean over the evaluations in the last {percent:g}% of the training steps"
)


def per_class_accuracy(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C,) share of the points of each class predicted as that class; NaN for a class with no points."""
    hits = torch.bincount(labels[predicted == labels], minlength=num_classes).double()
    counts = torch.bincount(labels, minlength=num_classes).double()
    return torch.where(counts > 0, hits / counts.clamp(min=1), torch.nan)


def balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """The mean of the per-class accuracies over the classes present in ``labels``."""
    return float(per_class_accuracy(predicted, labels, num_classes).nanmean())


def class_weights(scores: torch.Tensor, floor: float) -> torch.Tensor:
    """Class sampling weights (C,) summing to 1 from per-class scores (higher: sample more).

    Weights are proportional to the scores, which makes the rule scale-free: 1 - accuracy (about 0.1)
    and UE_c (a variance, about 0.01) are treated alike, where a softmax of the raw scores would be
    near-uniform for the small variances. A class without a score (NaN: never predicted, for Eq. 8)
    gets the largest score, since the model does not recognise it. ``floor`` mixes in a uniform share.

    Args:
        scores: (C,) non-negative scores, NaN where a class has none.
        floor: share of the weight spread uniformly over the classes, in [0, 1].
    """
    scores = scores.double()
    finite = scores[~scores.isnan()]
    scores = scores.nan_to_num(nan=float(finite.max()) if len(finite) else 1.0).clamp(min=0)
    uniform = torch.full_like(scores, 1 / len(scores))
    proportional = scores / scores.sum() if scores.sum() > 0 else uniform
    return (1 - floor) * proportional + floor * uniform


def sample_weights(labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N,) sampling weight of each point: its class's weight, as Adaptive Sampling derives it.

    Equal class weights thus keep the data's own balance; they shift it, not replace it.
    """
    return weights[labels].float()


def most_uncertain(uncertainty: torch.Tensor, k: int) -> list[int]:
    """The ``k`` classes with the highest UE_c; a class never predicted (NaN) counts as most uncertain."""
    ranked = uncertainty.double().nan_to_num(nan=float("inf"))
    return [int(c) for c in torch.argsort(ranked, descending=True, stable=True)[:k]]


def validation_steps(config: ToyConfig) -> list[int]:
    """Steps at which the validation set is used (re-weighting, augmentation); none at 0 or at the end."""
    return list(range(config.val_every, config.steps, config.val_every))


def evaluation_steps(config: ToyConfig) -> list[int]:
    """Steps at which the test accuracy and the minority share are recorded: 0, every val_every, the end."""
    return sorted({0, *range(config.val_every, config.steps, config.val_every), config.steps})


def augmentation_counts(total: int, events: int) -> list[int]:
    """Split ``total`` new points over ``events`` validation steps as evenly as possible."""
    return [total * (j + 1) // events - total * j // events for j in range(events)]


def draw_batches(
    pool_size: int, weights: torch.Tensor | None, members: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """(N, B) indices: every member draws its own batch, with replacement (uniform if ``weights`` is None)."""
    if weights is None:
        return torch.randint(pool_size, (members, batch_size), generator=generator)
    return torch.multinomial(weights.expand(members, -1), batch_size, replacement=True, generator=generator)


@dataclass
class RunResult:
    """One scheme trained with one seed: curves at ``steps`` and the final training pool."""

    method: Method
    seed: int
    steps: list[int] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)  # class-balanced, ensemble mean prediction
    minority_share: list[float] = field(default_factory=list)  # share of class 1 in the training pool
    pool: Points | None = None


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the caller's setting (no global state leaks out).

    The matmuls here are tiny: a second thread only adds synchronisation, and on a shared 2-core CPU
    its spin-waiting made runs several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_run(
    config: ToyConfig, data: ToyData, method: Method, seed: int, advance: Advance | None = None
) -> RunResult:
    """Train a fresh ensemble with one scheme and record its curves.

    Args:
        config: the toy configuration.
        data: the seed's train, validation and test points.
        method: the scheme, one of ``SAMPLING_METHODS`` or ``AUGMENTATION_METHODS``.
        seed: seeds the initialisation, batches, dropout and generated points (the data is given).
        advance: called with the number of steps done since its last call (a progress bar).
    """
    with single_thread():
        return _train_run(config, data, method, seed, advance)


def _train_run(
    config: ToyConfig, data: ToyData, method: Method, seed: int, advance: Advance | None
) -> RunResult:
    generator = torch.Generator().manual_seed(2 * seed + 1)  # odd streams; make_data uses the even ones
    ensemble = Ensemble(config.num_members, config.hidden_size, config.dropout, generator=generator)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=config.learning_rate)
    pool = data.train
    if method == "pretrain":
        pool = pool + sample_points(config, config.num_train, generator)  # doubled, with the data's balance
    additions = iter(augmentation_counts(config.num_train, len(validation_steps(config))))
    weights: torch.Tensor | None = None  # None: uniform over the pool
    result = RunResult(method, seed)
    done = 0
    for step in range(config.steps + 1):
        if step % config.val_every == 0 or step == config.steps:
            y_bar = mean_prediction(ensemble.probabilities(data.test.points))  # Eq. 7, (B, C)
            predicted = y_bar.argmax(dim=-1)
            result.steps.append(step)
            result.test_accuracy.append(balanced_accuracy(predicted, data.test.labels, NUM_CLASSES))
            result.minority_share.append(pool.share(MINORITY_CLASS))
            if advance is not None:
                advance(step - done)
                done = step
        if 0 < step < config.steps and step % config.val_every == 0:
            probs = ensemble.probabilities(data.val.points)  # (N, B, C): the posterior samples
            if method == "accuracy_based":
                predicted = mean_prediction(probs).argmax(dim=-1)
                scores = 1 - per_class_accuracy(predicted, data.val.labels, NUM_CLASSES)
                weights = sample_weights(pool.labels, class_weights(scores, config.weight_floor))
            elif method == "uncertainty_based":
                scores = classwise_uncertainty(probs)  # Eq. 8, no spatial dimensions
                weights = sample_weights(pool.labels, class_weights(scores, config.weight_floor))
            elif method == "online":
                classes = most_uncertain(classwise_uncertainty(probs), config.augment_classes)
                pool = pool + generate(config, classes, next(additions), generator)
        if step == config.steps:
            break
        index = draw_batches(len(pool), weights, ensemble.num_members, config.batch_size, generator)  # (N, B)
        logits = ensemble(pool.points[index], generator)  # (N, B, C)
        # Sum over members of each member's mean loss: every member gets the gradient it would alone.
        loss = F.cross_entropy(logits.flatten(0, 1), pool.labels[index].flatten()) * ensemble.num_members
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    result.pool = pool
    return result


@dataclass
class ToyResults:
    """All runs of all schemes; ``data`` is the first seed's, for the figures."""

    config: ToyConfig
    data: ToyData
    runs: dict[Method, list[RunResult]]

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in next(iter(self.runs.values()))]


def run_toy(config: ToyConfig, progress: bool = True) -> ToyResults:
    """Train every scheme with ``config.seeds`` seeds (``config.seed``, ``config.seed + 1``, ...)."""
    methods = (*SAMPLING_METHODS, *AUGMENTATION_METHODS)
    runs: dict[Method, list[RunResult]] = {method: [] for method in methods}
    seeds = range(config.seed, config.seed + config.seeds)
    datasets = [make_data(config, torch.Generator().manual_seed(2 * seed)) for seed in seeds]
    total = config.seeds * len(methods) * config.steps
    with tqdm(total=total, desc="toy simulation", unit="step", disable=not progress) as bar:
        for seed, data in zip(seeds, datasets, strict=True):
            for method in methods:
                bar.set_postfix_str(f"seed {seed}, {method}")
                run = train_run(config, data, method, seed, advance=bar.update)
                runs[method].append(run)
                logger.debug("seed %d %s: test accuracy %.4f", seed, method, run.test_accuracy[-1])
    return ToyResults(config, datasets[0], runs)


def final_value(steps: Sequence[int], curve: Sequence[float], final_fraction: float) -> float:
    """The mean of ``curve`` over its points in the last ``final_fraction`` of the steps (always the last)."""
    start = steps[-1] * (1 - final_fraction)
    return float(np.mean([value for step, value in zip(steps, curve, strict=True) if step >= start]))


def steps_to_fraction(
    steps: Sequence[int], curve: Sequence[float], final: float, fraction: float = 0.95
) -> int:
    """The first step at which ``curve`` reaches ``fraction`` of ``final``."""
    return next(step for step, value in zip(steps, curve, strict=True) if value >= fraction * final)


def summarize(results: ToyResults) -> dict:
    """The numbers of ``toy.json``: per scheme, the final test accuracy over seeds and its convergence.

    ``steps_to_95`` is read off the accuracy curve averaged over seeds; the std is over seeds (ddof 1).
    """
    fraction = results.config.final_fraction

    def scheme(runs: list[RunResult]) -> dict:
        steps = runs[0].steps
        final = np.array([final_value(steps, run.test_accuracy, fraction) for run in runs])
        mean_curve = np.mean([run.test_accuracy for run in runs], axis=0).tolist()
        return {
            "test_accuracy_mean": round(float(final.mean()), 4),
            "test_accuracy_std": round(float(final.std(ddof=1)) if len(final) > 1 else 0.0, 4),
            "steps_to_95": steps_to_fraction(steps, mean_curve, final_value(steps, mean_curve, fraction)),
        }

    def augmented(runs: list[RunResult]) -> dict:
        share = float(np.mean([run.minority_share[-1] for run in runs]))
        return {**scheme(runs), "minority_share": round(share, 4)}

    return {
        "metric": METRIC.format(percent=100 * fraction),
        "seeds": results.seeds,
        "sampling": {method: scheme(results.runs[method]) for method in SAMPLING_METHODS},
        "augmentation": {method: augmented(results.runs[method]) for method in AUGMENTATION_METHODS},
    }
