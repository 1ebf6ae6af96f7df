"""`hf_diverse.facility.blocked`: exact greedy without the N x N matrix, against a plain numpy greedy written here
and against the stored strategies (the same picks and gains, bit for bit), with few kept similarities per row so
that every path of the loop runs (columns from products, recomputed rows, kept entries only)."""

import numpy as np
import pytest
import torch

from hf_diverse.facility import blocked, facility_location_greedy, kernels, toplists
from tests.reference import plain_greedy_on

needs_numba = pytest.mark.skipif(not kernels.HAS_NUMBA, reason="numba is not installed")


def clustered(n=500, d=24, n_clusters=15, noise=0.4, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    a = centers[rng.integers(0, n_clusters, n)] + noise * rng.standard_normal((n, d))
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def terms(n, k, alpha, quality):
    return (1.0 - alpha) / n, alpha * np.asarray(quality, dtype=np.float64) / k


def run(x, k, w, bonus, strategy="blocked", backend="numba", **kwargs):
    return facility_location_greedy(
        torch.from_numpy(x),
        k,
        bonus=torch.from_numpy(bonus),
        diversity_weight=w,
        strategy=strategy,
        backend=backend,
        show_progress=False,
        **kwargs,
    )


def budget_for(n, top):
    return toplists.TOP_BYTES_PER_ENTRY * n * top


def test_products_of_16_rows_and_columns_round_as_the_full_product():
    # what "the same picks as the stored strategies" rests on: padded products give each entry its X X^T value
    x = torch.from_numpy(clustered(n=3000, d=384, n_clusters=30, seed=4))
    full = x @ x.T
    g = torch.Generator().manual_seed(0)
    for m, c in [(16, 16), (16, 3000), (37, 16), (1000, 21), (3000, 16)]:
        rows = torch.randperm(3000, generator=g)[:m]
        cols = torch.randperm(3000, generator=g)[:c] if c < 3000 else torch.arange(3000)
        assert torch.equal(x[rows] @ x[cols].T, full[rows][:, cols]), (m, c)
    for m, c in [(1, 1), (3, 2), (5, 9), (1, 40)]:  # smaller products, padded as the loop pads them
        rows, cols = torch.arange(m) * 7, torch.arange(c) * 11
        padded = x[toplists.padded(rows)] @ x[toplists.padded(cols)].T
        assert torch.equal(padded[:m, :c], full[rows][:, cols]), (m, c)
    rows_of = blocked.similarity_rows(x)  # the torch loop's provider pads single rows
    for row in (0, 1234, 2999):
        assert torch.equal(rows_of(torch.tensor([row]))[0], full[row].clamp(min=0))


@needs_numba
@pytest.mark.parametrize("top", [16, 40, 250])
@pytest.mark.parametrize("data", ["clustered", "on bin edges"])
def test_kept_similarities(top, data):
    # "on bin edges": entries in {0, 1/32, 2/32}, so every similarity is a multiple of 1/1024, the lower edge of its
    # value bin; an entry equal to the gather's limit must be kept
    if data == "clustered":
        x = clustered(n=600, d=24, seed=2)
    else:
        x = (np.random.default_rng(2).integers(0, 3, (600, 24)) / 32).astype(np.float32)
    s = x @ x.T  # float32, the same products
    lists = toplists.build_top_lists(torch.from_numpy(x), top)
    for v in range(len(x)):
        count = lists.count[v]
        vals, cols = lists.values[v, :count], lists.columns[v, :count]
        assert count <= top
        np.testing.assert_array_equal(vals, s[v, cols])  # the values of the product, at their columns
        assert len(set(cols.tolist())) == count and (vals > 0).all()
        left = np.setdiff1d(np.nonzero(s[v] > 0)[0], cols)
        assert (s[v, left] < lists.tau[v]).all()  # everything left out is under the threshold
        assert (lists.tau[v] == 0) == (len(left) == 0)
        assert (np.diff(np.floor(vals * toplists.BINS).clip(max=toplists.BINS - 1)) <= 0).all()  # highest bin first
        assert lists.tau[v] <= vals.min(initial=np.inf)
    positive = np.maximum(s.astype(np.float64), 0).sum(axis=1)
    np.testing.assert_allclose(lists.gains, positive, rtol=1e-13)
    # the budget binds: a row keeps most of what fits (whole value bins), not a handful
    assert lists.count.mean() > 0.5 * top


@needs_numba
@pytest.mark.parametrize("alpha", [0.0, 0.7])
@pytest.mark.parametrize("top", [16, 60, 250])
def test_same_picks_as_numpy_greedy(alpha, top):
    x = clustered()
    k = 60
    w, bonus = terms(len(x), k, alpha, np.random.default_rng(1).random(len(x)))
    s = np.maximum(x @ x.T, np.float32(0)).astype(np.float64)
    expected, coverage = plain_greedy_on(s, k, w, bonus)
    res = run(x, k, w, bonus, memory_budget=budget_for(len(x), top))
    assert res.indices.tolist() == expected
    assert res.coverage == pytest.approx(coverage, rel=1e-9)
    assert res.strategy == "blocked" and res.details["blocked_top"] == top
    cur = np.zeros(len(x))
    for j, gain in zip(expected, res.gains, strict=True):
        assert gain == pytest.approx(w * np.maximum(s[j] - cur, 0).sum() + bonus[j], rel=1e-9)
        cur = np.maximum(cur, s[j])


@needs_numba
@pytest.mark.parametrize("norms", ["times 3", "0.2 to 4"])
def test_rows_off_unit_length_give_the_greedy_of_their_dot_products(norms, caplog):
    # similarities over 1 all fall in the top value bin, which then holds more than `top` entries of many rows: what
    # those rows leave out must still be bounded (by their largest entry), or their updates skip entries over 1
    x = clustered()
    scale = np.full((len(x), 1), 3.0) if norms == "times 3" else np.random.default_rng(2).uniform(0.2, 4, (len(x), 1))
    x = (x * scale).astype(np.float32)
    k = 40
    w, bonus = terms(len(x), k, 0.5, np.random.default_rng(1).random(len(x)))
    s = np.maximum(x @ x.T, np.float32(0)).astype(np.float64)
    expected, coverage = plain_greedy_on(s, k, w, bonus)
    lists = toplists.build_top_lists(torch.from_numpy(x), 16)
    assert (lists.count == 0).sum() > 50  # rows whose top bin did not fit
    s32 = x @ x.T
    for v in range(len(x)):
        left = np.setdiff1d(np.nonzero(s32[v] > 0)[0], lists.columns[v, : lists.count[v]])
        assert (s32[v, left] < lists.tau[v]).all(), v  # everything left out is under the threshold
    for strategy, extra in [("blocked", {"memory_budget": budget_for(len(x), 16)}), ("incremental", {})]:
        with caplog.at_level("WARNING", logger="hf_diverse"):
            res = run(x, k, w, bonus, strategy=strategy, **extra)
        assert res.indices.tolist() == expected, strategy
        assert res.coverage == pytest.approx(coverage, rel=1e-9)
    assert "embedding rows are off unit length" in caplog.text


@needs_numba
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_exact_ties_go_to_the_lower_row(alpha):
    # similarities exact in binary and repeated rows: many gains tie exactly
    rng = np.random.default_rng(0)
    protos = [np.eye(8)[i] for i in range(8)]
    for _ in range(12):
        v = np.zeros(8)
        v[rng.choice(8, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
        protos.append(v)
    x = np.array(protos)[rng.integers(0, len(protos), 240)].astype(np.float32)
    quality = rng.integers(0, 8, 240) / 8.0
    k = 30
    w, bonus = terms(len(x), k, alpha, quality)
    expected = plain_greedy_on(np.maximum(x @ x.T, 0).astype(np.float64), k, w, bonus)[0]
    for top in (16, 30, 120):
        assert run(x, k, w, bonus, memory_budget=budget_for(len(x), top)).indices.tolist() == expected, top


@needs_numba
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_bit_identical_to_the_stored_strategies(alpha):
    # a pool where every path runs: columns from products for the first picks, rows recomputed while points are under
    # their threshold, then picks that the kept entries alone decide
    x = clustered(n=5000, d=64, n_clusters=60, noise=0.5, seed=7)
    k = 300
    w, bonus = terms(len(x), k, alpha, np.random.default_rng(3).random(len(x)))
    stored = run(x, k, w, bonus, strategy="incremental")
    res = run(x, k, w, bonus, memory_budget=budget_for(len(x), 200))
    np.testing.assert_array_equal(res.indices, stored.indices)
    np.testing.assert_array_equal(res.gains, stored.gains)
    np.testing.assert_array_equal(res.diversity_gains, stored.diversity_gains)
    assert res.coverage == stored.coverage
    assert res.details["blocked_recomputed_rows"] > len(x) / 2
    assert 0 < res.details["blocked_column_products"] < k  # the later picks needed no product


@needs_numba
def test_recomputed_rows_in_tiles_of_rows_and_columns(monkeypatch):
    # products of 16 rows by 97 columns: 500 = 5 * 97 + 15, so the last 15 columns join the tile before them (no
    # product narrower than 16); each tile takes its part of the update off the gains of its own columns
    monkeypatch.setattr(blocked, "UPDATE_ROWS", 16)
    monkeypatch.setattr(blocked, "UPDATE_TILE", 97)
    tiles = []
    take = blocked._take_rows
    monkeypatch.setattr(blocked, "_take_rows", lambda block, *a: (tiles.append(block.shape), take(block, *a))[1])
    x = clustered()
    k = 60
    w, bonus = terms(len(x), k, 0.3, np.random.default_rng(1).random(len(x)))
    s = np.maximum(x @ x.T, np.float32(0)).astype(np.float64)
    expected, coverage = plain_greedy_on(s, k, w, bonus)
    res = run(x, k, w, bonus, memory_budget=budget_for(len(x), 16))
    assert res.indices.tolist() == expected
    assert res.coverage == pytest.approx(coverage, rel=1e-9)
    assert res.details["blocked_recomputed_rows"] > 16
    assert {c for _, c in tiles} == {97, 112} and {r for r, _ in tiles} == {16}
    chunks, rest = divmod(len(tiles), 5)  # five tiles per product of 16 rows
    assert rest == 0 and chunks >= res.details["blocked_recomputed_rows"] / 16


@needs_numba
def test_budget_sets_the_kept_similarities():
    assert toplists.top_per_row(1000, 0) == toplists.TOP_MIN
    assert toplists.top_per_row(1000, budget_for(1000, 123)) == 123
    assert toplists.top_per_row(1000, 10**12) == 500  # N/2 takes the memory of S itself
    assert toplists.top_per_row(10, 0) == 10
    x = clustered(n=300)
    w, bonus = terms(300, 10, 0.0, np.zeros(300))
    a = run(x, 10, w, bonus, memory_budget=budget_for(300, 20))
    b = run(x, 10, w, bonus, memory_budget=budget_for(300, 150))
    assert (a.details["blocked_top"], b.details["blocked_top"]) == (20, 150)
    assert a.details["blocked_recomputed_rows"] > b.details["blocked_recomputed_rows"]
    np.testing.assert_array_equal(a.indices, b.indices)


@needs_numba
def test_auto_backend_runs_the_compiled_loop_from_numba_min_rows(monkeypatch):
    from hf_diverse.facility import stored

    monkeypatch.setattr(stored, "NUMBA_MIN_ROWS", 100)
    x = clustered(n=300)
    w, bonus = terms(300, 10, 0.0, np.zeros(300))
    assert run(x, 10, w, bonus, backend="auto").details["backend"] == "numba"
    monkeypatch.setattr(stored, "NUMBA_MIN_ROWS", 1000)
    assert run(x, 10, w, bonus, backend="auto").details["backend"] == "torch"


@needs_numba
def test_near_ties_of_the_kept_gains_are_rescored_directly(monkeypatch):
    # row n duplicates greedy's first pick j < n: their gains tie exactly and j must win. The kept gain of j is
    # lowered by a few ulps (as rounding of updates can do); the pick still goes to j only if every row within the
    # rounding bound of the best is re-scored directly
    x = clustered(n=300)
    w, bonus = terms(301, 5, 0.0, np.zeros(301))
    j = plain_greedy_on(np.maximum(x @ x.T, 0).astype(np.float64), 1, w, np.zeros(300))[0][0]
    x = np.vstack([x, x[j : j + 1]])
    build = toplists.build_top_lists

    def drifted(*args, **kwargs):
        lists = build(*args, **kwargs)
        lists.gains[j] -= lists.gains.max() * 2.0**-50
        return lists

    monkeypatch.setattr(blocked, "build_top_lists", drifted)
    res = run(x, 5, w, np.zeros(301), memory_budget=budget_for(301, 30))
    expected = plain_greedy_on(np.maximum(x @ x.T, 0).astype(np.float64), 5, w, np.zeros(301))[0]
    assert expected[0] == j and res.indices.tolist() == expected


def first_gains(x):
    return np.maximum(x @ x.T, 0).astype(np.float64).sum(axis=0)


@needs_numba
@pytest.mark.parametrize("top", [30, 1000])
def test_first_pick_guess_and_its_losses(top, monkeypatch):
    # the shortlist, the candidates and their losses against the definitions, computed here in numpy from the float32
    # products. The last row duplicates the best one (an exact tie: both are candidates, the lower row first); a
    # shortlist of 6 and a large bonus make the bonus decide who is on it and who leads; 64 KiB blocks make several
    # of every product
    monkeypatch.setattr(toplists, "GUESS_SHORTLIST", 6)
    monkeypatch.setattr(toplists, "GUESS_SHARE", 170)  # later shortlists: max(6, 2051 // 170) = 12 rows
    monkeypatch.setattr(toplists, "BUILD_BLOCK_BYTES", 2**16)
    x = clustered(n=2050, d=24, noise=0.6, seed=6)
    quality = np.random.default_rng(4).random(len(x))
    w, bonus = terms(len(x) + 1, 2, 0.5, quality)
    best = int(np.argmax(w * first_gains(x) + bonus))
    x, bonus = np.vstack([x, x[best : best + 1]]), np.append(bonus, bonus[best])
    n = len(x)
    lists = toplists.build_top_lists(torch.from_numpy(x), top, w=w, bonus=bonus)
    guess = lists.guesses[0]
    xd = x.astype(np.float64)
    linear = xd @ xd.sum(0)
    shortlist = np.argsort(-(w * linear + bonus), kind="stable")[:6]
    assert set(shortlist.tolist()) != set(np.argsort(-linear, kind="stable")[:6].tolist())  # the bonus counts
    f = w * first_gains(x) + bonus
    ranked = sorted(shortlist.tolist(), key=lambda j: (-f[j], j))
    assert guess.candidates.tolist() == ranked[:2] == [best, n - 1]  # not the third: no tie
    assert f[ranked[2]] < f[best] - 2.0**-20 * w * first_gains(x)[shortlist].max()
    assert best != sorted(shortlist.tolist(), key=lambda j: (-first_gains(x)[j], j))[0]  # the bonus leads
    # the losses: the rows with tau_v > 0, each clamp(S[v, i], 0, S[v, c])
    s = (x @ x.T).astype(np.float64)
    assert (lists.tau == 0).any() == (top == 1000)  # rows that kept every positive entry are left out
    rows = lists.tau > 0
    for c, loss in zip(guess.candidates, guess.losses, strict=True):
        h = np.maximum(s[rows, c], 0)[:, None]
        np.testing.assert_allclose(loss, np.clip(s[rows], 0, h).sum(axis=0), rtol=1e-12, atol=1e-12)
    # the second pick's, assuming the first candidate: a shortlist of 12 by x_j . sum_v x_v - S[j, first] * sum_v
    # cover_v (weighted, plus the bonus), then the exact gains against cover_v = max(0, S[v, first])
    second = lists.guesses[1]
    assert second.after.tolist() == [best]
    cover = np.maximum(x @ x.T, 0)[:, best].astype(np.float64)  # a column of the product, not a matrix-vector one
    np.testing.assert_array_equal(second.cover, cover.astype(np.float32))
    estimate = w * (linear - (xd @ xd[best]) * cover.sum()) + bonus
    estimate[best] = -np.inf
    shortlist = np.argsort(-estimate, kind="stable")[:12]
    gains = np.maximum(s - cover[:, None], 0).sum(axis=0)
    f = w * gains + bonus
    ranked = sorted(shortlist.tolist(), key=lambda j: (-f[j], j))
    assert shortlist.tolist().index(ranked[0]) == 11  # the last of the 12: a shortlist of 6 would miss it
    assert second.candidates.tolist() == ranked[:1]  # no near tie: the best alone
    assert f[ranked[1]] < f[ranked[0]] - 2.0**-20 * w * gains[shortlist].max()
    rows = lists.tau > cover
    for c, loss in zip(second.candidates, second.losses, strict=True):
        o, h = cover[rows][:, None], np.maximum(s[rows, c], cover[rows])[:, None]
        np.testing.assert_allclose(loss, (np.clip(s[rows], o, h) - o).sum(axis=0), rtol=1e-12, atol=1e-12)
    # the third's, assuming the first two: each earlier pick's raise of the cover charged in proportion to S[j, p]
    third, p2 = lists.guesses[2], int(second.candidates[0])
    assert third.after.tolist() == [best, p2] and len(lists.guesses) == toplists.GUESS_PICKS
    cover2 = np.maximum(cover, np.maximum(x @ x.T, 0)[:, p2].astype(np.float64))
    np.testing.assert_array_equal(third.cover, cover2.astype(np.float32))
    estimate = w * (linear - (xd @ xd[best]) * cover.sum() - (xd @ xd[p2]) * (cover2 - cover).sum()) + bonus
    estimate[[best, p2]] = -np.inf
    shortlist = np.argsort(-estimate, kind="stable")[:12]
    f = w * np.maximum(s - cover2[:, None], 0).sum(axis=0) + bonus
    ranked = sorted(shortlist.tolist(), key=lambda j: (-f[j], j))
    assert third.candidates.tolist() == ranked[:1]
    rows = lists.tau > cover2
    o, h = cover2[rows][:, None], np.maximum(s[rows, ranked[0]], cover2[rows])[:, None]
    np.testing.assert_allclose(third.losses[0], (np.clip(s[rows], o, h) - o).sum(axis=0), rtol=1e-12, atol=1e-12)


@needs_numba
def test_guess_candidates_are_the_best_and_the_rows_within_its_rounding_margin():
    # the shortlist's gains and the pass's are summed in other orders, so rows within 2^-20 * w * (the largest gain)
    # of the best are candidates too, and no others. Bonuses set here put one row 2^-22 of that below the best and
    # one 2^-18 below (w = 1 / N: a margin without w would take both)
    x = clustered(n=800, d=24, noise=0.6, seed=2)
    n = len(x)
    w = 1.0 / n
    gains = first_gains(x)
    bonus = np.zeros(n)
    order = np.argsort(-(w * gains), kind="stable")
    best, inside, outside = (int(j) for j in order[:3])
    unit = w * gains[best]  # the shortlist's largest gain: it holds the best
    bonus[inside] = w * (gains[best] - gains[inside]) - 2.0**-22 * unit
    bonus[outside] = w * (gains[best] - gains[outside]) - 2.0**-18 * unit
    xd = x.astype(np.float64)
    guess = toplists._first_pick_guess(torch.from_numpy(x), w, bonus, xd @ xd.sum(0))
    assert guess.candidates.tolist() == [best, inside]
    assert guess.losses.shape == (2, n)


@needs_numba
def test_first_pick_guess_ranks_its_shortlist_by_the_exact_gains():
    # a pool where the linear part x_j . sum_v x_v (all of d(j | {}) but the negative similarities) ranks the first
    # pick below the candidates: the shortlist's exact gains put it first
    x = clustered(n=3000, d=128, n_clusters=30, noise=1.0, seed=0)
    n = len(x)
    gains = first_gains(x)
    first = int(np.argmax(gains))
    xd = x.astype(np.float64)
    linear = xd @ xd.sum(0)
    assert (linear > linear[first]).sum() >= toplists.GUESS_CANDIDATES
    lists = toplists.build_top_lists(torch.from_numpy(x), 100, w=1.0 / n, bonus=np.zeros(n))
    assert lists.guesses[0].candidates[0] == first


@needs_numba
def test_later_guesses_leave_out_the_picks_they_assume():
    # row 5, already picked, leads the estimate and the bonus: it must not be a candidate again
    x = torch.from_numpy(clustered(n=300, d=24, seed=3))
    n = len(x)
    bonus, estimate = np.zeros(n), np.zeros(n)
    bonus[5] = estimate[5] = 10.0
    cover = toplists._column(x, 5).clamp(min=0)
    guess = toplists._later_pick_guess(x, 1.0 / n, bonus, estimate, np.array([5]), cover)
    assert 5 not in guess.candidates.tolist() and len(guess.candidates) >= 1


@needs_numba
@pytest.mark.parametrize("share, rank", [(64, 30), (64, 31), (10**6, 5), (10**6, 6)])
def test_later_shortlists_grow_with_the_pool(share, rank, monkeypatch):
    # max(GUESS_SHORTLIST = 6, 2000 // share) rows, 31 or 6: the best row is a candidate at the last rank by the
    # estimate that makes the shortlist (from 0), not at the next
    monkeypatch.setattr(toplists, "GUESS_SHORTLIST", 6)
    monkeypatch.setattr(toplists, "GUESS_SHARE", share)
    x = clustered(n=2000, d=24, noise=0.6, seed=9)
    n = len(x)
    s = np.maximum(x @ x.T, 0).astype(np.float64)
    cover = s[:, 7]
    f = np.maximum(s - cover[:, None], 0).sum(axis=0)
    f[7] = -1
    best = int(np.argmax(f))
    others = np.random.default_rng(0).permutation(np.setdiff1d(np.arange(n), [best, 7]))
    order = np.append(np.insert(others, rank, best), 7)  # rows by decreasing estimate; 7, the pick assumed, last
    estimate = np.empty(n)
    estimate[order] = -np.arange(n, dtype=np.float64)
    cover32 = toplists._column(torch.from_numpy(x), 7).clamp(min=0)
    guess = toplists._later_pick_guess(torch.from_numpy(x), 1.0, np.zeros(n), estimate, np.array([7]), cover32)
    assert (guess.candidates[0] == best) == (rank < max(6, n // share))


@needs_numba
@pytest.mark.parametrize("wrong", [None, 3])
def test_later_picks_guessed_only_after_the_picks_they_assume(wrong, monkeypatch, caplog):
    # every guess holds its true pick; with wrong=3, the third guess puts it second, after another row, so the third
    # pick is still guessed but the later guesses assumed that other row and do not count
    x = clustered(n=3000, d=48, n_clusters=40, noise=0.5, seed=8)
    k = 120
    w, bonus = terms(len(x), k, 0.3, np.random.default_rng(6).random(len(x)))
    stored = run(x, k, w, bonus, strategy="incremental")
    picks = [int(j) for j in stored.indices]
    first, later = toplists._first_pick_guess, toplists._later_pick_guess

    def placing(make):
        def placed(*args):
            out = make(*args)
            t = len(out.after)  # the pick it guesses, from 0
            others = np.setdiff1d(np.arange(10), [picks[t]])[:2]
            out.candidates = np.array([others[0], picks[t]] if t + 1 == wrong else [picks[t], others[0]])
            out.losses = np.zeros((2, len(x)))
            return out

        return placed

    monkeypatch.setattr(toplists, "_first_pick_guess", placing(first))
    monkeypatch.setattr(toplists, "_later_pick_guess", placing(later))
    with caplog.at_level("INFO", logger="hf_diverse"):
        res = run(x, k, w, bonus, memory_budget=budget_for(len(x), 150))
    np.testing.assert_array_equal(res.indices, stored.indices)
    np.testing.assert_array_equal(res.gains, stored.gains)
    g = toplists.GUESS_PICKS
    expected = [True] * g if wrong is None else [True] * 3 + [False] * (g - 3)
    assert res.details["blocked_picks_guessed"] == expected
    assert f"{sum(expected)} of the first {g} picks were guessed" in caplog.text
    monkeypatch.setattr(toplists, "GUESS_PICKS", 2)  # the first two only
    two = run(x, k, w, bonus, memory_budget=budget_for(len(x), 150))
    np.testing.assert_array_equal(two.indices, stored.indices)
    assert two.details["blocked_picks_guessed"] == [True, True]
    saved = two.details["blocked_recomputed_rows"] - res.details["blocked_recomputed_rows"]
    assert saved > (0.1 * len(x) if wrong is None else 0)


@needs_numba
@pytest.mark.parametrize("position, second_position", [(0, 0), (0, 1), (1, 0), (None, 0), (0, None)])
def test_first_pick_guessed_or_not_gives_the_stored_picks(position, second_position, monkeypatch, caplog):
    # when the first pick is among the candidates (first or second), its update takes that candidate's losses and
    # recomputes no row; when it is not (None), the loop recomputes as before. The second pick likewise, and its guess
    # only counts when the first pick is the one it assumed (the first candidate). Either way: the stored strategies'
    # picks and gains, bit for bit
    x = clustered(n=3000, d=48, n_clusters=40, noise=0.5, seed=8)
    k = 120
    w, bonus = terms(len(x), k, 0.3, np.random.default_rng(6).random(len(x)))
    stored = run(x, k, w, bonus, strategy="incremental")
    first, second = (int(j) for j in stored.indices[:2])

    def placing(make, pick, where):  # the pick at `where` among other candidates, or left out
        def placed(*args):
            out = make(*args)
            others = np.setdiff1d(np.arange(10), [pick])[:3]
            if where is not None:
                others[where] = pick
            out.candidates, out.losses = others, np.zeros((3, len(x)))
            return out

        return placed

    monkeypatch.setattr(toplists, "_first_pick_guess", placing(toplists._first_pick_guess, first, position))
    later = toplists._later_pick_guess
    placed_second = placing(later, second, second_position)
    monkeypatch.setattr(toplists, "_later_pick_guess", lambda *a: (placed_second if len(a[4]) == 1 else later)(*a))
    hit = position is not None
    second_hit = position == 0 and second_position is not None
    with caplog.at_level("INFO", logger="hf_diverse"):
        res = run(x, k, w, bonus, memory_budget=budget_for(len(x), 150))
    np.testing.assert_array_equal(res.indices, stored.indices)
    np.testing.assert_array_equal(res.gains, stored.gains)
    np.testing.assert_array_equal(res.diversity_gains, stored.diversity_gains)
    assert res.details["blocked_first_pick_guessed"] is hit
    assert res.details["blocked_second_pick_guessed"] is second_hit
    assert second_hit or not any(res.details["blocked_picks_guessed"][2:])  # later guesses assumed the placed picks
    assert ("the first pick was guessed" if hit else "the first pick was not among the guesses") in caplog.text
    assert ("the second was guessed" if second_hit else "the second was not among the guesses") in caplog.text
    monkeypatch.setattr(toplists, "GUESS_CANDIDATES", 0)  # no guess: every row the first pick covers is recomputed
    unguessed = run(x, k, w, bonus, memory_budget=budget_for(len(x), 150))
    np.testing.assert_array_equal(unguessed.indices, stored.indices)
    assert unguessed.details["blocked_first_pick_guessed"] is unguessed.details["blocked_second_pick_guessed"] is None
    assert unguessed.details["blocked_picks_guessed"] == []
    saved = unguessed.details["blocked_recomputed_rows"] - res.details["blocked_recomputed_rows"]
    assert (saved > 0.5 * len(x)) if hit else (saved == 0)
    assert not second_hit or saved > 0.5 * len(x) + 0.02 * len(x)
