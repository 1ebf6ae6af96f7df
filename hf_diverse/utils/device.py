"""Device resolution shared by scorers and selection."""

import os

import psutil
import torch


def resolve_device(device: str | torch.device | None = None, rank: int | None = None) -> torch.device:
    """`None` picks cuda, then mps, then cpu. With a `rank` (from `map(with_rank=True)`), ranks are spread
    round-robin over the visible GPUs: `cuda:{rank % n_gpus}`."""
    if device is not None and str(device) not in ("auto",):
        dev = torch.device(device)
        if dev.type == "cuda" and rank is not None and dev.index is None:
            return torch.device(f"cuda:{rank % max(torch.cuda.device_count(), 1)}")
        return dev
    if torch.cuda.is_available():
        return torch.device(f"cuda:{(rank or 0) % torch.cuda.device_count()}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_memory_bytes(device: torch.device) -> int:
    """Free memory on `device` (GPU: free device memory; CPU: available system memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def _one_thread_after_fork():
    # GNU OpenMP cannot be used in a child forked after the parent ran parallel torch ops (the child hangs): a
    # `map(num_proc=n)` worker runs torch on one thread, the processes give the parallelism
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)
