"""The AED brain runs the decoders of ``decoder_exits_per_step`` exits per training step."""

import pytest
import torch

from speechbrain_ee.brains.aed import sample_decoder_exits

EXITS = [2, 4, 6, 8, 10, 12]


def sample(count):
    return sample_decoder_exits(count, len(EXITS))


def test_all_decoders_by_default():
    assert sample(None) is None
    assert sample(len(EXITS)) is None


def test_k_distinct_exits_drawn_uniformly():
    torch.manual_seed(0)
    draws = [sample(3) for _ in range(600)]
    assert all(len(d) == 3 == len(set(d)) and d == sorted(d) for d in draws)
    counts = torch.bincount(torch.tensor(draws).flatten(), minlength=len(EXITS))
    # each exit is drawn with probability 1/2: 300 of 600 (binomial sd ~12)
    assert counts.min() > 250 and counts.max() < 350
    torch.manual_seed(0)
    assert [sample(3) for _ in range(600)] == draws  # seeded runs repeat


@pytest.mark.parametrize("bad", [0, 7, 2.5, "3", True])
def test_bad_count_names_the_key(bad):
    with pytest.raises(ValueError, match="decoder_exits_per_step must be an integer >= 1 and <= 6"):
        sample(bad)
