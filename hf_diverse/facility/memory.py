"""The engine's memory: does the N x N float32 similarity matrix fit, which strategy `auto` runs, and where S lives.

S is allocated on transparent huge pages (2 MiB) where the kernel offers them and they are cheap to fault in: writing
S and the passes over its rows then take far fewer page faults and TLB misses (20k rows: 1.6 GB, ~0.2 s less per
build and greedy on the project machine). Some virtual machines return free guest memory to their host, and there a
huge page freed a few seconds ago costs ~5-30 ms to fault in instead of ~0.2 ms, once the few hundred freed last are
used up (4 KiB pages slow down less and later: not for 1.6 GB, ~5x for 10 GB); so S is faulted in ahead, a few huge
pages at a time, timed, and once they turn slow the rest of S falls back to 4 KiB pages.
"""

import ctypes
import math
import mmap
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..errors import InsufficientMemoryError
from ..utils.device import available_memory_bytes

# exact strategies that hold the N x N float32 similarity matrix
STORES_MATRIX = ("dense", "lazy", "incremental")
HUGE_PAGE = 2 * 2**20
HUGE_PAGES_MIN_BYTES = 64 * 2**20  # smaller matrices take the ordinary allocator
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
PROBE_PAGES = 8  # huge pages per thread and timed chunk
# slow chunks in a row that end huge pages (one alone can be a thread waiting for the GIL, ~5 ms at a time)
SLOW_CHUNKS = 2
MADV_POPULATE_WRITE = 23  # Linux >= 5.14: fault a range in without touching it from user space
# a backed 2 MiB page faults in in ~0.2 ms here; one its host took back in ~5-30 ms (median 4.5 ms)
HUGE_PAGE_FAULT_LIMIT_S = 2e-3


def dense_matrix_bytes(n: int) -> int:
    """Bytes of the N x N float32 similarity matrix."""
    return 4 * n * n


def default_budget(device: torch.device, memory_budget: int | None = None) -> int:
    """`memory_budget`, or half the free memory of `device`: what `auto` allows S, and `blocked` its kept
    similarities.

    Example:
    ```py
    >>> default_budget(torch.device("cpu"), memory_budget=2**30)
    1073741824
    ```
    """
    return memory_budget if memory_budget is not None else available_memory_bytes(device) // 2


def choose_strategy(n: int, device: torch.device, memory_budget: int | None = None, fallback: str = "blocked") -> str:
    """The documented `auto` rule: `"incremental"` (exact, stores S) when 4 N^2 bytes fit the budget, else `fallback`.

    The budget defaults to half the free memory of `device`. `facility_location_greedy` (exact strategies only) falls
    back to `"blocked"`; QDIT passes `fallback="sparse"` (kNN graph, memory O(N m)).

    Example:
    ```py
    >>> choose_strategy(1000, torch.device("cpu"), memory_budget=4 * 1000 * 1000)
    'incremental'
    >>> choose_strategy(1000, torch.device("cpu"), memory_budget=1000)
    'blocked'
    ```
    """
    return "incremental" if dense_matrix_bytes(n) <= default_budget(device, memory_budget) else fallback


def check_dense_fits(strategy: str, n: int, device, memory_budget: int | None = None) -> None:
    """Raise `InsufficientMemoryError`, before anything is allocated, when `strategy` stores the N x N matrix and it
    does not fit `memory_budget` (default: the free memory of `device`)."""
    if strategy not in STORES_MATRIX:
        return
    budget = memory_budget if memory_budget is not None else available_memory_bytes(device)
    need = dense_matrix_bytes(n)
    if need > budget:
        raise InsufficientMemoryError(
            f"strategy={strategy!r} needs a {n}x{n} float32 similarity matrix ({need / 2**30:.1f} GiB) but only "
            f"{budget / 2**30:.1f} GiB are available on {device}. Use strategy='sparse' (kNN graph, memory O(N m)) "
            "or strategy='blocked' (exact, recomputes similarity rows; slow at this size)."
        )


def page_buffer(shape: tuple[int, ...], dtype=np.float32) -> tuple[np.ndarray, str]:
    """An uninitialised CPU array for one of the engine's large matrices (S, the kept similarities), and how it is
    paged: `"huge"` (transparent 2 MiB pages), `"huge for P%, then 4k"` (huge pages turned slow to fault in, see the
    module docstring) or `"default"` (the ordinary allocator: not Linux, transparent huge pages set to `never`, or
    under `HUGE_PAGES_MIN_BYTES`). The picks never depend on it.

    Example:
    ```py
    >>> a, paging = page_buffer((8, 8))
    >>> a.shape, a.dtype, paging
    ((8, 8), dtype('float32'), 'default')
    ```
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < HUGE_PAGES_MIN_BYTES or not _huge_pages_offered():
        return np.empty(shape, dtype=dtype), "default"
    # a private anonymous mapping (Python's default is shared, which the anonymous huge page setting does not cover),
    # one huge page longer so that the array can start on a 2 MiB boundary
    buf = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        buf.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # a kernel built without transparent huge pages
        buf.close()
        return np.empty(shape, dtype=dtype), "default"
    offset, flat = _huge_aligned(np.frombuffer(buf, dtype=np.uint8), nbytes)
    paging = _fault_in(buf, flat, offset, max(1, min(8, torch.get_num_threads())))
    return flat.view(dtype).reshape(shape), paging


def _huge_pages_offered() -> bool:
    """Whether this kernel gives transparent huge pages to a mapping that asks (`always` or `madvise`, not `never`)."""
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open(THP_SETTING) as f:
            return "[never]" not in f.read()
    except OSError:  # no sysfs entry: a kernel built without them
        return False


def _huge_aligned(raw: np.ndarray, nbytes: int) -> tuple[int, np.ndarray]:
    """The offset of the first 2 MiB boundary in the bytes `raw`, and the `nbytes` from there."""
    offset = -raw.ctypes.data % HUGE_PAGE
    return offset, raw[offset : offset + nbytes]


def _fault_in(buf: mmap.mmap, flat: np.ndarray, offset: int, threads: int) -> str:
    """Fault an array in on huge pages, `threads` runs of `PROBE_PAGES` pages at a time, and time each such chunk.
    Where the host took free memory back, faults turn slow once the pages freed recently are used up (on the project
    VM, after a few hundred), whatever their address; after `SLOW_CHUNKS` slow chunks in a row, the rest is left to
    take 4 KiB pages as it is written. Faulting S in ahead costs ~0.08 s at 20k rows against letting the build fault
    it in."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    nbytes = flat.shape[0]
    span = PROBE_PAGES * HUGE_PAGE

    def populate(start: int) -> None:
        stop = min(nbytes, start + span)
        if libc.madvise(flat.ctypes.data + start, stop - start, MADV_POPULATE_WRITE) != 0:
            flat[start : stop : mmap.PAGESIZE] = 0  # kernels before 5.14: touch every page (huge ones or not)

    slow = 0
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, nbytes, threads * span):
            stop = min(nbytes, start + threads * span)
            t0 = time.perf_counter()
            list(pool.map(populate, range(start, stop, span)))
            slow = slow + 1 if time.perf_counter() - t0 > PROBE_PAGES * HUGE_PAGE_FAULT_LIMIT_S else 0
            if slow == SLOW_CHUNKS and stop < nbytes:
                buf.madvise(mmap.MADV_NOHUGEPAGE, offset + stop, len(buf) - offset - stop)
                return f"huge for {stop / nbytes:.0%}, then 4k"
    return "huge"
