"""`hf_diverse.selection.tokens`: the micro-diversity `method="tokens"` and its mid-band thresholds."""

import numpy as np
import pytest
from datasets import Dataset

from hf_diverse import InvalidParameterError, diversity_series, get_provenance, select_diverse
from hf_diverse.cli import main
from hf_diverse.errors import ModelLoadError
from hf_diverse.metrics import token_entropy
from hf_diverse.selection.tokens import band_thresholds
from hf_diverse.tokens import tokenize_texts

K = 40


@pytest.fixture(scope="module")
def response_tokens(ifbench):
    """Token ids of every IFBench response (SmolLM2 tokenizer), keyed by response text."""
    responses = list(ifbench["response"])
    ids = tokenize_texts(responses)
    counts = np.bincount(np.concatenate(ids))
    low, high = band_thresholds(int(counts.sum()))
    mid = set(np.flatnonzero((counts >= low) & (counts <= high)).tolist())
    return {"by_text": dict(zip(responses, ids, strict=True)), "mid": mid, "vocab": len(counts)}


def measure(subset, response_tokens):
    """(mid-band coverage, token entropy in bits) of a subset's responses, computed from scratch."""
    ids = [response_tokens["by_text"][r] for r in subset["response"]]
    flat = np.concatenate(ids)
    covered = set(flat.tolist()) & response_tokens["mid"]
    return len(covered) / len(response_tokens["mid"]), token_entropy(np.bincount(flat))


def test_band_thresholds_rule():
    assert band_thresholds(58_500_000) == (10, 500)  # the paper's pool
    assert band_thresholds(117_000_000) == (20, 1000)
    assert band_thresholds(100_000) == (2, 100)  # floors on a small pool
    assert band_thresholds(100_000, low_threshold=5) == (5, 250)
    with pytest.raises(InvalidParameterError, match="mid band"):
        band_thresholds(100_000, low_threshold=50, high_threshold=10)


def test_tokens_series_sizes_monotone_coverage_and_entropy_above_baselines(ifbench, ifbench_embedded, response_tokens):
    series = diversity_series(ifbench, k=K, n_points=7, show_progress=False)
    assert [len(s) for s in series] == [K] * 7
    assert all(len(set(zip(s["prompt"], s["response"], strict=True))) == K for s in series)  # k distinct rows
    measured = [measure(s, response_tokens) for s in series]
    coverage = [c for c, _ in measured]
    reported = [get_provenance(s)["objective"]["mid_band_coverage"] for s in series]
    np.testing.assert_allclose(coverage, reported)  # the method's own figure matches an independent count
    assert all(a <= b for a, b in zip(coverage, coverage[1:], strict=False)), coverage
    assert coverage[-1] > 2 * coverage[0]  # the dial really moves
    assert [get_provenance(s)["details"]["series"]["diversity"] for s in series] == pytest.approx(np.linspace(0, 1, 7))

    # (c) at diversity=1: coverage and entropy at least those of random subsets and of QDIT at the same k
    top_cov, top_ent = measured[-1]
    for seed in range(3):
        rand_cov, rand_ent = measure(
            select_diverse(ifbench, K, method="random", seed=seed, show_progress=False), response_tokens
        )
        assert top_cov >= rand_cov and top_ent >= rand_ent
    qdit_cov, qdit_ent = measure(
        select_diverse(ifbench_embedded, K, method="qdit", show_progress=False), response_tokens
    )
    assert top_cov >= qdit_cov and top_ent >= qdit_ent


def test_tokens_deterministic_and_exact_k_at_any_diversity(ifbench):
    a = select_diverse(ifbench, 25, method="tokens", diversity=0.3, seed=3, show_progress=False)
    b = select_diverse(ifbench, 25, method="tokens", diversity=0.3, seed=3, show_progress=False)
    assert a["response"] == b["response"] and a["selection_gain"] == b["selection_gain"]
    for d in (0.0, 0.55, 1.0):
        s = select_diverse(ifbench, 25, method="tokens", diversity=d, show_progress=False)
        assert len(s) == 25 and len(set(zip(s["prompt"], s["response"], strict=True))) == 25
    rec = get_provenance(a)
    assert rec["parameters"]["diversity"] == 0.3 and rec["details"]["bands"]["low_threshold"] == 2
    assert rec["models"]["tokenizer"]["name"]
    instr = select_diverse(ifbench, 25, method="tokens", what="instruction", show_progress=False)
    assert get_provenance(instr)["details"]["what"] == "instruction"


def test_tokens_bad_input_clear_errors(ifbench, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"diversity must be in \[0, 1\]"):
        select_diverse(ifbench, 10, method="tokens", diversity=1.5)
    with pytest.raises(InvalidParameterError, match="what"):
        select_diverse(ifbench, 10, method="tokens", what="answer")
    with pytest.raises(ModelLoadError, match="no/such/tokenizer"):
        select_diverse(ifbench, 10, method="tokens", tokenizer=str(tmp_path / "no/such/tokenizer"))
    # every response token occurs once in the pool: no mid band
    tiny = Dataset.from_dict(
        {"prompt": [f"q{i}" for i in range(6)], "response": ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]}
    )
    with pytest.raises(InvalidParameterError, match="no mid-band token types"):
        select_diverse(tiny, 3, method="tokens")
    # the same through the CLI: one-line error, exit 1, nothing written
    tiny.save_to_disk(str(tmp_path / "tiny"))
    for extra in (["--diversity", "2"], ["--tokenizer", str(tmp_path / "missing")], []):
        out = tmp_path / "out"
        code = main(
            [
                "select",
                "--dataset",
                str(tmp_path / "tiny"),
                "--k",
                "3",
                "--method",
                "tokens",
                "--output",
                str(out),
                "--no-progress",
                *extra,
            ]
        )
        assert code == 1 and not out.exists()


def test_matched_length_within_ten_percent_of_random_at_every_point(ifbench, response_tokens):
    series = diversity_series(ifbench, k=K, n_points=7, length="matched", show_progress=False)
    # the random subset the band refers to, drawn here as `diversity_report` draws its random baseline
    reference = np.random.default_rng(0).choice(len(ifbench), size=K, replace=False)
    lengths = {r: len(response_tokens["by_text"][r]) for r in ifbench["response"]}
    target = np.mean([lengths[ifbench[int(i)]["response"]] for i in reference])
    coverage = []
    for s in series:
        mean = np.mean([lengths[r] for r in s["response"]])
        assert 0.9 * target <= mean <= 1.1 * target, (mean, target)
        rec = get_provenance(s)
        assert rec["details"]["series"]["mean_response_tokens"] == pytest.approx(mean)
        assert rec["details"]["length_control"]["target_mean_tokens"] == pytest.approx(target)
        assert rec["details"]["length_control"]["band"] == pytest.approx([0.9 * target, 1.1 * target])
        assert rec["details"]["length_control"]["band_met"] and rec["details"]["length"] == "matched"
        coverage.append(measure(s, response_tokens)[0])
    assert all(a <= b for a, b in zip(coverage, coverage[1:], strict=False)), coverage
    assert coverage[-1] > 1.5 * coverage[0]  # the dial moves at equal length
    free = diversity_series(ifbench, k=K, n_points=7, show_progress=False)
    free_lengths = [get_provenance(s)["details"]["series"]["mean_response_tokens"] for s in free]
    assert free_lengths[-1] > 1.5 * target > free_lengths[0]  # without control the length follows the dial


def test_tokens_prunes_the_pool_before_sampling(ifbench, response_tokens):
    subset = select_diverse(ifbench, K, method="tokens", diversity=0.5, show_progress=False)
    rec = get_provenance(subset)
    det, obj = rec["details"], rec["objective"]
    assert det["order"].startswith("prune the pool") and 0 < det["chain_step"] <= det["chain_length"]
    assert K <= det["pruned_pool_rows"] < len(ifbench)
    # the subset holds the pruned pool's kept types only, and covers them up to what k rows reach
    assert obj["mid_band_types_covered"] == obj["kept_types_covered"] <= obj["kept_types"] < obj["mid_band_types"]
    # the plan this call used: the cached one for k rows, free length, seed 0
    plan = next(p for key, p in _plan_cache().items() if key[3:6] == (K, 0, "free"))
    alive = set(plan.chain.alive_rows(det["chain_step"]).tolist())
    by_text = {r: i for i, r in enumerate(ifbench["response"])}
    assert {by_text[r] for r in subset["response"]} <= alive
    kept = {int(plan.inc.mid_types[j]) for j in plan.chain.kept_types(det["chain_step"])}
    mid = response_tokens["mid"]
    for r in subset["response"]:
        assert set(response_tokens["by_text"][r].tolist()) & mid <= kept
    # at diversity=1 nothing is pruned
    top = get_provenance(select_diverse(ifbench, K, method="tokens", show_progress=False))["details"]
    assert top["chain_step"] == 0 and top["pruned_pool_rows"] == len(ifbench)


def _plan_cache():
    from hf_diverse.selection import tokens

    return tokens._PLAN_CACHE


def _word_tokenizer(path, words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", *words])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]").save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("seed", range(4))
def test_tokens_evens_out_the_kept_types(tmp_path, seed):
    # two rows cover the four words; the rest hold one word each, "a" most often: the evenest 5 rows hold the four
    # words (2, 2, 2, 1) times; a coverage-only sample takes the two covering rows, then any three (seeded ties)
    texts = ["a b", "c d", "a", "a", "a", "b", "c", "d"]
    pool = Dataset.from_dict({"prompt": [f"q{i}" for i in range(8)], "response": texts})
    tokenizer = _word_tokenizer(tmp_path / "words", ["a", "b", "c", "d"])
    subset = select_diverse(
        pool,
        5,
        method="tokens",
        tokenizer=tokenizer,
        low_threshold=1,
        high_threshold=100,
        seed=seed,
        show_progress=False,
    )
    counts = np.bincount([ord(w) - ord("a") for r in subset["response"] for w in r.split()], minlength=4)
    assert sorted(counts.tolist()) == [1, 2, 2, 2], counts
    assert get_provenance(subset)["objective"]["kept_type_entropy_bits"] == pytest.approx(
        token_entropy(np.array([1, 2, 2, 2]))
    )
