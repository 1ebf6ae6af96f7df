"""Keys: a row's key depends on its content in the scorer's columns only (not their order, not other columns), a
scorer's key on what changes its results only."""

import datetime
import hashlib

from hf_diverse import AnswerDivergenceScorer, EmbeddingScorer, LMQualityScorer
from hf_diverse.scoring.keys import row_keys, scorer_key, shard_key


def test_row_keys_follow_the_content_of_the_named_columns():
    batch = {"prompt": ["a", "a", "b", "a"], "response": ["x", "x", "x", "y"], "id": [1, 2, 3, 4]}
    keys = row_keys(batch, ["prompt", "response"])
    assert keys[0] == keys[1]  # same content, other id
    assert len(set(keys)) == 3
    assert row_keys(batch, ["response", "prompt"]) == keys  # column order does not matter
    swapped = {"prompt": ["x"], "response": ["a"]}
    assert row_keys(swapped, ["prompt", "response"])[0] != keys[0]  # which column holds what does
    # the boundary between two columns is part of the key
    assert row_keys({"a": ["ab"], "b": ["c"]}, ["a", "b"]) != row_keys({"a": ["a"], "b": ["bc"]}, ["a", "b"])


def test_row_keys_tell_types_apart_and_read_nested_values():
    keys = row_keys({"v": [1, 1.0, "1", True, None, b"1", [1], {"x": 1}, datetime.date(2024, 1, 1)]}, ["v"])
    assert len(set(keys)) == 9
    msgs = [[{"role": "user", "content": "hi"}], [{"content": "hi", "role": "user"}]]
    first, second = row_keys({"messages": msgs}, ["messages"])
    assert first == second  # a struct's field order is not content


def test_row_keys_are_blake2b_of_the_documented_encoding():
    # written out here: length-prefixed column name, length-prefixed tagged value
    expected = hashlib.blake2b(b"6:prompt3:shi", digest_size=16).digest()
    assert row_keys({"prompt": ["hi"]}, ["prompt"]) == [expected]


def test_shard_key_depends_on_the_rows_and_their_order():
    a, b = row_keys({"p": ["x", "y"]}, ["p"])
    assert shard_key([a, b]) != shard_key([b, a])
    assert shard_key([a]) != shard_key([a, a])
    assert len(shard_key([a])) == 32


def test_scorer_key_ignores_placement_and_batching_only():
    base, about = scorer_key(EmbeddingScorer())
    assert scorer_key(EmbeddingScorer(device="cpu", batch_size=7))[0] == base
    for other in (EmbeddingScorer(what="both"), EmbeddingScorer(max_seq_length=32), EmbeddingScorer(model="x/y")):
        assert scorer_key(other)[0] != base
    assert about["config"]["what"] == "instruction" and "device" not in about["config"]
    adg, _ = scorer_key(AnswerDivergenceScorer(max_new_tokens=8))
    assert scorer_key(AnswerDivergenceScorer(max_new_tokens=8, max_batch_tokens=99, batch_size=3))[0] == adg
    assert scorer_key(AnswerDivergenceScorer(max_new_tokens=8, seed=1))[0] != adg
    assert scorer_key(LMQualityScorer(model="m"))[0] != scorer_key(LMQualityScorer(model="m", max_length=64))[0]


def test_any_map_callable_is_keyed_by_the_datasets_hash():
    def add_one(batch):
        return {"n": [1] * len(batch["x"])}

    key, about = scorer_key(add_one)
    assert "hash" in about and key == scorer_key(add_one)[0]
