"""`hf_diverse.report.sets`: matching subset rows to pool rows and the measured sets."""

import numpy as np

from hf_diverse.report.sets import collect_sets, match_rows
from tests.report.common import K, _views


def test_match_rows_pairs_duplicates_in_order():
    pool = {"instruction": ["a", "b", "a"], "response": ["x", "y", "x"]}
    sub = {"instruction": ["a", "a", "a", "c", "b"], "response": ["x", "x", "x", "z", "y"]}
    assert match_rows(pool, sub).tolist() == [0, 2, -1, -1, 1]


def test_collect_sets(pool, subset):
    sets = collect_sets(pool, subset, *_views(pool, subset), seed=4)
    assert sets.labels == ["subset", "pool", "random"] and sets.sizes == {"subset": K, "pool": len(pool), "random": K}
    assert (sets.match_idx >= 0).all() and sets.matching["matched"] == K
    texts = sets.texts("response")
    assert list(texts) == ["subset", "pool", "random"]
    assert [texts["pool"][i] for i in sets.match_idx] == texts["subset"] == subset["response"]
    assert np.all(np.diff(sets.random_idx) > 0) and len(sets.random_idx) == K
    assert sets.random_idx.tolist() == collect_sets(pool, subset, *_views(pool, subset), seed=4).random_idx.tolist()
    alone = collect_sets(pool, None, _views(pool, subset)[0])
    assert alone.labels == ["pool"] and alone.match_idx is None and alone.matching == {} and not alone.notes
    bigger = collect_sets(subset, pool, *_views(subset, pool))
    assert bigger.labels == ["subset", "pool"] and any("No random baseline" in note for note in bigger.notes)


# --- issue 12: rows linked by `source_index`, a warning when they do not match -----------------------------------
def test_rows_are_linked_by_source_index(pool, subset):
    # duplicate texts in the pool: text matching would pair them in order, `source_index` names the very row
    dup = pool.select([0, 1, 2, 0, 3])
    picked = dup.select([3, 4]).add_column("source_index", [3, 4])
    sets = collect_sets(dup, picked, *_views(dup, picked))
    assert sets.match_idx.tolist() == [3, 4] and sets.matching["by"] == "source_index"
    assert match_rows(*(sets.pool_texts, sets.subset_texts)).tolist() == [0, 4]  # what text matching would say


def test_rows_that_do_not_match_give_a_warning(pool, subset, caplog):
    other = pool.select(range(K)).map(lambda r: {"prompt": r["prompt"] + " (edited)"})
    other = other.add_column("source_index", list(range(K)))
    sets = collect_sets(pool, other, *_views(pool, other))
    assert sets.matching["matched"] == 0 and sets.matching["unmatched"] == K
    assert f"0 of {K} subset rows match" in caplog.text and "not the pool" in caplog.text
