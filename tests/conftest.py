"""Test setup: a guard against non-loopback traffic and the fixtures shared by test modules in several folders.

The environment (offline, isolated caches, no progress bars, no token) is set by the root `conftest.py`, which
pytest loads before this file and before any Hugging Face library is imported (they read it at import time).

Layout: the tests of `hf_diverse/x/y.py` are in `tests/x/test_y.py` (of `hf_diverse/y.py` in `tests/test_y.py`).
Every folder is a package (`__init__.py`), so test modules of the same name in two folders do not clash; shared
plain helpers are imported as `from tests.helpers import ...`, fixtures come from the `conftest.py` files.
"""

import socket

import numpy as np
import pytest
import torch

from hf_diverse import EmbeddingScorer, select_diverse
from hf_diverse.data import load_embedded_default
from hf_diverse.io import save_subset
from hf_diverse.models import default_causal_lm_path, load_tokenizer

# plain `assert`s in the shared helpers report their values like those in test modules (registered before the import)
pytest.register_assert_rewrite("tests.helpers")
from tests.helpers import save_tiny_llama  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

_LOOPBACK = ("127.", "::1", "localhost")
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect


def _is_loopback(host) -> bool:
    host = host.decode() if isinstance(host, bytes) else str(host)
    return host.startswith(_LOOPBACK) or host in ("", "0.0.0.0")


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_loopback(host):
        raise AssertionError(f"Test tried to resolve non-loopback host {host!r}: tests must stay on 127.0.0.1.")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self, address):
    if isinstance(address, tuple) and not _is_loopback(address[0]):
        raise AssertionError(f"Test tried to connect to {address!r}: tests must stay on 127.0.0.1.")
    return _real_connect(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for modules of many small tensor ops: avoids OpenMP barrier stalls on a shared CPU."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="session")
def ifbench():
    """The embedded default pool (294 IFBench prompt/response pairs)."""
    return load_embedded_default()


@pytest.fixture(scope="session")
def ifbench_embedded(ifbench):
    """The embedded pool with its `embedding` column (bundled all-MiniLM-L6-v2 over the prompts), computed once."""
    scorer = EmbeddingScorer()
    return ifbench.map(scorer, batched=True, batch_size=512, features=scorer.features(ifbench))


@pytest.fixture(scope="session")
def smollm2_tokenizer_path():
    """Folder of the converted SmolLM2-135M-Instruct (converted once from the bundled GGUF, then cached)."""
    return default_causal_lm_path()


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory, smollm2_tokenizer_path):
    """A random-init 4-layer Llama (hidden 16) with the SmolLM2 tokenizer and chat template, saved to a folder."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"), smollm2_tokenizer_path)


@pytest.fixture(scope="module")
def tok(smollm2_tokenizer_path):
    return load_tokenizer(str(smollm2_tokenizer_path))


@pytest.fixture(scope="module")
def pool(ifbench):
    """60 IFBench rows with a seeded 8-d embedding column and a quality column (no model needed)."""
    ds = ifbench.select(range(60))
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(ds), 8)).astype("float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ds = ds.add_column("embedding", [list(map(float, v)) for v in emb])
    return ds.add_column("score", rng.random(len(ds)).tolist())


@pytest.fixture(scope="module")
def curated(ifbench, tmp_path_factory):
    """16 rows picked by QDIT from the first 48 of the embedded pool, saved with `save_subset`."""
    subset = select_diverse(ifbench.select(range(48)), k=16, method="qdit", seed=0, show_progress=False)
    return save_subset(subset, tmp_path_factory.mktemp("data") / "curated")


@pytest.fixture
def knn_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DIVERSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "knn"
