"""`hf-diverse select` (`hf_diverse.cli.select`): end to end, errors, and the flags derived from the method configs."""

import json

import pytest
from datasets import load_from_disk

from hf_diverse import METHODS
from hf_diverse.cli import build_parser, main


def test_select_end_to_end_on_embedded_default(tmp_path, capsys):
    output = tmp_path / "curated"
    assert main(["select", "--k", "12", "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Selected 12 of 294 rows" in printed and str(output) in printed
    subset = load_from_disk(str(output))
    assert len(subset) == 12 and subset["selection_rank"] == list(range(12))
    record = json.loads((output / "provenance.json").read_text())
    assert record["method"] == "qdit" and record["source"]["kind"] == "embedded"
    assert [p.name for p in tmp_path.iterdir()] == ["curated"]  # no temporary folders left behind


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "5000"], "k must be in [1, 294]"),
        (["--k", "5", "--alpha", "2"], "alpha must be in [0, 1]"),
        (["--k", "5", "--quality-column", "missing"], "Quality column 'missing' not in the dataset"),
        (["--k", "5", "--text-columns", "nope"], "Text column(s) ['nope'] not in the dataset"),
        (["--k", "5", "--dataset", "does/not-exist.jsonl"], "does not exist"),
    ],
)
def test_select_errors_leave_nothing(tmp_path, capsys, args, message):
    output = tmp_path / "out"
    assert main(["select", *args, "--output", str(output), "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    assert main(["select", "--k", "3", "--method", "random", "--output", str(output)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (output / "keep.txt").read_text() == "mine"


def test_cli_help_describes_every_option_and_booleans_are_x_no_x(capsys):
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for method in METHODS.values():
        for opt in method.config.options():
            flag = "--" + opt.name.replace("_", "-")
            assert flag in out, flag
            assert " ".join(opt.help.split())[:40] in out, flag
            if opt.type is bool:
                assert f"--no-{opt.name.replace('_', '-')}" in out
    assert "default: 'auto'" in out and "--progress, --no-progress" in out
    args = build_parser().parse_args(["select", "--no-knn-cache", "--alpha", "0.3", "--memory-budget", "none"])
    assert args.knn_cache is False and args.alpha == 0.3 and args.memory_budget is None


def test_cli_help_lists_strategy_options(capsys):
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--diversity",
        "--tau",
        "--what",
        "--tokenizer",
        "--n-clusters",
        "--clustering",
        "tokens",
        "clusters",
        "qdit-threshold",
        "qdit-cluster",
    ):
        assert flag in out


def test_cli_end_to_end_strategies(ifbench_embedded, tmp_path):
    pool_dir = tmp_path / "pool"
    ifbench_embedded.save_to_disk(str(pool_dir))
    runs = {
        "tokens": ["--diversity", "0.5", "--what", "response"],
        "clusters": ["--diversity", "1", "--n-clusters", "4"],
        "qdit-threshold": ["--tau", "0.6"],
        "qdit-cluster": ["--n-clusters", "5"],
    }
    for method, flags in runs.items():
        out = tmp_path / method
        assert (
            main(
                [
                    "select",
                    "--dataset",
                    str(pool_dir),
                    "--k",
                    "15",
                    "--method",
                    method,
                    "--output",
                    str(out),
                    "--no-progress",
                    *flags,
                ]
            )
            == 0
        )
        assert len(load_from_disk(str(out))) == 15
        record = json.loads((out / "provenance.json").read_text())
        assert record["method"] == method
        assert all(record["parameters"][f[2:].replace("-", "_")] is not None for f in flags[::2])


def test_cli_exposes_adg_options():
    args = build_parser().parse_args(["select", "--method", "adg", "--n-bins", "5", "--lam", "0.3", "--k", "10"])
    assert args.n_bins == 5 and args.lam == 0.3


# --- issue 12: the CLI and the Python API agree on the inputs ------------------------------------------------------
def test_cli_and_python_agree_on_splits(ifbench, tmp_path):
    import os
    import stat

    from datasets import DatasetDict
    from datasets import load_from_disk as load

    from hf_diverse import load_pool, select_diverse

    folder = tmp_path / "dd"
    DatasetDict({"train": ifbench.select(range(40)), "test": ifbench.select(range(40, 70))}).save_to_disk(str(folder))
    common = ["--dataset", str(folder), "--k", "5", "--method", "random", "--seed", "2", "--no-progress"]
    assert main(["select", *common, "--split", "test", "--output", str(tmp_path / "one")]) == 0
    python = select_diverse(load_pool(str(folder), split="test"), k=5, method="random", seed=2, show_progress=False)
    assert load(str(tmp_path / "one"))["source_index"] == python["source_index"]
    assert main(["select", *common, "--split", "all", "--output", str(tmp_path / "all")]) == 0
    every = load(str(tmp_path / "all"))
    python = select_diverse(load(str(folder)), k=5, method="random", seed=2, show_progress=False)
    assert isinstance(every, DatasetDict) and set(every) == {"train", "test"}
    assert all(every[s]["source_index"] == python[s]["source_index"] for s in python)
    assert json.loads((tmp_path / "all" / "provenance.json").read_text())["test"]["source"]["split"] == "test"
    mode = stat.S_IMODE(os.stat(tmp_path / "one").st_mode)
    assert mode == 0o777 & ~_umask()


def _umask() -> int:
    import os

    old = os.umask(0)
    os.umask(old)
    return old


def test_cli_text_view_flags(tmp_path):
    from datasets import Dataset

    chats = [
        [{"role": "user", "content": f"first {i}"}, {"role": "assistant", "content": "a"}]
        + [{"role": "user", "content": f"last {i}"}, {"role": "assistant", "content": "b"}]
        for i in range(10)
    ]
    chats[0] = [{"role": "assistant", "content": "no user turn"}]
    path = tmp_path / "chats.jsonl"
    Dataset.from_dict({"messages": chats}).to_json(str(path))
    out = tmp_path / "out"
    args = ["select", "--dataset", str(path), "--k", "9", "--method", "random", "--turns", "last", "--no-progress"]
    assert main([*args, "--output", str(out)]) == 0
    record = json.loads((out / "provenance.json").read_text())
    assert record["parameters"]["turns"] == "last" and record["inputs"]["texts"]["empty_rows"] == 1
    assert 0 not in load_from_disk(str(out))["source_index"]
    assert main([*args, "--k", "10", "--keep-empty", "--output", str(tmp_path / "all")]) == 0
