"""`hf_diverse.selection.token_sampling`: Algorithm 1 (pruning the pool), Algorithm 2 (token-aware sampling) and the
length budget, each against an independent computation written here."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from hf_diverse.selection.token_sampling import LengthBudget, length_plan, prune_pool, token_aware_sample


def _matrix(rows: list[dict], m: int) -> sp.csr_matrix:
    """rows: {type: occurrences} per row."""
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [t for row in rows for t in row]
    v = [n for row in rows for n in row.values()]
    return sp.csr_matrix((v, (r, c)), shape=(len(rows), m))


def _random_rows(n, m, seed, max_types=6):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        types = rng.choice(m, size=rng.integers(0, max_types + 1), replace=False)
        rows.append({int(t): int(rng.integers(1, 4)) for t in types})
    return rows


def reference_chain(rows: list[dict], k: int, type_rank: np.ndarray, bins=None, need=None):
    """Algorithm 1 written plainly with sets: drop the kept type with the fewest alive holders (ties: `type_rank`)
    and its holders, unless that leaves fewer than k rows (stop) or, with bins, a bin below its need (skip it)."""
    alive = set(range(len(rows)))
    protected: set = set()
    kept = {t for row in rows for t in row}
    sizes, order, alive_after = [len(kept)], [], [sorted(alive)]
    while True:
        holders = {t: {i for i in alive if t in rows[i]} for t in kept if t not in protected}
        if not holders:
            break
        t = min(holders, key=lambda t: (len(holders[t]), type_rank[t]))
        if len(alive) - len(holders[t]) < k:
            break
        if bins is not None:
            left = [sum(1 for i in alive - holders[t] if bins[i] == b) for b in range(len(need))]
            if any(a < q for a, q in zip(left, need, strict=True)):
                protected.add(t)
                continue
        alive -= holders[t]
        kept = {u for i in alive for u in rows[i]}
        sizes.append(len(kept))
        order.append(t)
        alive_after.append(sorted(alive))
    return sizes, order, alive_after


@pytest.mark.parametrize("seed", range(6))
def test_prune_pool_drops_the_type_with_fewest_holders(seed):
    m = 25
    rows = _random_rows(40, m, seed)
    type_rank = np.random.default_rng(100 + seed).permutation(m)
    k = 8
    chain = prune_pool(_matrix(rows, m), k, type_rank)
    sizes, order, alive_after = reference_chain(rows, k, type_rank)
    assert chain.sizes.tolist() == sizes and chain.pruned.tolist() == order
    for step, alive in enumerate(alive_after):
        assert chain.alive_rows(step).tolist() == alive
        assert chain.alive[step] == len(alive) >= k
        kept = set(chain.kept_types(step).tolist())
        assert all(set(rows[i]) <= kept for i in alive)  # alive rows hold kept types only
    assert np.all(np.diff(chain.sizes) < 0)  # every step drops at least its own type


@pytest.mark.parametrize("seed", range(4))
def test_prune_pool_keeps_length_bins_filled(seed):
    m = 25
    rows = _random_rows(40, m, seed)
    type_rank = np.random.default_rng(7 + seed).permutation(m)
    bins = np.random.default_rng(seed).integers(0, 3, size=40)
    need = np.array([3, 3, 2])
    chain = prune_pool(_matrix(rows, m), 8, type_rank, quota=(bins, need))
    sizes, order, alive_after = reference_chain(rows, 8, type_rank, bins, need)
    assert chain.sizes.tolist() == sizes and chain.pruned.tolist() == order
    last = chain.alive_rows(chain.length)
    assert np.all(np.bincount(bins[last], minlength=3) >= need)


def _entropy(counts) -> float:
    p = np.asarray([c for c in counts if c > 0], dtype=float)
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


# rows 0 and 1 cover the four types; the rest hold one type each, type 0 most often
EVEN_ROWS = [{0: 1, 1: 1}, {2: 1, 3: 1}, {0: 1}, {0: 1}, {0: 1}, {1: 1}, {2: 1}, {3: 1}]


def _best_entropy(rows, k):
    """Brute force: the highest entropy of the types' counts over k-subsets covering every type."""
    m = 1 + max(t for row in rows for t in row)
    best = -1.0
    for subset in itertools.combinations(range(len(rows)), k):
        counts = np.zeros(m)
        for i in subset:
            for t, c in rows[i].items():
                counts[t] += c
        if np.all(counts > 0):
            best = max(best, _entropy(counts))
    return best


def _sample_entropy(rows, picked, m=4):
    counts = np.zeros(m)
    for i in picked:
        for t, c in rows[i].items():
            counts[t] += c
    return _entropy(counts)


@pytest.mark.parametrize("seed", range(5))
def test_token_aware_sample_covers_then_evens_out(seed):
    x = _matrix(EVEN_ROWS, 4)
    # ties put the type-0 rows first: without evenness the fill takes them
    tie_rank = np.array([5, 6, 0, 1, 2, 7, 3, 4]) if seed == 0 else np.random.default_rng(seed).permutation(8)
    s = token_aware_sample(x, 5, tie_rank)
    assert s.rows[:2].tolist() in ([0, 1], [1, 0]) and s.new_types.tolist()[:2] == [2, 2] and s.complete
    assert s.covered == 4 and sorted(s.new_types.tolist()) == [0, 0, 0, 2, 2]
    assert _sample_entropy(EVEN_ROWS, s.rows) == pytest.approx(_best_entropy(EVEN_ROWS, 5))
    assert s.entropy == pytest.approx(_best_entropy(EVEN_ROWS, 5))
    if seed == 0:  # the ablation: coverage order and ties only
        plain = token_aware_sample(x, 5, tie_rank, evenness=False)
        assert plain.covered == 4 and _sample_entropy(EVEN_ROWS, plain.rows) < s.entropy - 0.1


def test_token_aware_sample_maximises_coverage_first():
    # a row with three uncovered types beats rows that would even the counts out
    rows = [{0: 1, 1: 1, 2: 1}, {3: 5}, {0: 1}, {4: 1, 5: 1}]
    s = token_aware_sample(_matrix(rows, 6), 2, np.arange(4))
    assert s.rows.tolist() == [0, 3] and s.new_types.tolist() == [3, 2]
    early = token_aware_sample(_matrix(rows[:1], 3), 1, np.arange(1), stop_when_complete=True)
    assert early.complete and early.rows.tolist() == [0]


@pytest.mark.parametrize("seed", range(8))
def test_length_budget_ends_inside_the_band_with_exact_quotas(seed):
    rng = np.random.default_rng(seed)
    n, m, k = 60, 30, 12
    rows = _random_rows(n, m, seed, max_types=8)
    lengths = rng.integers(5, 400, size=n).astype(float)
    lengths[:10] *= 6  # a few long rows, which hold the most types below
    for i in range(10):
        rows[i].update({int(t): 1 for t in rng.choice(m, 8, replace=False)})
    plan = length_plan(lengths, k, seed, 0.1)
    budget = plan.budget(np.arange(n), lengths, k)
    assert budget.feasible()  # the random reference subset itself fits
    s = token_aware_sample(_matrix(rows, m), k, rng.permutation(n), budget)
    assert len(s.rows) == k
    mean = lengths[s.rows].mean()
    assert plan.low - 1e-9 <= mean <= plan.high + 1e-9, (mean, plan.target)
    assert np.array_equal(np.bincount(plan.bins[s.rows], minlength=len(plan.quotas)), plan.quotas)
    assert s.budget_misses == 0


def test_length_budget_eligibility_is_exact():
    # bins: one bin of lengths 1, 2, 10, 20; two rows to pick with a total in [20, 25]
    budget = LengthBudget([1, 2, 10, 20], [0, 0, 0, 0], [2], 20, 25)
    # pairs: (1,20)=21 ok, (2,20)=22 ok, (10,20)=30 no, (1,10)=11 no -> rows 0, 1 and 3 can start, row 2 cannot
    assert budget.eligible().tolist() == [True, True, False, True]
    budget.take(3)
    assert budget.eligible().tolist() == [True, True, False, False]
    assert not LengthBudget([1, 2], [0, 0], [2], 10, 12).feasible()
    # two bins needing one row each: the last row must come from the other bin and land in the band
    two = LengthBudget([5, 6, 14, 30], [0, 0, 1, 1], [1, 1], 18, 21)
    assert two.eligible().tolist() == [True, True, True, False]  # 5+14, 6+14 fit; 30 + (5 or 6) does not
    assert two.nearest(np.ones(4, dtype=bool)) in (0, 1, 2)


def reference_entropy_greedy(rows: list[dict], k: int, tie_rank) -> list[int]:
    """Algorithm 2 written plainly: each step the row whose addition gives the highest entropy of the types' counts
    (ties: lower `tie_rank`)."""
    counts: dict = {}
    picked: list[int] = []
    for _ in range(k):
        best, best_key = None, None
        for i, row in enumerate(rows):
            if i in picked:
                continue
            trial = dict(counts)
            for t, c in row.items():
                trial[t] = trial.get(t, 0) + c
            h = _entropy(list(trial.values())) if trial else 0.0
            key = (round(h, 12), -tie_rank[i])
            if best_key is None or key > best_key:
                best, best_key = i, key
        picked.append(best)
        for t, c in rows[best].items():
            counts[t] = counts.get(t, 0) + c
    return picked


@pytest.mark.parametrize("seed", range(6))
def test_token_aware_sample_is_the_entropy_greedy(seed):
    rows = _random_rows(30, 15, seed, max_types=5)
    tie_rank = np.random.default_rng(seed + 50).permutation(30)
    s = token_aware_sample(_matrix(rows, 15), 10, tie_rank)
    assert s.rows.tolist() == reference_entropy_greedy(rows, 10, tie_rank)
    covered = {t for i in s.rows for t in rows[i]}
    assert s.covered == len(covered) and s.entropy == pytest.approx(_sample_entropy(rows, s.rows, 15))


def test_entropy_can_prefer_fewer_new_types():
    # after row 0, row 1 brings two new types but piles 8 more occurrences onto type 0; row 2 brings one new type
    rows = [{0: 4, 1: 4}, {0: 8, 2: 1, 3: 1}, {2: 1}]
    s = token_aware_sample(_matrix(rows, 4), 2, np.arange(3))
    assert s.rows.tolist() == [0, 2]
    assert token_aware_sample(_matrix(rows, 4), 2, np.arange(3), evenness=False).rows.tolist() == [1, 0]
