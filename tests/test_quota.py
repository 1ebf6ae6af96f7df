"""`hf_diverse.quota`: the binned (largest-remainder) quota of ADG and the equal (water-filling) quota of the
clusters."""

import numpy as np
import pytest

from hf_diverse.errors import InvalidParameterError
from hf_diverse.quota import binned_quota, equal_quota


def _check_quota(scores, labels, k):
    chosen = binned_quota(scores, labels, k)
    n = len(scores)
    assert len(chosen) == k and len(np.unique(chosen)) == k
    for b in np.unique(labels):
        members = np.flatnonzero(labels == b)
        taken = np.intersect1d(chosen, members)
        share = len(members) * k / n
        assert np.floor(share) <= len(taken) <= np.ceil(share), f"bin {b}: {len(taken)} rows for share {share}"
        if 0 < len(taken) < len(members):  # the best of the bin, ties to the lower row
            ranked = sorted(members, key=lambda r: (-scores[r], r))
            assert sorted(taken) == sorted(ranked[: len(taken)])
    order = [(-scores[r], r) for r in chosen]
    assert order == sorted(order), "pick order: score descending, ties to the lower row"
    return chosen


@pytest.mark.parametrize("k", [1, 7, 10, 33, 51, 99, 100])
def test_quota_is_exact_on_one_giant_bin_and_many_singletons(k):
    rng = np.random.default_rng(k)
    labels = np.concatenate([np.zeros(50, dtype=int), np.arange(1, 51)])
    rng.shuffle(labels)
    scores = rng.random(100)
    chosen = _check_quota(scores, labels, k)
    if k == 100:
        assert sorted(chosen) == list(range(100))
    # singletons take part: with k=10 the giant bin gets its 5 and 5 singletons the rest
    if k == 10:
        assert (labels[chosen] == 0).sum() == 5


def test_quota_random_cases_and_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        labels = rng.integers(0, int(rng.integers(1, 12)), size=n) * 7 - 3  # arbitrary label values
        scores = rng.integers(0, 4, size=n).astype(float)  # many ties
        _check_quota(scores, labels, int(rng.integers(0, n + 1)))
    # all scores equal and every bin the same size: the lower rows win
    labels = np.array([0, 1, 0, 1, 0, 1])
    assert binned_quota(np.zeros(6), labels, 2).tolist() == [0, 1]
    assert binned_quota(np.zeros(6), labels, 3).tolist() == [0, 1, 2]
    with pytest.raises(InvalidParameterError):
        binned_quota(np.zeros(3), np.zeros(2), 1)


def test_equal_quota_water_filling():
    assert equal_quota(np.array([1, 10, 10]), 8).tolist() == [1, 4, 3]
    assert equal_quota(np.array([1, 10, 10]), 8, tie_scores=np.array([0, 0, 1.0])).tolist() == [1, 3, 4]
    assert equal_quota(np.array([5, 5]), 10).tolist() == [5, 5]
    with pytest.raises(InvalidParameterError):
        equal_quota(np.array([2, 2]), 5)


def test_extra_rows_go_to_the_largest_remainders():
    # shares k * n_b / N = 2.1, 0.6, 0.3 of k = 3: floors 2, 0, 0 and the one extra row goes to the 0.6 bin
    labels = np.array([0] * 7 + [1] * 2 + [2])
    chosen = binned_quota(np.linspace(1, 0, 10), labels, 3)
    assert np.bincount(labels[chosen], minlength=3).tolist() == [2, 1, 0]
    # sizes 5, 3, 2 of N = 10 at k = 4: shares 2.0, 1.2, 0.8 -> 2, 1, 1 (0.8 beats 0.2 whatever the scores)
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    scores = np.array([0.1] * 5 + [0.9] * 3 + [0.0] * 2)
    assert np.bincount(labels[binned_quota(scores, labels, 4)], minlength=3).tolist() == [2, 1, 1]
