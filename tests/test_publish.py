"""`hf_diverse.publish`: the repository folder `build_repo_folder` writes, and heavy columns."""

import pytest
import yaml
from datasets import Dataset, List, Value

import hf_diverse.publish as publish
from hf_diverse import InvalidParameterError, select_diverse
from hf_diverse.publish import build_repo_folder, heavy_columns
from tests.helpers import front_matter


def _tree(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_build_repo_folder_writes_data_card_and_plots(pool, tmp_path):
    subset = select_diverse(pool, k=10, method="qdit", quality_column="score", show_progress=False)
    built = build_repo_folder(subset, tmp_path / "repo", pool=pool, repo_id="me/subset", report=False)
    assert built.folder == tmp_path / "repo"
    assert built.files == [
        "README.md",
        "provenance.json",
        "data/train-00000-of-00001.parquet",
        "images/projection.png",
    ]
    assert _tree(built.folder) == sorted(built.files)  # nothing else: no scratch folders left behind
    assert built.dropped_columns == ["embedding"] and built.num_rows == 10 and built.report is None
    assert built.download_size == (built.folder / built.files[2]).stat().st_size
    back = Dataset.from_parquet(str(built.folder / built.files[2]))
    assert back.column_names == [c for c in subset.column_names if c != "embedding"]
    assert back["prompt"] == subset["prompt"]
    readme = (built.folder / "README.md").read_text()
    assert readme == str(built.card) and 'load_dataset("me/subset", split="train")' in readme
    assert "![2-D projection of the pool](images/projection.png)" in readme
    assert (built.folder / "images/projection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert yaml.safe_load((built.folder / "provenance.json").read_text())["method"] == "qdit"


def test_build_repo_folder_shards_and_heavy_columns(pool, tmp_path):
    subset = select_diverse(pool, k=12, method="random", show_progress=False)
    built = build_repo_folder(subset, tmp_path / "repo", split="test", max_shard_size=1000, keep_heavy_columns=True)
    shards = [f for f in built.files if f.startswith("data/")]
    assert len(shards) > 1 and shards[0] == f"data/test-00000-of-{len(shards):05d}.parquet"
    assert built.dropped_columns == []
    assert "embedding" in [f["name"] for f in front_matter(built.card)["dataset_info"]["features"]]
    assert not any(f.startswith("images/") for f in built.files) and not (built.folder / "images").exists()
    back = Dataset.from_parquet([str(built.folder / f) for f in shards])
    assert back["prompt"] == subset["prompt"] and len(back[0]["embedding"]) == 8


def test_build_repo_folder_leaves_nothing_on_failure(pool, tmp_path, monkeypatch):
    subset = select_diverse(pool, k=5, method="random", show_progress=False)
    with pytest.raises(InvalidParameterError, match="max_shard_size must be positive"):
        build_repo_folder(subset, tmp_path / "repo", max_shard_size=0)

    def broken_card(*args, **kwargs):
        raise RuntimeError("card failed")

    monkeypatch.setattr(publish, "render_card", broken_card)
    with pytest.raises(RuntimeError, match="card failed"):  # after the Parquet shards were written
        build_repo_folder(subset, tmp_path / "repo")
    assert list(tmp_path.iterdir()) == []  # no target, no temporary folder
    monkeypatch.undo()
    (tmp_path / "repo").mkdir()
    with pytest.raises(InvalidParameterError, match="already exists"):
        build_repo_folder(subset, tmp_path / "repo")
    assert build_repo_folder(subset, tmp_path / "repo", overwrite=True).files[0] == "README.md"


def test_build_repo_folder_embeds_the_pool_with_the_recorded_model(ifbench, tmp_path):
    raw = ifbench.select(range(30))  # no embedding column: the bundled all-MiniLM-L6-v2 computes it
    subset = select_diverse(raw, k=5, method="qdit", show_progress=False)
    built = build_repo_folder(subset, tmp_path / "repo", pool=raw, report=False)
    assert "images/projection.png" in built.files
    assert "(sentence-transformers/all-MiniLM-L6-v2)" in built.images[0]["caption"]


def test_build_repo_folder_argument_errors(pool, tmp_path):
    subset = select_diverse(pool, k=5, method="random", show_progress=False)
    with pytest.raises(InvalidParameterError, match="Split name"):
        build_repo_folder(subset, tmp_path / "repo", split="bad split")
    with pytest.raises(InvalidParameterError, match="`pool` must be a `datasets.Dataset`"):
        build_repo_folder(subset, tmp_path / "repo", pool=[1, 2])
    assert not (tmp_path / "repo").exists()


def test_heavy_columns():
    ds = Dataset.from_dict(
        {
            "prompt": ["a"],
            "embedding": [[0.1, 0.2]],
            "vec": [[0.5]],
            "nested": [[[0.1]]],
            "ids": [[1, 2]],
            "tags": [["x"]],
            "adg_answers": [["one", "two"]],
            "adg_score": [0.3],
        },
        features=None,
    ).cast_column("vec", List(Value("float16")))
    assert heavy_columns(ds) == ["embedding", "vec", "nested", "adg_answers"]
