"""`hf_diverse.scorers.tags`: parsing, the tagger in `map` (tiny random Llama), the vLLM path (fake engine) and, marked
slow, the real SmolLM2 on IFBench prompts."""

import json
import pickle
from collections import Counter
from unittest import mock

import pytest
from datasets import Dataset, load_from_disk
from datasets.fingerprint import Hasher

from hf_diverse.errors import InvalidParameterError, MissingDependencyError
from hf_diverse.scorers.sampling import row_seed
from hf_diverse.scorers.tags import MAX_TAG_WORDS, TagScorer, clean_tag, column_names, parse_tags
from tests import fake_vllm


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ('["Poetry", "nature"]', ["poetry", "nature"]),
        ('Here you go:\n```json\n["python", "sorting"]\n```', ["python", "sorting"]),
        (
            '[{"tag": "Math", "explanation": "arithmetic"}, {"tag": "word problem", "explanation": "x"}]',
            ["math", "word problem"],
        ),
        ('["travel", "budget", "itiner', ["travel", "budget", "itiner"]),  # cut by max_new_tokens
        ('["travel", "budget",', ["travel", "budget"]),
        ("- creative writing\n- poetry: rhyming verse\n3) haiku", ["creative writing", "poetry", "haiku"]),
        ("math, geometry , proofs", ["math", "geometry", "proofs"]),
        ("This instruction asks for a poem, I think.", []),  # a sentence, not tags
        ('["123", "###", "", "ok"]', ["ok"]),  # non-words dropped
        ('["a b c d e f", "short one"]', ["short one"]),  # too many words for a tag
        ('["Math", "math", " MATH "]', ["math"]),  # duplicates
        ("", []),
    ],
)
def test_parse_tags(text, tags):
    assert parse_tags(text) == tags


def test_parse_tags_keeps_at_most_max_tags_and_clean_tag_rules():
    assert parse_tags(json.dumps([f"tag{i}a" for i in range(20)]), max_tags=3) == ["tag0a", "tag1a", "tag2a"]
    assert clean_tag("  'Data   Science'. ") == "data science"
    assert clean_tag({"tag": "Cooking"}) == "cooking" and clean_tag(7) is None and clean_tag("42") is None
    assert clean_tag(" ".join(["w"] * (MAX_TAG_WORDS + 1))) is None and clean_tag("x" * 60) is None
    assert column_names("instruction") == ("tags", "tags_status")
    assert column_names("response") == ("response_tags", "response_tags_status")


def test_scorer_validates_arguments():
    with pytest.raises(InvalidParameterError, match="component"):
        TagScorer(component="answer")
    with pytest.raises(InvalidParameterError, match="temperature > 0"):
        TagScorer(num_samples=3)
    with pytest.raises(InvalidParameterError, match="max_tags"):
        TagScorer(max_tags=0)
    with pytest.raises(InvalidParameterError, match="backend"):
        TagScorer(backend="tgi")
    with pytest.raises(InvalidParameterError, match="top_p"):
        TagScorer(top_p=0)


def test_vllm_backend_needs_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'hf_diverse\[vllm\]'"):
        TagScorer(backend="vllm")


@pytest.fixture(scope="module")
def small_pool(ifbench, tmp_path_factory):
    """Five IFBench rows and an empty one, saved to disk so that `map` writes (and re-uses) cache files."""
    rows = ifbench.select(range(5)).to_dict()
    rows = {"prompt": [*rows["prompt"], ""], "response": [*rows["response"], "nothing asked"]}
    path = tmp_path_factory.mktemp("tag_pool")
    Dataset.from_dict(rows).save_to_disk(str(path))
    return load_from_disk(str(path))


def _tiny(path, **kwargs):
    return TagScorer(model=path, max_new_tokens=6, max_input_tokens=48, device="cpu", keep_answers=True, **kwargs)


@pytest.fixture(scope="module")
def tagged_b4(small_pool, tiny_llama_path):
    scorer = _tiny(tiny_llama_path)
    return small_pool.map(scorer, batched=True, batch_size=4, features=scorer.features(small_pool))


def test_tiny_llama_in_map_columns_statuses_and_cache(small_pool, tiny_llama_path, tagged_b4):
    assert tagged_b4.column_names == ["prompt", "response", "tags", "tags_status", "tags_answers"]
    statuses = tagged_b4["tags_status"]
    assert statuses[-1] == "no_text" and tagged_b4["tags"][-1] == [] and tagged_b4["tags_answers"][-1] == []
    for tags, status, answers in zip(tagged_b4["tags"], statuses, tagged_b4["tags_answers"], strict=True):
        assert status in ("ok", "retried", "failed", "no_text")
        assert (tags == []) == (status in ("failed", "no_text"))
        # a retry happened exactly when the first answer gave no tag; its answer starts the JSON list
        assert len(answers) == {"ok": 1, "retried": 2, "failed": 2, "no_text": 0}[status]
        if len(answers) == 2:
            assert answers[1].startswith('["') and parse_tags(answers[0]) == []
        assert tags == (parse_tags(answers[-1]) if answers else [])
    # a new scorer with the same arguments has the same fingerprint: the second map re-uses the cache
    fresh = _tiny(tiny_llama_path)
    assert Hasher.hash(fresh) == Hasher.hash(_tiny(tiny_llama_path))
    with mock.patch.object(TagScorer, "load", side_effect=AssertionError("model called")):
        again = small_pool.map(fresh, batched=True, batch_size=4, features=fresh.features(small_pool))
    assert again.cache_files == tagged_b4.cache_files
    assert len(pickle.dumps(fresh)) < 10_000


def test_tiny_llama_batch_size_invariant_and_seeded(small_pool, tiny_llama_path, tagged_b4):
    scorer = _tiny(tiny_llama_path)
    b1 = small_pool.map(
        scorer, batched=True, batch_size=1, with_rank=True, features=scorer.features(small_pool), new_fingerprint="b1"
    )
    assert b1["tags_answers"] == tagged_b4["tags_answers"] and b1["tags"] == tagged_b4["tags"]
    # greedy: the seed plays no part; sampling: seeded per row, independent of the batch
    assert _tiny(tiny_llama_path, seed=5)(small_pool[:3])["tags_answers"] == tagged_b4["tags_answers"][:3]
    sampler = _tiny(tiny_llama_path, temperature=1.0, num_samples=2, seed=3)
    a = sampler(small_pool[:4])
    b = {key: sampler(small_pool[i : i + 1])[key][0] for i in range(4) for key in ("tags_answers",)}
    assert a == sampler(small_pool[:4]) and a["tags_answers"][3] == b["tags_answers"]
    assert (
        a["tags_answers"]
        != _tiny(tiny_llama_path, temperature=1.0, num_samples=2, seed=4)(small_pool[:4])["tags_answers"]
    )
    assert all(len(x) in (2, 4) for x in a["tags_answers"])  # two samples per attempt


def test_response_component_and_empty_batch(small_pool, tiny_llama_path):
    scorer = _tiny(tiny_llama_path, component="response")
    out = scorer(small_pool[:2])
    assert set(out) == {"response_tags", "response_tags_status", "response_tags_answers"}
    assert scorer({"prompt": [], "response": []}) == {
        "response_tags": [],
        "response_tags_status": [],
        "response_tags_answers": [],
    }


def test_vllm_backend_with_a_fake_engine(monkeypatch, small_pool, tiny_llama_path):
    fake_vllm.install(monkeypatch)
    scorer = TagScorer(
        model=tiny_llama_path, backend="vllm", temperature=0.8, num_samples=3, seed=2, max_new_tokens=40
    )
    out = small_pool.map(scorer, batched=True, batch_size=2, features=scorer.features(small_pool))
    assert out["tags_status"][:5] == ["ok"] * 5 and out["tags_status"][5] == "no_text"
    assert all(1 <= len(t) <= 3 for t in out["tags"][:5])
    # one request per row, its own seed (the row's text), n = num_samples
    direct = TagScorer(
        model=tiny_llama_path, backend="vllm", temperature=0.8, num_samples=3, seed=2, max_new_tokens=40
    )
    again = direct(small_pool[:])
    assert again["tags"] == out["tags"]
    requests = direct._vllm.requests
    texts = [t.strip() for t in small_pool["prompt"][:5]]
    assert [p.seed for _, p in requests] == [row_seed(2, [t, "first"]) % 2**31 for t in texts]
    assert all(p.n == 3 and p.max_tokens == 40 for _, p in requests)
    # greedy requests do not depend on the seed
    greedy = [TagScorer(model=tiny_llama_path, backend="vllm", seed=s)(small_pool[:3])["tags"] for s in (0, 9)]
    assert greedy[0] == greedy[1]


def test_vllm_retry_and_failure_are_counted(monkeypatch, small_pool, tiny_llama_path, caplog):
    def answer(prompt_text, rng):  # prose first; a list only once the answer was started as one
        return 'cooking", "recipes"]' if prompt_text.rstrip().endswith('["') else "It is about food, I believe."

    fake_vllm.install(monkeypatch, answer=answer)
    out = TagScorer(model=tiny_llama_path, backend="vllm")(small_pool[:3])
    assert out["tags"] == [["cooking", "recipes"]] * 3 and out["tags_status"] == ["retried"] * 3
    fake_vllm.install(monkeypatch, answer=lambda text, rng: "no idea, sorry about that one.")
    with caplog.at_level("INFO", logger="hf_diverse"):
        out = TagScorer(model=tiny_llama_path, backend="vllm")(small_pool[:])
    assert Counter(out["tags_status"]) == {"failed": 5, "no_text": 1} and out["tags"] == [[]] * 6
    assert "5 failed, 1 without text" in caplog.text


def test_samples_keep_the_tags_at_least_half_of_them_agree_on():
    answers = ['["math", "algebra"]', '["math", "geometry"]', '["algebra", "math", "logic"]']
    # math 3 of 3, algebra 2 of 3: kept in first-seen order; geometry and logic 1 of 3: dropped
    assert TagScorer(temperature=0.8, num_samples=3)._vote(answers) == ["math", "algebra"]
    # 2 of 4 is half: geometry is kept too
    assert TagScorer(temperature=0.8, num_samples=4)._vote([*answers, '["geometry"]']) == [
        "math",
        "algebra",
        "geometry",
    ]
    assert TagScorer()._vote(['["logic"]']) == ["logic"]  # one answer: all its tags


@pytest.mark.slow
def test_real_smollm2_tags_most_ifbench_prompts(ifbench):
    pool = ifbench.select(range(8))
    scorer = TagScorer(max_new_tokens=40, batch_size=8)
    out = pool.map(scorer, batched=True, batch_size=8, features=scorer.features(pool))
    usable = [t for t in out["tags"] if t]
    assert len(usable) >= 6, out["tags"]
    assert all(all(clean_tag(t) == t for t in tags) for tags in usable)
