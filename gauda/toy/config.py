"""Configuration of the 2D simulation (Supplementary 8.2 and 8.3): data, ensemble, training, comparisons."""

from __future__ import annotations

from dataclasses import dataclass

from gauda.config import check


@dataclass(frozen=True)
class ToyConfig:
    """The toy problem and how each compared scheme trains on it.

    Class 0 is the majority class, class 1 the minority class; each lies on a ring around the origin
    whose radius is drawn as ``radius + noise * N(0, 1)`` (by default the minority is the inner disc).
    """

    # Data: exact class counts, so that the imbalance is what is configured, not a draw from it.
    num_train: int = 1000
    num_val: int = 500
    num_test: int = 4000
    minority_share: float = 0.1  # share of class 1 in every split and in pre-train augmentation
    majority_radius: float = 2.0
    minority_radius: float = 1.0
    noise: float = 0.3  # standard deviation of a point's radius around its class radius
    # Ensemble (Supplementary 8.2): 20 members, two fully connected layers, 10 hidden units, ReLU, dropout.
    num_members: int = 20
    hidden_size: int = 10
    dropout: float = 0.1
    # Training: each member draws its own batches; Adam on all members at once.
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 0.01
    val_every: int = 50  # steps between validations (re-weighting, augmentation, test curve points)
    # Adaptive sampling: class c's sample weight is (1 - floor) * s_c / sum(s) + floor / C, with s_c
    # its score (1 - val accuracy, or UE_c); a floor keeps every class in the batches.
    weight_floor: float = 0.1
    # Online augmentation: the k most uncertain classes get the new points of each validation step.
    augment_classes: int = 1
    # "Final" test accuracy: the mean over the evaluations in this last share of the steps, so that a
    # scheme whose accuracy oscillates between validations is not judged by where the last one fell.
    final_fraction: float = 0.1
    seed: int = 0
    seeds: int = 5  # runs per scheme, with seeds seed, seed + 1, ...

    def __post_init__(self) -> None:
        for name in ("num_train", "num_val", "num_test"):
            value = getattr(self, name)
            check(value >= 10, name, "an integer >= 10", value)
        check(0 < self.minority_share <= 0.5, "minority_share", "a number in (0, 0.5]", self.minority_share)
        for name in ("num_train", "num_val", "num_test"):
            value = getattr(self, name)
            check(
                round(value * self.minority_share) >= 1,
                name,
                f"enough points for one of class 1 at minority_share={self.minority_share}",
                value,
            )
        check(self.majority_radius >= 0, "majority_radius", "a number >= 0", self.majority_radius)
        check(self.minority_radius >= 0, "minority_radius", "a number >= 0", self.minority_radius)
        check(
            self.majority_radius != self.minority_radius,
            "minority_radius",
            f"a radius other than majority_radius={self.majority_radius} (the classes differ by radius)",
            self.minority_radius,
        )
        check(self.noise >= 0, "noise", "a number >= 0", self.noise)
        check(
            self.num_members >= 2, "num_members", "an integer >= 2 (a variance needs two)", self.num_members
        )
        check(self.hidden_size >= 1, "hidden_size", "an integer >= 1", self.hidden_size)
        check(0 <= self.dropout < 1, "dropout", "a number in [0, 1)", self.dropout)
        check(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        check(self.learning_rate > 0, "learning_rate", "a number > 0", self.learning_rate)
        # At least one validation before the last step, where weights or the data can change.
        check(
            1 <= self.val_every < self.steps, "val_every", f"an integer in [1, {self.steps})", self.val_every
        )
        check(0 <= self.weight_floor <= 1, "weight_floor", "a number in [0, 1]", self.weight_floor)
        check(self.augment_classes in (1, 2), "augment_classes", "1 or 2 (the toy problem has 2 classes)",
              self.augment_classes)  # fmt: skip
        check(0 <= self.final_fraction <= 1, "final_fraction", "a number in [0, 1]", self.final_fraction)
        check(self.seeds >= 1, "seeds", "an integer >= 1", self.seeds)


TOY_PRESETS: dict[str, ToyConfig] = {
    # Five seeds of all four schemes in well under two minutes on a 2-core CPU.
    "tiny": ToyConfig(),
    # The paper's ensemble with its validation cadence (every 200 steps) and a longer run on more data.
    "paper": ToyConfig(num_train=4000, num_val=1000, num_test=10000, steps=10000, val_every=200),
}
