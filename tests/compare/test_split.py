"""`hf_diverse.compare.split`: the held-out split by content hash."""

import hashlib

import numpy as np
import pytest

from hf_diverse import InvalidParameterError
from hf_diverse.compare.split import content_hashes, heldout_split, resolve_holdout


def _hash(seed, instruction, response):
    data = f"{seed}\x1f{instruction}\x1f{response}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def test_heldout_rows_are_the_smallest_content_hashes():
    inst = [f"question {i}" for i in range(50)]
    resp = [f"answer {i % 7}" for i in range(50)]
    split = heldout_split(inst, resp, holdout=0.2, seed=3)
    hashes = [_hash(3, a, b) for a, b in zip(inst, resp, strict=True)]
    expected = sorted(np.argsort(hashes, kind="stable")[:10].tolist())
    assert split.heldout.tolist() == expected
    assert sorted([*split.heldout, *split.candidates]) == list(range(50))
    np.testing.assert_array_equal(content_hashes(inst, resp, seed=3), np.array(hashes, dtype=np.uint64))


def test_split_follows_content_not_row_order_or_seed():
    inst = [f"q{i}" for i in range(40)]
    resp = [f"a{i}" for i in range(40)]
    split = heldout_split(inst, resp, holdout=8, seed=0)
    perm = np.random.default_rng(1).permutation(40)
    shuffled = heldout_split([inst[i] for i in perm], [resp[i] for i in perm], holdout=8, seed=0)
    assert {inst[perm[i]] for i in shuffled.heldout} == {inst[i] for i in split.heldout}
    other = heldout_split(inst, resp, holdout=8, seed=1)
    assert set(other.heldout) != set(split.heldout)


def test_duplicates_stay_on_one_side():
    inst = ["same"] * 5 + [f"q{i}" for i in range(30)]
    resp = ["x"] * 5 + [f"a{i}" for i in range(30)]
    for seed in range(20):
        split = heldout_split(inst, resp, holdout=3, seed=seed)
        held = set(split.heldout.tolist()) & set(range(5))
        assert held in (set(), set(range(5))), seed
        assert len(split.heldout) >= split.requested == 3


@pytest.mark.parametrize("holdout", [0, 1.0, 40, -1, "0.1", True, 2.5])
def test_bad_holdout(holdout):
    with pytest.raises(InvalidParameterError, match="holdout"):
        resolve_holdout(holdout, 40)
