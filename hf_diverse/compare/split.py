"""The held-out split of a comparison: drawn once by content hash, so it does not depend on row order or method.

Each row's (instruction, response) text is hashed with the seed (`blake2b`, 8 bytes); the rows of the smallest
hashes are held out. The same pool and seed give the same held-out rows in any row order and whatever methods are
compared, and exact duplicates fall on the same side (the rows sharing the last held-out hash are held out too, so a
duplicate can never be selected while its copy is held out).
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError


@dataclass
class HeldoutSplit:
    """Pool rows split into held-out rows and selection candidates.

    Args:
        heldout (`np.ndarray` of int64): pool rows held out, ascending.
        candidates (`np.ndarray` of int64): the other pool rows, ascending: what every method selects from.
        requested (`int`): held-out rows asked for (`holdout` as a count); `len(heldout)` is larger only when
            duplicates of the last held-out row were added.
        seed (`int`): the hashing seed.
    """

    heldout: np.ndarray
    candidates: np.ndarray
    requested: int
    seed: int

    def to_dict(self) -> dict:
        return {
            "heldout_rows": len(self.heldout),
            "candidate_rows": len(self.candidates),
            "requested": self.requested,
            "seed": self.seed,
            "by": "blake2b(seed, instruction, response), smallest hashes held out; exact duplicates kept together",
        }


def resolve_holdout(holdout, n: int) -> int:
    """Held-out rows for `holdout`: a float is a fraction of the pool in (0, 1), an integer a count in [1, n - 1].

    Example:
    ```py
    >>> resolve_holdout(0.05, 294), resolve_holdout(20, 294)
    (15, 20)
    ```
    """
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"holdout must be a fraction in (0, 1) or a row count, got {holdout!r}.")
    if isinstance(holdout, (float, np.floating)):
        if not 0 < holdout < 1:
            raise InvalidParameterError(
                f"holdout must be a fraction in (0, 1) or an integer row count, got {holdout!r}."
            )
        count = int(round(float(holdout) * n))
    else:
        count = int(holdout)
    if not 1 <= count <= n - 1:
        raise InvalidParameterError(
            f"holdout={holdout!r} gives {count} held-out rows of a pool of {n}: it must leave at least one row on "
            "each side (a fraction in (0, 1) or a count in [1, pool size - 1])."
        )
    return count


def content_hashes(instructions: list[str], responses: list[str], seed: int = 0) -> np.ndarray:
    """64-bit hash of each row's (seed, instruction, response), as uint64.

    Example:
    ```py
    >>> h = content_hashes(["a", "b", "a"], ["x", "y", "x"])
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    ```
    """
    prefix = f"{int(seed)}\x1f".encode()
    out = np.empty(len(instructions), dtype=np.uint64)
    for i, (instruction, response) in enumerate(zip(instructions, responses, strict=True)):
        digest = hashlib.blake2b(prefix + instruction.encode() + b"\x1f" + response.encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def heldout_split(instructions: list[str], responses: list[str], holdout=0.05, seed: int = 0) -> HeldoutSplit:
    """Split pool rows by content hash into held-out rows and candidates (see the module docstring).

    Args:
        instructions (`list[str]`) and responses (`list[str]`): the text of every pool row.
        holdout (`float` or `int`, defaults to 0.05): fraction of the pool in (0, 1), or a row count.
        seed (`int`, defaults to 0): hashing seed.

    Example:
    ```py
    >>> split = heldout_split([f"q{i}" for i in range(10)], [f"a{i}" for i in range(10)], holdout=0.2)
    >>> len(split.heldout), len(split.candidates)
    (2, 8)
    ```
    """
    n = len(instructions)
    count = resolve_holdout(holdout, n)
    hashes = content_hashes(instructions, responses, seed)
    order = np.argsort(hashes, kind="stable")
    last = hashes[order[count - 1]]
    held = np.flatnonzero(hashes <= last)  # the smallest `count` hashes, plus exact copies of the last one
    if len(held) == n:
        raise InvalidParameterError(
            f"holdout={holdout!r}: every row of the pool shares the held-out rows' text; nothing is left to select."
        )
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return HeldoutSplit(np.flatnonzero(mask), np.flatnonzero(~mask), count, int(seed))
