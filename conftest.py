"""The test environment, and the doctests of the `Example:` blocks in hf_diverse's docstrings (pyproject runs
`pytest --doctest-modules`).

- The environment of every test and doctest: offline, isolated caches, no progress bars, no token. It is set here,
  before any Hugging Face library is imported (they read it at import time); pytest loads this file before
  tests/conftest.py.
- Doctests come from the package only, and a parser ends an expected output at the closing fence of a ```py block.
- Each example runs in a fresh temporary folder (examples write files) with these names besides its module's globals:
  `np`, `torch`, `Dataset`, and `pool`: the first 60 rows of the bundled IFBench sample (`load_pool(limit=60)`,
  columns `prompt`, `response`) with an `embedding` column (the bundled all-MiniLM-L6-v2 over the prompts) and a
  seeded stand-in `reward` column in [0, 1). `pool` is built once, and only for examples that read it.
"""

import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="hf_diverse_tests_")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_CACHE"] = os.path.join(_TMP, "datasets")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_DIVERSE_DISABLE_PROGRESS_BARS"] = "1"
# computed columns are stored and found again (hf_diverse.scoring): one store per test session
os.environ["HF_DIVERSE_SCORE_CACHE"] = os.path.join(_TMP, "scores")
os.environ.pop("HF_TOKEN", None)
os.environ["HF_TOKEN_PATH"] = os.path.join(_TMP, "no_token")
# the converted SmolLM2 is re-used across runs (it is a pure function of the installed package)
os.environ.setdefault("HF_DIVERSE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "hf_diverse_tests"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ast  # noqa: E402
import copy  # noqa: E402
import doctest  # noqa: E402
import functools  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from _pytest.doctest import DoctestItem, DoctestModule  # noqa: E402

PACKAGE = Path(__file__).resolve().parent / "hf_diverse"

# the standard pattern, except that a line starting with ``` ends the expected output instead of belonging to it
doctest.DocTestParser._EXAMPLE_RE = re.compile(
    r"""
    (?P<source>
        (?:^(?P<indent> [ ]*) >>>    .*)    # the `>>>` line
        (?:\n           [ ]*  \.\.\. .*)*)  # its `...` lines
    \n?
    (?P<want> (?:(?![ ]*$)(?![ ]*>>>)(?![ ]*```)  # not blank, not a `>>>` line, not a fence
                 .+$\n?
              )*)
    """,
    re.MULTILINE | re.VERBOSE,
)


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent):
    # doctests of the package only: tests/ holds scripts that do work when imported (hub_client.py reads sys.argv)
    collectors = yield
    if PACKAGE in file_path.resolve().parents:
        return collectors
    return [collector for collector in collectors if not isinstance(collector, DoctestModule)]


# rows of the bundled sample in `pool`: enough for k=10 picks, cheap to embed on a CPU
POOL_ROWS = 60


@functools.cache
def _example_pool():
    """The `pool` of the examples (see the module docstring), built once per session."""
    import numpy as np

    from hf_diverse import EmbeddingScorer, load_pool

    pool = load_pool(limit=POOL_ROWS)
    scorer = EmbeddingScorer()
    pool = pool.map(scorer, batched=True, features=scorer.features(pool))
    reward = np.random.default_rng(0).random(len(pool)).round(3)
    return pool.add_column("reward", reward.tolist())


def _reads_before_assigning(examples, name: str) -> bool:
    """Whether the examples that run read `name` before they assign it (then it must come from the namespace)."""
    for example in examples:
        if example.options.get(doctest.SKIP):
            continue
        nodes = [node for node in ast.walk(ast.parse(example.source)) if getattr(node, "id", None) == name]
        if any(isinstance(node.ctx, ast.Load) for node in nodes):
            return True
        if nodes:
            return False
    return False


@pytest.fixture(autouse=True)
def _doctest_setup(request, doctest_namespace):
    """For docstring examples only: the shared names, and a fresh temporary folder as the working directory."""
    if not isinstance(request.node, DoctestItem):
        yield
        return
    import numpy as np
    import torch
    from datasets import Dataset

    torch.set_num_threads(min(2, torch.get_num_threads()))
    doctest_namespace.update(np=np, torch=torch, Dataset=Dataset)
    doctest_namespace.pop("pool", None)
    if _reads_before_assigning(request.node.dtest.examples, "pool"):
        # a copy: examples may set its provenance in place
        doctest_namespace["pool"] = copy.deepcopy(_example_pool())
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
    yield
