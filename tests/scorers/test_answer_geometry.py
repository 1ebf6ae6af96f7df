"""`hf_diverse.scorers.answer_geometry`: the divergence D and isotropy I of a set of answers, token weights."""

import numpy as np
import pytest
import torch

from hf_diverse.errors import InvalidParameterError
from hf_diverse.scorers.adg import answer_divergence, combined_score, token_weight


def direct_d_i(v: np.ndarray) -> tuple[float, float]:
    """D and I written straight from the definitions, via the SVD of the centred answer matrix.

    Sc = H V V^T H = (HV)(HV)^T, so its eigenvalues are the squared singular values of HV.
    """
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    centred = v - v.mean(axis=0, keepdims=True)
    sq = np.linalg.svd(centred, compute_uv=False) ** 2
    trace = sq.sum()
    if trace < 1e-12:
        return 0.0, 0.0
    return trace / len(v), 1.0 - sq.max() / trace


def test_identical_answers_have_zero_divergence_and_isotropy():
    v = np.tile(np.array([[0.3, -1.2, 0.5, 2.0]]), (5, 1))
    d, i = answer_divergence(v)
    assert d == pytest.approx(0.0, abs=1e-12) and i == 0.0
    assert direct_d_i(v) == (0.0, 0.0)


def test_answers_along_one_direction_have_no_isotropy():
    u = np.array([1.0, 2.0, -0.5, 0.0, 3.0])
    v = np.stack([u, -u, u, -u, 2 * u])  # all on one line through the origin
    d, i = answer_divergence(v)
    dd, di = direct_d_i(v)
    assert d > 0.5 and d == pytest.approx(dd, abs=1e-9)
    assert i == pytest.approx(0.0, abs=1e-9) and di == pytest.approx(0.0, abs=1e-9)
    # D = 1 - ||mean of unit vectors||^2
    assert d == pytest.approx(1 - (1 / 5) ** 2, abs=1e-9)


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_orthogonal_answers_reach_the_maxima(k):
    v = np.zeros((k, k + 3))
    v[np.arange(k), np.arange(k)] = 1.0
    d, i = answer_divergence(v)
    assert d == pytest.approx(1 - 1 / k, abs=1e-9)
    assert i == pytest.approx(1 - 1 / (k - 1), abs=1e-9)
    assert (d, i) == pytest.approx(direct_d_i(v), abs=1e-9)
    # I = 1 - 1/(K-1) is I's maximum for any set; D = 1 - 1/K is D's maximum over sets with non-negative pairwise
    # cosines (then ||mean||^2 >= 1/K), the usual case for LM hidden states; D = 1 needs a zero mean
    rng = np.random.default_rng(k)
    _, ir = answer_divergence(rng.normal(size=(200, k, 16)))
    dr, _ = answer_divergence(np.abs(rng.normal(size=(200, k, 16))))
    assert (ir <= 1 - 1 / (k - 1) + 1e-9).all() and (dr <= 1 - 1 / k + 1e-9).all()
    assert answer_divergence(np.stack([v[0], -v[0]]))[0] == pytest.approx(1.0)


def test_geometry_matches_direct_numpy_on_random_sets():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 5, 12)) + rng.normal(size=(50, 1, 12)) * 2  # answers around a shared direction
    d, i = answer_divergence(v)
    want = np.array([direct_d_i(x) for x in v])
    np.testing.assert_allclose(d, want[:, 0], atol=1e-9)
    np.testing.assert_allclose(i, want[:, 1], atol=1e-9)
    # torch input, single set, and the combined score with the reference's 0.6 / 0.4
    d0, i0 = answer_divergence(torch.from_numpy(v[0]).float())
    assert d0 == pytest.approx(d[0], abs=1e-5) and i0 == pytest.approx(i[0], abs=1e-5)
    np.testing.assert_allclose(combined_score(d, i), 0.6 * d + 0.4 * i)
    with pytest.raises(InvalidParameterError, match="shape"):
        answer_divergence(np.zeros(4))


def test_token_weights_follow_the_reference_rule():
    assert token_weight(" cat") == 1.0
    assert token_weight(" 42") == 1.3 and token_weight("%") == 1.3 and token_weight("°C") == 1.3
    assert token_weight("") == 0.0 and token_weight("  ") == 0.0 and token_weight(" ,") == 0.0
    assert token_weight("...") == 0.0 and token_weight(")]") == 0.0 and token_weight("\\") == 0.0


# --- issue 12: an empty sampled answer is not a point of the geometry ------------------------------------------
def test_an_empty_answer_is_left_out_of_the_geometry():
    rng = np.random.default_rng(3)
    answers = rng.normal(size=(4, 6))
    with_empty = np.vstack([answers[:2], np.zeros(6), answers[2:]])  # an answer with no weighted token
    assert answer_divergence(with_empty) == pytest.approx(direct_d_i(answers), abs=1e-9)
    batch = np.stack([with_empty, np.vstack([answers, rng.normal(size=(1, 6))])])
    d, i = answer_divergence(batch)
    assert (d[0], i[0]) == pytest.approx(direct_d_i(answers), abs=1e-9)
    assert (d[1], i[1]) == pytest.approx(direct_d_i(batch[1]), abs=1e-9)
    # fewer than two answers left: no spread can be measured, the lowest score
    lone = np.vstack([answers[:1], np.zeros((4, 6))])
    assert answer_divergence(lone) == (0.0, 0.0)


def test_mean_of_layers_takes_layers_minus_4_to_minus_2():
    from hf_diverse.scorers.answer_geometry import mean_of_layers

    hidden = tuple(torch.full((1, 2, 3), float(layer)) for layer in range(7))  # embeddings + 6 layers
    assert mean_of_layers(hidden).unique().tolist() == [(3 + 4 + 5) / 3]
