"""`hf_diverse.metrics`: the diversity metrics against hand-computed values, and their labels."""

import gzip
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from sacrebleu.metrics import BLEU
from scipy import stats

from hf_diverse import metrics as M
from hf_diverse.clustering import fit_kmeans
from hf_diverse.errors import InvalidParameterError


def test_distinct_n_hand_computed():
    corpus = [np.array([1, 2, 3, 1, 2]), np.array([1, 2])]
    assert M.distinct_n(corpus, 1) == pytest.approx(3 / 7)
    # bigrams (1,2) (2,3) (3,1) (1,2) | (1,2): 3 unique of 5; (2,1) across the two texts must not be counted
    assert M.distinct_n(corpus, 2) == pytest.approx(3 / 5)
    assert M.distinct_n(corpus, 3) == pytest.approx(1.0)
    assert M.distinct_n([np.array([7, 7, 7, 7])], 2) == pytest.approx(1 / 3)
    assert math.isnan(M.distinct_n(corpus, 6))


def test_distinct_n_large_ids_use_the_exact_fallback():
    small = [np.array([1, 2, 1, 2, 3]), np.array([2, 3, 1])]
    big = [t * 100_003 + 7 for t in small]  # ids above 2**16: 4-grams no longer pack into 63 bits
    for n in (1, 2, 3, 4):
        assert M.distinct_n(big, n) == pytest.approx(M.distinct_n(small, n))


def test_mean_length():
    assert M.mean_length([np.zeros(3), np.zeros(5), np.zeros(0)]) == pytest.approx(8 / 3)


def test_entropy_of_known_distributions():
    assert M.token_entropy(np.array([5, 5, 5, 5])) == pytest.approx(2.0)  # log2(4) bits
    assert M.token_entropy(np.array([2, 1, 1, 0])) == pytest.approx(1.5)  # 1/2*1 + 2 * 1/4*2
    assert M.token_entropy(np.array([0, 9])) == 0.0
    assert M.token_entropy(np.array([1, 1]), base=math.e) == pytest.approx(math.log(2))


def test_gini_of_known_distributions():
    assert M.gini_index(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert M.gini_index(np.array([1, 1, 1, 5])) == pytest.approx(12 / 32)
    # one type holding everything among n types -> (n - 1) / n; zero-count vocabulary entries are not types
    assert M.gini_index(np.array([1e-9, 1e-9, 1e-9, 1.0])) == pytest.approx(3 / 4, abs=1e-6)
    assert M.gini_index(np.array([0, 0, 10, 0])) == pytest.approx(0.0)


def test_kurtosis_is_appendix_e_rank_index_kurtosis():
    # Appendix E: sort the types by frequency, x_i = rank, weight by p_i. Independently: every token contributes the
    # rank of its type, and the (Pearson, not excess) kurtosis of that sample of ranks is the paper's K.
    counts = np.array([1, 2, 3, 10, 50, 0, 0])
    ranks = np.repeat(np.arange(1, 6), np.sort(counts[counts > 0])[::-1])
    assert M.token_kurtosis(counts) == pytest.approx(stats.kurtosis(ranks, fisher=True, bias=True) + 3)
    # the ranks follow frequency, not the type ids (ids in a mixed order; ascending order would be a mirror image,
    # which kurtosis cannot tell apart)
    mixed = np.array([10, 1, 50, 0, 3, 2, 7])
    ranks = np.repeat(np.arange(1, 7), np.sort(mixed[mixed > 0])[::-1])
    assert M.token_kurtosis(mixed) == pytest.approx(stats.kurtosis(ranks, fisher=True, bias=True) + 3)
    # by hand: counts (3, 1) -> p = (3/4, 1/4) at ranks (1, 2): mu = 5/4, var = 3/16, m4 = 21/256, K = 7/3
    p, x = [Fraction(3, 4), Fraction(1, 4)], [1, 2]
    mu = sum(pi * xi for pi, xi in zip(p, x, strict=True))
    var = sum(pi * (xi - mu) ** 2 for pi, xi in zip(p, x, strict=True))
    m4 = sum(pi * (xi - mu) ** 4 for pi, xi in zip(p, x, strict=True))
    assert m4 / var**2 == Fraction(7, 3)
    assert M.token_kurtosis(np.array([0, 1, 3])) == pytest.approx(7 / 3)
    # uniform over n ranks: the discrete uniform's kurtosis 3/5 (3n^2 - 7) / (n^2 - 1) + ... -> 1.8 for large n
    assert M.token_kurtosis(np.full(1000, 7)) == pytest.approx(1.8, abs=1e-3)
    # a peaked head with a long tail is more kurtic than a flat distribution; one type has no spread
    assert M.token_kurtosis(np.array([1000, 1, 1, 1, 1])) > M.token_kurtosis(np.array([10, 20, 30, 40, 50]))
    assert math.isnan(M.token_kurtosis(np.array([0, 4, 0])))
    # the raw-count kurtosis the report used before, kept under its own name
    x = counts[counts > 0].astype(float)
    m2, m4c = ((x - x.mean()) ** 2).mean(), ((x - x.mean()) ** 4).mean()
    assert M.count_kurtosis(counts) == pytest.approx(m4c / m2**2 - 3)
    assert M.count_kurtosis(counts) == pytest.approx(stats.kurtosis(x))
    assert math.isnan(M.count_kurtosis(np.array([4, 4, 4])))


def test_subsample_counts_draws_the_budget_without_replacement():
    counts = np.array([500, 0, 300, 200, 1])
    sub = M.subsample_counts(counts, 100, seed=3)
    assert sub.sum() == 100 and np.all(sub <= counts) and sub[1] == 0
    assert np.array_equal(sub, M.subsample_counts(counts, 100, seed=3))  # seeded
    assert np.array_equal(M.subsample_counts(counts, 10_000), counts)  # under the budget: unchanged
    # the mean of many draws is the hypergeometric mean budget * n_i / N
    draws = np.stack([M.subsample_counts(counts, 100, seed=s) for s in range(300)])
    np.testing.assert_allclose(draws.mean(0), 100 * counts / counts.sum(), atol=1.5)
    with pytest.raises(InvalidParameterError, match="budget"):
        M.subsample_counts(counts, -1)


def test_tag_diversity_is_distinct_over_total():
    assert M.tag_diversity([["a", "b"], ["a"], ["c", "a"]]) == pytest.approx(3 / 5)
    assert M.tag_diversity([["a"], ["b"]]) == 1.0
    assert math.isnan(M.tag_diversity([[], []]))


def test_compression_ratio_bounds():
    repetitive = ["the same sentence again."] * 200
    rng = np.random.default_rng(0)
    noisy = ["".join(chr(c) for c in rng.integers(33, 127, size=200)) for _ in range(20)]
    raw = "\n".join(repetitive).encode()
    assert M.compression_ratio(repetitive) == pytest.approx(len(raw) / len(gzip.compress(raw, 9, mtime=0)))
    assert M.compression_ratio(repetitive) > 20
    assert 1.0 < M.compression_ratio(noisy) < 1.5  # printable random ASCII: ~6.6 of 8 bits per byte
    assert M.compression_ratio(["a"]) < 1.0  # tiny input: the gzip header dominates
    assert math.isnan(M.compression_ratio([]))


def test_self_bleu_identical_vs_disjoint_and_sampling():
    score, used = M.self_bleu(["the cat sat on the mat today"] * 5, samples=10)
    assert (score, used) == (pytest.approx(100.0), 5)
    disjoint = ["alpha beta gamma delta", "one two three four", "red green blue white", "north south east west"]
    assert M.self_bleu(disjoint, samples=10)[0] == pytest.approx(0.0, abs=1e-9)
    texts = [f"sentence number {i} with words" for i in range(40)]
    first, used = M.self_bleu(texts, samples=8, seed=3)
    assert used == 8 and M.self_bleu(texts, samples=8, seed=3)[0] == first
    assert 0 < first < 100
    with pytest.raises(InvalidParameterError):
        M.self_bleu(texts, samples=1)


def test_self_bleu_equals_sacrebleu_sentence_score_text_by_text(ifbench):
    texts = ifbench["response"][:25] + ["", "yes", "yes", "Yes.", "the cat sat", "the cat sat on the mat"]
    bleu = BLEU(effective_order=True)
    expected = np.mean([bleu.sentence_score(texts[i], texts[:i] + texts[i + 1 :]).score for i in range(len(texts))])
    score, used = M.self_bleu(texts, samples=len(texts))
    assert used == len(texts)
    assert score == pytest.approx(expected, rel=1e-12)


def test_embedding_distance_exact_and_hand_computed():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert M.mean_pairwise_cosine_distance(x) == pytest.approx(4 / 3)
    y = torch.randn(50, 8, generator=torch.Generator().manual_seed(0)) * 3  # not normalised: cosine normalises
    yn = torch.nn.functional.normalize(y, dim=1)
    brute = (1 - yn @ yn.T)[torch.triu_indices(50, 50, offset=1).unbind()].mean()
    assert M.mean_pairwise_cosine_distance(y) == pytest.approx(float(brute), abs=1e-5)


def test_facility_location_coverage_toy():
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    # A = {row 0}: covers itself 1, row 1 0, row 2 max(0, -1) = 0, row 3 0.6
    assert M.facility_location_coverage(pool, indices=[0]) == pytest.approx(1.6 / 4)
    assert M.facility_location_coverage(pool, indices=[0, 1, 2, 3]) == pytest.approx(1.0)
    # the same set given as embeddings (rows need not be pool rows) gives the same value
    assert M.facility_location_coverage(pool, subset=pool[[0]]) == pytest.approx(1.6 / 4)
    outside = torch.tensor([[1.0, 1.0]])  # cos 0.707 with rows 0 and 1, 0 with row 2, 0.9899 with row 3
    expected = (2 * 2**-0.5 + 0.0 + (0.6 + 0.8) * 2**-0.5) / 4
    assert M.facility_location_coverage(pool, subset=outside) == pytest.approx(expected, abs=1e-6)


def test_cluster_coverage_on_obvious_clusters():
    centers = torch.eye(3) * 10
    pool = torch.cat(
        [centers[i] + 0.01 * torch.randn(20, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    )
    model = fit_kmeans(pool, 3, seed=0, n_init=1, batch_size=4096)
    labels = model.predict(pool)
    assert len(np.unique(labels)) == 3
    assert M.cluster_coverage(labels, model.predict(pool[[0, 25]])) == pytest.approx(2 / 3)
    assert M.cluster_coverage(np.array([0, 0, 1, 2]), np.array([2, 2])) == pytest.approx(1 / 3)


def test_metric_labels_live_in_metrics():
    assert list(M.METRIC_LABELS) == list(M.HIGHER_IS_MORE_DIVERSE)
    assert M.metric_label("entropy_bits") == "token entropy (bits) [IE] (+)"
    assert M.metric_label("self_bleu") == "Self-BLEU [BL] (-)"
    assert M.metric_label("mean_length_tokens") == "mean length (tokens) [SL]"
    assert M.metric_label("cluster_coverage") == "cluster coverage (+)"
    with pytest.raises(InvalidParameterError, match="Valid metrics"):
        M.metric_label("nope")
