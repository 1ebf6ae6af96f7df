"""`hf_diverse.facility.cover`: the screened cover against the cover computed here in float64, on picks whose
similarities sit just above the cover already there (where a screen without its margin would skip a rise)."""

import numpy as np
import pytest
import torch

from hf_diverse.facility import cover as cover_module
from hf_diverse.facility import objective
from hf_diverse.facility.cover import Cover

pytestmark = pytest.mark.usefixtures("one_thread")


def near_duplicate_pool(n=4000, d=64, pairs=48, seed=0):
    """Unit rows in 6 tight clusters; the last `pairs` rows are near-duplicates of the `pairs` rows before them, so a
    twin picked after its sibling raises the cover of the sibling's rows by about as much as bfloat16's rounding."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((6, d))
    a = centers[rng.integers(0, 6, n - pairs)] + 0.35 * rng.standard_normal((n - pairs, d))
    twins = a[-pairs:] + 0.01 * rng.standard_normal((pairs, d))
    a = np.concatenate([a, twins])
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def float64_cover(x: np.ndarray, picks) -> np.ndarray:
    """max_{a in picks} max(0, x_a . x_v), straight off the definition, in float64."""
    x64 = x.astype(np.float64)
    return np.maximum(x64 @ x64[list(picks)].T, 0.0).max(axis=1)


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_screened_cover_is_the_float32_cover(scale):
    # scale 4: rows of norm 4, similarities (and the bfloat16 error) 16x larger, so the margin must scale with them;
    # a power of 2, so every product is exactly 16x the unit one
    x = near_duplicate_pool() * np.float32(scale)
    n, pairs = len(x), 48
    siblings = list(range(n - 2 * pairs, n - pairs))
    first = siblings + list(range(0, 64, 4))  # 64 picks: the cover is high everywhere after them
    second = list(range(n - pairs, n - pairs + 8)) + list(range(100, 124))  # 8 twins and 24 other rows
    cover = Cover(torch.from_numpy(x), screen=True)
    rose = []
    for batch in (first[:32], first[32:], *(second[i : i + 8] for i in range(0, 32, 8))):
        v, old, new = cover.raise_(torch.tensor(batch))
        rose.append(v.numel())
        assert bool((new > old).all())
    # the screen ran and skipped most rows, so the equality below is not the unscreened product's
    assert cover.stats["screened"] >= 2, cover.stats
    assert cover.stats["rows_left"] < cover.stats["screened"] * n / 2, cover.stats
    expected = float64_cover(x, first + second)
    np.testing.assert_allclose(cover.cur.numpy(), expected, rtol=0, atol=2e-6 * scale**2)
    # the twins raised rows by less than the bf16 error: what a screen without its margin would miss
    gain = expected - float64_cover(x, first)
    assert int(((gain > 0) & (gain < cover_module.SCREEN_MARGIN * scale**2)).sum()) > 50, rose
    assert cover.total() == pytest.approx(expected.sum(), rel=1e-7)


def test_fixed_values_replace_computed_ones_on_their_pairs():
    x = near_duplicate_pool()
    first, picks = list(range(0, 64)), [3904, 3905]
    rows = [torch.tensor([7, 9, 3952]), torch.tensor([9, 11])]  # 3952: the twin of 3904
    x64 = x.astype(np.float64)
    for screen in (False, True):
        cover = Cover(torch.from_numpy(x), screen=screen)
        for start in range(0, 64, 8):
            cover.raise_(torch.tensor(first[start : start + 8]))
        screened = cover.stats["screened"]
        # the caller has applied its own values (here: a little below the products) before the batch
        fixed = []
        for j, v in zip(picks, rows, strict=True):
            values = torch.from_numpy((x64[v.numpy()] @ x64[j] - 1e-4).astype(np.float32))
            cover.cur[v] = torch.maximum(cover.cur[v], values)
            fixed.append((v, values))
        before = cover.cur.clone()
        cover.raise_(torch.tensor(picks), fixed)
        assert cover.stats["screened"] == screened + int(screen)
        expected = np.maximum(float64_cover(x, first + picks), before.numpy())
        for j, (v, values) in zip(picks, fixed, strict=True):  # the pairs count their fixed value, not the product
            others = [p for p in picks if p != j]
            for r, value in zip(v.tolist(), values.tolist(), strict=True):
                rest = [x64[r] @ x64[p] for p in others if r not in rows[picks.index(p)].tolist()]
                expected[r] = max([before[r].item(), value, *rest])
        np.testing.assert_allclose(cover.cur.numpy(), expected, atol=2e-6)
        assert cover.cur[3952].item() < float(x64[3952] @ x64[3904]) - 5e-5


def test_objective_of_a_large_pool_uses_the_screened_cover(monkeypatch):
    x = near_duplicate_pool()
    picks = list(range(3904, 4000))
    calls = []
    monkeypatch.setattr(objective, "SCREEN_MIN_ROWS", 1000)
    monkeypatch.setattr(objective, "bf16_matmul_is_fast", lambda device: calls.append(device) or True)
    got = objective.facility_location_objective(torch.from_numpy(x), picks)
    assert calls, "the screened path did not run"
    assert got == pytest.approx(float64_cover(x, picks).sum(), rel=1e-7)
