"""The seed derivations every trainer shares: deterministic, distinct per key tuple, and the values that
published runs were trained with."""

from __future__ import annotations

import numpy as np
import torch

from gauda.training.seeds import keyed_generator, mixed_seed, step_seed


def test_mixed_seed_is_numpys_seed_sequence_and_separates_key_tuples() -> None:
    assert mixed_seed(3, 7) == int(np.random.SeedSequence([3, 7]).generate_state(1)[0])
    seeds = {mixed_seed(s, step, tag) for s in range(3) for step in range(50) for tag in range(5)}
    assert len(seeds) == 3 * 50 * 5
    assert mixed_seed(1, 2) != mixed_seed(2, 1)
    assert mixed_seed(1, 2) == mixed_seed(1, 2, 0)  # trailing zeros are padding (documented)


def test_keyed_generator_repeats_its_draws() -> None:
    first = torch.randperm(20, generator=keyed_generator(0, 4, 1))
    assert torch.equal(first, torch.randperm(20, generator=keyed_generator(0, 4, 1)))
    assert not torch.equal(first, torch.randperm(20, generator=keyed_generator(0, 4, 2)))


def test_step_seed_keeps_the_stream_of_earlier_runs() -> None:
    assert step_seed(0, 5) == 5 and step_seed(2, 7) == 2 * 1_000_003 + 7
