"""The picks of every method on the bundled pool stay what they were when `tests/data/golden_picks.json` was
recorded (`tests/data/make_golden.py`): refactors must not change a single pick."""

import json

import pytest

from tests.golden_cases import CASES, DATA, SEEDS, golden_pool, run_case

GOLDEN = json.loads((DATA / "golden_picks.json").read_text())


@pytest.fixture(scope="module")
def pool():
    return golden_pool()


def test_golden_file_covers_every_case():
    assert set(GOLDEN) == {f"{name}/seed{seed}" for name in CASES for seed in SEEDS}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(CASES))
def test_picks_match_golden(pool, name, seed, one_thread):
    assert run_case(pool, name, seed) == GOLDEN[f"{name}/seed{seed}"]
