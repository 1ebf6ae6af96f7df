"""The one memory check of the engine: does the N x N float32 similarity matrix fit, and which strategy `auto` runs."""

import torch

from ..errors import InsufficientMemoryError
from ..utils.device import available_memory_bytes

# exact strategies that hold the N x N float32 similarity matrix
STORES_MATRIX = ("dense", "lazy", "incremental")


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
