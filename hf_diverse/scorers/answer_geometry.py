"""ADG's answer geometry (ADG): token weights, answer vectors from hidden states, the spread of K answers.

Pure functions, no model loading: `AnswerDivergenceScorer` (`hf_diverse.scorers.adg`) feeds them.

- `token_weight` / `token_weight_table`: the reference's weight of a token (0 for empty/punctuation-only tokens,
  x1.3 for tokens with a digit or one of `%℃°`, else 1), alone or for a whole vocabulary.
- `mean_of_layers` / `normalise_rows`: an answer vector is the weighted mean over its tokens of the mean of hidden
  layers -4, -3, -2, L2-normalised.
- `answer_divergence`: `D(x) = tr(Sc) / K` and `I(x) = 1 - lambda_1 / tr(Sc)` of the centred Gram matrix
  `Sc = H V V^T H`; `combined_score`: `(1 - lam) * D + lam * I`.

An empty answer (no token with a weight: empty, or punctuation only) has no vector: it pools to the zero vector, which
the reference keeps as a point of the geometry, where it pulls the mean towards the origin and inflates D. Here it is
left out: D and I are computed over the row's other answers (K' of them, so `D = tr(Sc') / K'`); with fewer than two
answers left nothing can spread, and D = I = 0 (the lowest score).
"""

import re

import numpy as np
import torch

from ..errors import InvalidParameterError

# the hidden layers averaged into a token's vector (the reference's choice)
LAYERS = (-4, -3, -2)
# token weights of the reference: a digit or one of % ℃ ° gives x1.3; empty or punctuation-only gives 0
_NUMERIC = re.compile(r"[\d%℃°]")
_PUNCT_ONLY = re.compile(r"[\s,.;:!?()\[\]{}\"'`~\-_/\\]+")
NUMERIC_BONUS = 1.3


def token_weight(text: str) -> float:
    """The reference's weight of one decoded token: 0 if empty or punctuation only, 1.3 with a digit/%/℃/°, else 1.

    Example:
    ```py
    >>> token_weight(" 42"), token_weight(" ,"), token_weight(" cat")
    (1.3, 0.0, 1.0)
    ```
    """
    text = text.strip()
    if not text or _PUNCT_ONLY.fullmatch(text):
        return 0.0
    return NUMERIC_BONUS if _NUMERIC.search(text) else 1.0


def token_weight_table(tokenizer, size: int) -> np.ndarray:
    """`token_weight` of each id in `[0, size)` decoded alone, float32; ids that cannot be decoded weigh 1.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the LM's tokenizer.
        size (`int`): how many ids (at least the model's vocabulary size).
    """
    weights = np.ones(size, dtype=np.float32)
    step = 8192
    for start in range(0, size, step):
        ids = list(range(start, min(size, start + step)))
        try:
            texts = tokenizer.batch_decode([[i] for i in ids])
        except Exception:  # one bad id fails the whole batch: decode one by one
            texts = [_safe_decode(tokenizer, i) for i in ids]
        weights[start : start + len(ids)] = [1.0 if t is None else token_weight(t) for t in texts]
    return weights


def _safe_decode(tokenizer, token_id: int) -> str | None:
    try:
        return tokenizer.decode([token_id])
    except Exception:
        return None


def mean_of_layers(hidden_states) -> torch.Tensor:
    """The float32 mean of hidden layers `LAYERS` (-4, -3, -2), from a model's `hidden_states` output."""
    if len(hidden_states) < len(LAYERS) + 1:
        raise InvalidParameterError(
            f"ADG averages hidden layers {list(LAYERS)}; the model has only {len(hidden_states) - 1} layers."
        )
    return torch.stack([hidden_states[i].float() for i in LAYERS]).mean(0)


def normalise_rows(vectors: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def answer_divergence(vectors, eps: float = 1e-12):
    """D(x) and I(x) of a set of K answer vectors (the ADG paper and its reference code), in float64.

    Rows are L2-normalised first; zero rows (empty answers) are left out of their set. `S = V V^T`, `Sc = H S H` with
    `H = I - 11^T/K`, eigenvalues of `Sc` clipped at 0: `D = tr(Sc)/K`, `I = 1 - lambda_1/tr(Sc)`, both 0 when
    `tr(Sc) < eps` or when fewer than two answers are left.

    Args:
        vectors (`np.ndarray` or `torch.Tensor`): `(K, d)` for one instruction, or `(B, K, d)` for a batch.
        eps (`float`, defaults to 1e-12): trace below which the set counts as one point.

    Returns:
        `(D, I)`: two floats for a `(K, d)` input, two `(B,)` float64 arrays for a batch.

    Example:
    ```py
    >>> d, iso = answer_divergence(np.eye(5))  # 5 orthogonal answers: the maxima for K = 5
    >>> round(d, 6), round(iso, 6)
    (0.8, 0.75)
    ```
    """
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().to("cpu", torch.float64).numpy()
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim not in (2, 3) or v.shape[-2] < 1 or v.shape[-1] < 1:
        raise InvalidParameterError(f"Expected answer vectors of shape (K, d) or (B, K, d), got {v.shape}.")
    single = v.ndim == 2
    if single:
        v = v[None]
    norms = np.linalg.norm(v, axis=-1)
    empty = norms <= eps
    d, iso = _spread(v / np.maximum(norms, eps)[..., None], eps)
    for b in np.flatnonzero(empty.any(axis=1)):  # rare: recompute those sets over their non-empty answers
        kept = v[b][~empty[b]]
        if len(kept) < 2:
            d[b], iso[b] = 0.0, 0.0
        else:
            d[b], iso[b] = (x[0] for x in _spread((kept / norms[b][~empty[b], None])[None], eps))
    if single:
        return float(d[0]), float(iso[0])
    return d, iso


def empty_answers(vectors) -> int:
    """How many answer vectors are zero (empty answers, left out of the geometry)."""
    if isinstance(vectors, torch.Tensor):
        return int((vectors.norm(dim=-1) == 0).sum())
    return int((np.linalg.norm(np.asarray(vectors), axis=-1) == 0).sum())


def _spread(v: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """D and I of each set of unit vectors of a `(B, K, d)` array."""
    k = v.shape[1]
    s = v @ v.transpose(0, 2, 1)
    h = np.eye(k) - np.full((k, k), 1.0 / k)
    sc = h @ (0.5 * (s + s.transpose(0, 2, 1))) @ h
    lam = np.clip(np.linalg.eigvalsh(0.5 * (sc + sc.transpose(0, 2, 1))), 0.0, None)[:, ::-1]
    trace = lam.sum(axis=-1)
    ok = trace >= eps
    safe = np.where(ok, trace, 1.0)
    return np.where(ok, trace / k, 0.0), np.where(ok, 1.0 - lam[:, 0] / safe, 0.0)


def combined_score(divergence, isotropy, lam: float = 0.4):
    """ADG's score `(1 - lam) * D + lam * I` (the reference weighs 0.6 / 0.4)."""
    return (1.0 - lam) * np.asarray(divergence, dtype=np.float64) + lam * np.asarray(isotropy, dtype=np.float64)
