"""Ray Data: a scorer called on a `pyarrow.Table` (what `map_batches(batch_format="pyarrow")` passes) returns the
table with the same columns and values `Dataset.map` adds; on a local 2-CPU Ray instance (slow: ~30 s to start Ray
and load a model per actor) `score_with_ray` gives `Dataset.map`'s result."""

import numpy as np
import pyarrow as pa
import pytest

from hf_diverse import EmbeddingScorer, MissingDependencyError
from hf_diverse.scoring import ray_data
from hf_diverse.scoring.ray_data import RayScorer, score_with_ray
from tests.scoring.fakes import CountingScorer
from tests.scoring.test_api import make_rows


def test_a_scorer_is_a_ray_data_callable_class(tmp_path):
    ds = make_rows(45)
    scorer = CountingScorer(str(tmp_path / "log"))
    mapped = ds.map(scorer, batched=True, batch_size=20, features=scorer.features(ds))
    actor = RayScorer(scorer)  # what each Ray actor holds
    tables = [actor(ds.data.table.slice(start, 20)) for start in range(0, 45, 20)]
    out = pa.concat_tables(tables)
    assert out.column_names == mapped.column_names
    assert out.to_pydict() == mapped.to_dict()
    assert out.schema.field("vec").type == pa.list_(pa.float32(), 3)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    def missing():
        raise MissingDependencyError("Scoring on Ray needs Ray Data. Install it with `pip install 'hf_diverse[ray]'`.")

    monkeypatch.setattr(ray_data, "_import_ray", missing)
    with pytest.raises(MissingDependencyError, match=r"hf_diverse\[ray\]"):
        score_with_ray(make_rows(3), CountingScorer("x"), "out")


@pytest.mark.slow
def test_score_with_ray_on_a_local_cluster_equals_map(tmp_path, ifbench):
    ray = pytest.importorskip("ray")
    rows = ifbench.select(range(200))
    scorer = EmbeddingScorer()
    mapped = rows.map(scorer, batched=True, batch_size=50, features=scorer.features(rows))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # two actors of half a CPU: the other CPU reads and writes the Parquet files
        scored = score_with_ray(rows, EmbeddingScorer(), tmp_path, batch_size=50, concurrency=2, num_cpus=0.5)
    finally:
        ray.shutdown()
    assert scored.column_names == mapped.column_names and scored.features == mapped.features
    assert scored["prompt"] == mapped["prompt"]  # same rows, same order
    np.testing.assert_allclose(np.asarray(scored["embedding"]), np.asarray(mapped["embedding"]), atol=1e-6)
