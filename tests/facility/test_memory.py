"""`memory.page_buffer`: the large matrices on 2 MiB pages, and the fall back to 4 KiB pages when faulting huge pages
in turns slow. The kernel's own record of each mapping (/proc/self/smaps) is what is checked."""

import sys

import numpy as np
import pytest
import torch

from hf_diverse.facility import memory

LINUX = sys.platform.startswith("linux")
# the tests that need huge pages run where the kernel offers them (Linux, transparent huge pages not `never`)
needs_huge_pages = pytest.mark.skipif(
    not memory._huge_pages_offered(), reason="this kernel offers no transparent huge pages"
)
N = 4096  # 64 MiB of float32: the smallest matrix put on huge pages


def _mappings(lo: int, hi: int) -> list[tuple[int, int, str, set[str], int]]:
    """(start, end, permissions, VmFlags, resident bytes) of the mappings of this process that overlap [lo, hi)."""
    out, current = [], None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                start, end = (int(v, 16) for v in head[0].split("-"))
                current = [start, end, head[1]] if start < hi and end > lo else None
            elif head[0] == "Rss:" and current is not None:
                rss = int(head[1]) * 1024
            elif head[0] == "VmFlags:" and current is not None:
                out.append((*current, set(head[1:]), rss))
    return sorted(out)


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_small_arrays_take_the_ordinary_allocator():
    a, paging = memory.page_buffer((100, 50), np.int32)
    assert paging == "default" and a.shape == (100, 50) and a.dtype == np.int32 and a.flags.writeable


@needs_huge_pages
@pytest.mark.parametrize("populate", [memory.MADV_POPULATE_WRITE, 9999], ids=["populate", "older-kernel-touch"])
def test_large_arrays_sit_on_huge_pages_in_a_private_mapping(monkeypatch, two_threads, populate):
    monkeypatch.setattr(memory, "HUGE_PAGE_FAULT_LIMIT_S", float("inf"))  # never slow
    monkeypatch.setattr(memory, "MADV_POPULATE_WRITE", populate)  # 9999: madvise refuses it, as before Linux 5.14
    a, paging = memory.page_buffer((N, N))
    assert paging == "huge"
    assert a.shape == (N, N) and a.dtype == np.float32 and a.flags.writeable and a.flags.c_contiguous
    lo = a.ctypes.data
    assert lo % memory.HUGE_PAGE == 0
    maps = _mappings(lo, lo + a.nbytes)
    assert len(maps) == 1 and maps[0][4] >= a.nbytes  # faulted in ahead, every page of it
    a[:] = 1.5  # usable as an ordinary array, every entry
    assert float(a.sum(dtype=np.float64)) == 1.5 * N * N
    maps = _mappings(lo, lo + a.nbytes)
    assert len(maps) == 1  # one mapping, marked for huge pages from end to end
    start, end, perms, flags, _ = maps[0]
    assert start <= lo and end >= lo + a.nbytes
    assert perms == "rw-p"  # private: the anonymous huge page setting covers it
    assert "hg" in flags and "nh" not in flags


@needs_huge_pages
def test_slow_huge_pages_leave_the_rest_on_4k_pages(monkeypatch, two_threads):
    monkeypatch.setattr(memory, "HUGE_PAGE_FAULT_LIMIT_S", 0.0)  # every chunk is "slow"
    a, paging = memory.page_buffer((N, 3 * N // 2))  # three chunks
    chunk = 2 * memory.PROBE_PAGES * memory.HUGE_PAGE  # two threads' runs of PROBE_PAGES huge pages
    assert a.nbytes == 3 * chunk and memory.SLOW_CHUNKS == 2
    assert paging == "huge for 67%, then 4k"
    lo = a.ctypes.data
    maps = _mappings(lo, lo + a.nbytes)
    assert [m[3] & {"hg", "nh"} for m in maps] == [{"hg"}, {"nh"}]
    assert maps[0][1] == lo + 2 * chunk == maps[1][0]  # the two slow chunks keep their huge pages, the rest does not
    assert maps[1][1] >= lo + a.nbytes
    assert maps[0][4] >= 2 * chunk and maps[1][4] == 0  # the rest faults in as it is written, not ahead
    a[:] = 2.0
    assert float(a.sum(dtype=np.float64)) == 2.0 * a.size


class _Clock:
    """`time` for `memory`: each timed chunk takes the next of `durations` seconds."""

    def __init__(self, durations):
        self.durations, self.now, self.calls = list(durations), 0.0, 0

    def perf_counter(self):
        self.calls += 1
        if self.calls % 2 == 0:  # the end of a chunk
            self.now += self.durations.pop(0) if self.durations else 0.0
        return self.now


@needs_huge_pages
@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ([1.0], "huge"),  # one slow chunk alone (a thread kept waiting) is not enough
        ([1.0, 0.0, 1.0, 0.0, 1.0], "huge"),  # nor are slow chunks that are not in a row
        ([1.0, 1.0], "huge for 50%, then 4k"),
        ([0.0, 1.0, 1.0], "huge for 75%, then 4k"),
        ([0.0, 0.0, 1.0, 1.0], "huge"),  # the last two chunks: nothing is left to fall back
    ],
)
def test_huge_pages_end_after_two_slow_chunks_in_a_row(monkeypatch, two_threads, durations, expected):
    monkeypatch.setattr(memory, "time", _Clock(durations))
    a, paging = memory.page_buffer((2 * N, N))  # four chunks of 16 huge pages (two threads' runs of 8)
    assert a.nbytes == 4 * 2 * memory.PROBE_PAGES * memory.HUGE_PAGE
    assert paging == expected


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("always [madvise] never\n", True), ("[always] madvise never\n", True), ("always madvise [never]\n", False)],
)
def test_huge_pages_only_where_the_kernel_offers_them(monkeypatch, tmp_path, setting, expected):
    path = tmp_path / "enabled"
    path.write_text(setting)
    monkeypatch.setattr(memory, "THP_SETTING", str(path))
    assert memory._huge_pages_offered() is (expected and LINUX)
    monkeypatch.setattr(memory, "THP_SETTING", str(tmp_path / "missing"))
    assert memory._huge_pages_offered() is False
    if not expected:
        assert memory.page_buffer((N, N))[1] == "default"


def test_the_array_starts_on_a_2mib_boundary_of_any_mapping():
    raw = np.empty(3 * memory.HUGE_PAGE, dtype=np.uint8)
    for shift in (0, 4096, memory.HUGE_PAGE // 2 + 4096, memory.HUGE_PAGE - 4096):
        misaligned = raw[shift:]
        offset, flat = memory._huge_aligned(misaligned, memory.HUGE_PAGE)
        assert flat.ctypes.data % memory.HUGE_PAGE == 0 and 0 <= offset < memory.HUGE_PAGE
        assert flat.ctypes.data == misaligned.ctypes.data + offset and flat.shape == (memory.HUGE_PAGE,)


@needs_huge_pages
def test_a_huge_page_array_is_unmapped_when_dropped(two_threads):
    a, _ = memory.page_buffer((N, N))
    lo, nbytes = a.ctypes.data, a.nbytes
    t = torch.from_numpy(a)  # as the stored strategies hold S
    del a
    assert _mappings(lo, lo + nbytes)
    del t
    assert _mappings(lo, lo + nbytes) == []


def _plain_greedy(x: np.ndarray, k: int, w: float, bonus: np.ndarray) -> tuple[list[int], list[float]]:
    """Greedy on w * sum_v max(0, S[v, j] - cover_v) + bonus_j, every gain recomputed each step, S in float32 from
    one product and the sums in float64: the reference the stored strategies must reproduce."""
    s = (torch.from_numpy(x) @ torch.from_numpy(x).T).clamp_(min=0).numpy().astype(np.float64)
    cover, picks, gains = np.zeros(len(x)), [], []
    for _ in range(k):
        score = w * np.maximum(s - cover[:, None], 0).sum(axis=0) + bonus
        score[picks] = -np.inf
        j = int(np.argmax(score))
        picks.append(j)
        gains.append(float(score[j]))
        cover = np.maximum(cover, s[:, j])
    return picks, gains


@needs_huge_pages
@pytest.mark.parametrize("limit", [float("inf"), 0.0], ids=["huge", "huge-then-4k"])
def test_the_stored_strategies_pick_the_same_on_huge_pages(monkeypatch, two_threads, limit):
    from hf_diverse.facility import facility_location_greedy, kernels

    if not kernels.HAS_NUMBA:
        pytest.skip("the compiled strategies need numba")
    monkeypatch.setattr(memory, "HUGE_PAGE_FAULT_LIMIT_S", limit)
    monkeypatch.setattr(memory, "SLOW_CHUNKS", 1)  # S has two chunks: fall back after the first
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((40, 16))
    x = centers[rng.integers(0, 40, N)] + 0.3 * rng.standard_normal((N, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    k, alpha, q = 12, 0.7, rng.random(N)
    w, bonus = (1 - alpha) / N, alpha * q / k
    picks, gains = _plain_greedy(x, k, w, bonus)
    for strategy in ("lazy", "incremental"):
        res = facility_location_greedy(
            torch.from_numpy(x),
            k,
            bonus=torch.from_numpy(bonus),
            diversity_weight=w,
            strategy=strategy,
            backend="numba",
            show_progress=False,
        )
        assert res.details["pages"] == ("huge" if limit else "huge for 50%, then 4k")
        assert res.indices.tolist() == picks
        np.testing.assert_allclose(res.gains, gains, rtol=1e-9)
