"""Plain helpers shared by test modules in several folders: `from tests.helpers import ...` (fixtures are in the
`conftest.py` files)."""

import numpy as np
import torch
import yaml
from datasets import Dataset
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from hf_diverse.facility import facility_location_greedy, sparse_facility_location_greedy
from tests.reference import plain_greedy_on  # noqa: F401  (re-exported for the test modules)


# --- QDIT's score on the facility-location engine (tests/facility/, tests/selection/) --------------------------------
def qdit_terms(quality, alpha: float, n: int, k: int):
    """QDIT's score as the engine takes it, written out here: w = (1 - alpha) / N, bonus = alpha * q / k."""
    bonus = None if quality is None else alpha * torch.as_tensor(np.asarray(quality), dtype=torch.float64) / k
    return {"bonus": bonus, "diversity_weight": (1.0 - alpha) / n}


def qdit_greedy(x, k, quality=None, alpha=0.0, **kwargs):
    """`facility_location_greedy` with QDIT's score f = (1 - alpha) d(j|A) / N + alpha q(j) / k."""
    return facility_location_greedy(x, k, **qdit_terms(quality, alpha, x.shape[0], k), **kwargs)


def qdit_graph_greedy(graph, k, quality=None, alpha=0.0, **kwargs):
    """`sparse_facility_location_greedy` with QDIT's score."""
    return sparse_facility_location_greedy(graph, k, **qdit_terms(quality, alpha, graph.n, k), **kwargs)


# --- synthetic pools ----------------------------------------------------------------------------------------------
def clustered(n, d=32, n_clusters=40, noise=0.5, seed=0):
    """Unit rows around `n_clusters` Gaussian centres with log-normal cluster sizes."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    sizes = rng.lognormal(0, 1, n_clusters)
    labels = rng.choice(n_clusters, n, p=sizes / sizes.sum())
    a = centers[labels] + noise * rng.standard_normal((n, d))
    return torch.from_numpy((a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32))


def blobs(sizes, dim=8, seed=0, spread=0.05):
    """Unit vectors in well-separated blobs (one axis each) with a random quality column."""
    rng = np.random.default_rng(seed)
    rows, label = [], []
    for c, size in enumerate(sizes):
        centre = np.zeros(dim)
        centre[c] = 1.0
        pts = centre + spread * rng.standard_normal((size, dim))
        rows.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        label += [c] * size
    emb = np.concatenate(rows).astype(np.float32)
    return Dataset.from_dict({"embedding": emb.tolist(), "blob": label, "quality": rng.random(len(label)).tolist()})


def _synthetic_pool(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 8))
    labels = rng.integers(0, 4, size=n)
    emb = centres[labels] + 0.05 * rng.normal(size=(n, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    d, i = rng.random(n) * 0.8, rng.random(n) * 0.75
    return Dataset.from_dict(
        {
            "prompt": [f"question {j}" for j in range(n)],
            "response": [f"answer {j}" for j in range(n)],
            "embedding": emb.astype(np.float32).tolist(),
            "adg_divergence": d.tolist(),
            "adg_isotropy": i.tolist(),
            "adg_score": (0.6 * d + 0.4 * i).tolist(),
        }
    )


# --- chat messages (tests/train/) ---------------------------------------------------------------------------------
U, A, S = "user", "assistant", "system"


def m(role, content):
    return {"role": role, "content": content}


# --- dataset cards (tests/test_card.py, tests/test_publish.py) ----------------------------------------------------
def front_matter(card) -> dict:
    text = str(card)
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


# --- tiny random-init models (tests/conftest.py, tests/scorers/, benchmarks/bench_train.py) -----------------------
def save_tiny_llama(folder, tokenizer_path, *, num_hidden_layers: int = 4, reward: bool = False) -> str:
    """Save a random-init Llama (hidden 16, seeded) with the tokenizer and chat template at `tokenizer_path` to
    `folder`: a causal LM, or with `reward=True` a single-logit sequence classifier (a stand-in reward model)."""
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=not reward,
        num_labels=1,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForSequenceClassification(config) if reward else LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
