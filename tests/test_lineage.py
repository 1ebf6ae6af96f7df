"""`hf_diverse.lineage`: where a pool can be loaded from again, followed as far as the files allow."""

import hashlib
import json

import datasets
import pytest
from datasets import Dataset, DatasetDict

from hf_diverse import get_provenance, load_pool, select_diverse
from hf_diverse.io import save_subset
from hf_diverse.lineage import hub_cache_location, reload_arguments, trace_source


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "response": f"r{i}", "q": i}) + "\n" for i in range(12)))
    return path


def test_a_file_loaded_with_load_pool_is_reloadable_with_its_hash(jsonl):
    pool = load_pool(str(jsonl))
    source = trace_source(pool)
    assert source["kind"] == "file" and source["id"] == str(jsonl) and source["reloadable"]
    assert source["sha256"] == hashlib.sha256(jsonl.read_bytes()).hexdigest()
    assert reload_arguments(source) == {"source": str(jsonl)}
    limited = trace_source(load_pool(str(jsonl), limit=5))
    assert limited["reloadable"] and reload_arguments(limited) == {"source": str(jsonl), "limit": 5}


def test_a_transformed_pool_is_not_reloadable_and_says_how_to_fix_it(jsonl):
    mapped = load_pool(str(jsonl)).map(lambda r: {"q": r["q"] * 2})
    source = trace_source(mapped)
    assert not source["reloadable"] and source["id"] == str(jsonl)
    assert "changed after it was loaded" in source["missing"] and "save_to_disk" in source["fix"]
    assert reload_arguments(source) is None


def test_a_save_to_disk_folder_is_followed_without_load_pool(jsonl, tmp_path):
    # the issue: a pool that went through `map` and `save_to_disk` / `load_from_disk` was recorded as in-memory
    raw = datasets.load_dataset("json", data_files=str(jsonl), split="train")
    raw.map(lambda r: {"q": r["q"] + 1}).save_to_disk(str(tmp_path / "saved"))
    pool = datasets.load_from_disk(str(tmp_path / "saved"))
    source = trace_source(pool)
    assert source["kind"] == "save_to_disk" and source["id"] == str(tmp_path / "saved") and source["reloadable"]
    assert load_pool(**reload_arguments(source))["q"] == pool["q"]
    assert not trace_source(pool.select(range(4)))["reloadable"]
    assert not trace_source(pool.remove_columns("q"))["reloadable"]
    built = trace_source(raw)  # `load_dataset` on a local file: the file's path is not recorded by `datasets`
    assert built["kind"] == "json files" and not built["reloadable"] and "load_pool(" in built["fix"]


def test_dataset_dict_folders_and_in_memory_pools(jsonl, tmp_path):
    pool = load_pool(str(jsonl))
    DatasetDict({"train": pool, "test": pool.select(range(3))}).save_to_disk(str(tmp_path / "dd"))
    test = datasets.load_from_disk(str(tmp_path / "dd"))["test"]
    source = trace_source(test)
    assert (source["kind"], source["split"], source["reloadable"]) == ("save_to_disk", "test", True)
    assert reload_arguments(source) == {"source": str(tmp_path / "dd"), "split": "test"}
    memory = trace_source(Dataset.from_dict({"prompt": ["a"], "response": ["b"]}))
    assert memory["kind"] == "in-memory" and not memory["reloadable"] and "save_to_disk" in memory["fix"]


def test_a_saved_subset_reloaded_is_a_reloadable_parent(jsonl, tmp_path):
    subset = select_diverse(load_pool(str(jsonl)), k=6, method="random", show_progress=False)
    folder = save_subset(subset, tmp_path / "curated")
    again = select_diverse(load_pool(str(folder)), k=3, method="random", show_progress=False)
    source = get_provenance(again)["source"]
    assert source["kind"] == "hf_diverse subset" and source["reloadable"] and source["id"] == str(folder)
    assert source["parent"]["source"]["id"] == str(jsonl)


def test_hub_cache_paths_name_the_repo_and_revision():
    sha = "a" * 40
    path = f"/cache/datasets/tatsu-lab___alpaca/default/0.0.0/{sha}/alpaca-train.arrow"
    assert hub_cache_location(path) == {"id": "tatsu-lab/alpaca", "config": "default", "revision": sha}
    assert hub_cache_location("/cache/datasets/json/default-546949aa3ce61403/0.0.0/d78d5/json-train.arrow") is None
