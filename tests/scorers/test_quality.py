"""`hf_diverse.scorers.quality`: `LMQualityScorer` and `RewardModelScorer` on tiny random models."""

import pickle

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_diverse import LMQualityScorer, RewardModelScorer, get_provenance, select_diverse
from hf_diverse.errors import InvalidParameterError, ModelLoadError, TextFormatError
from tests.helpers import save_tiny_llama


def reference_scores(path, prompt, response, max_length):
    """Unbatched, unpadded (lm_loglik, ifd) of one prompt/response pair, straight from the model's logits."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    p = tok(text, add_special_tokens=False)["input_ids"]
    a = tok(response, add_special_tokens=False)["input_ids"]
    # the documented truncation: the context keeps its last tokens, at least max_length // 2 of them
    p = p[len(p) - min(len(p), max(max_length - len(a), max_length // 2)) :]
    a = a[: max_length - len(p)]

    def nll(context):
        with torch.no_grad():
            logits = model(torch.tensor([context + a])).logits[0, len(context) - 1 : -1]
        return -torch.log_softmax(logits, -1).gather(1, torch.tensor(a)[:, None]).mean().item()

    cond, uncond = nll(p), nll([tok.bos_token_id])
    return -cond, cond / uncond


def test_lm_scorer_in_map_matches_reference_and_is_batch_invariant(rows, tiny_llama_path):
    scored = rows.map(LMQualityScorer(tiny_llama_path, batch_size=4, max_length=256), batched=True, batch_size=5)
    assert scored.features["lm_loglik"].dtype == "float64" and scored.features["ifd"].dtype == "float64"
    loglik, ifd = np.array(scored["lm_loglik"]), np.array(scored["ifd"])
    assert np.isfinite(loglik).all() and np.isfinite(ifd).all()
    assert (loglik < 0).all() and (ifd > 0).all()
    ref = reference_scores(tiny_llama_path, rows[3]["prompt"], rows[3]["response"], 256)
    np.testing.assert_allclose([loglik[3], ifd[3]], ref, rtol=1e-4)
    one_by_one = rows.map(LMQualityScorer(tiny_llama_path, batch_size=1, max_length=256), batched=True)
    np.testing.assert_allclose(one_by_one["lm_loglik"], loglik, rtol=1e-4)
    np.testing.assert_allclose(one_by_one["ifd"], ifd, rtol=1e-4)
    # the columns are accepted as quality
    subset = select_diverse(scored, k=3, method="quality", quality_column="lm_loglik", show_progress=False)
    assert subset["lm_loglik"] == sorted(loglik, reverse=True)[:3]
    assert get_provenance(subset)["parameters"]["quality_column"] == "lm_loglik"


def test_lm_scorer_cache_reused_and_picklable(rows, tiny_llama_path):
    first = LMQualityScorer(tiny_llama_path, ifd_column=None, max_length=128)
    a = rows.map(first, batched=True)
    assert first._loaded is not None and "ifd" not in a.column_names
    state = pickle.loads(pickle.dumps(first))
    assert state._loaded is None and state.model == tiny_llama_path
    second = LMQualityScorer(tiny_llama_path, ifd_column=None, max_length=128)  # same arguments: same fingerprint
    b = rows.map(second, batched=True)
    assert second._loaded is None  # answered from the cache, the model was never loaded
    assert b["lm_loglik"] == a["lm_loglik"] and b.cache_files == a.cache_files


def test_lm_scorer_edge_cases(tiny_llama_path):
    ds = Dataset.from_dict({"prompt": ["Say hi", "Nothing to say"], "response": ["Hi there!", ""]})
    scorer = LMQualityScorer(tiny_llama_path, max_length=16)
    out = ds.map(scorer, batched=True, features=scorer.features(ds))  # NaN rows keep the declared float64
    assert np.isfinite(out["lm_loglik"][0]) and np.isnan(out["lm_loglik"][1]) and np.isnan(out["ifd"][1])
    with pytest.raises(TextFormatError, match="no instruction/response roles"):
        Dataset.from_dict({"text": ["plain"]}).map(LMQualityScorer(tiny_llama_path), batched=True)
    with pytest.raises(InvalidParameterError):
        LMQualityScorer(loglik_column=None, ifd_column=None)
    with pytest.raises(ModelLoadError, match="not/a/model"):
        ds.map(LMQualityScorer("/not/a/model"), batched=True)


@pytest.fixture(scope="module")
def tiny_reward_path(tmp_path_factory, smollm2_tokenizer_path):
    """A random-init 2-layer single-logit Llama reward model (hidden 16) with the SmolLM2 tokenizer."""
    return save_tiny_llama(
        tmp_path_factory.mktemp("tiny_reward"), smollm2_tokenizer_path, num_hidden_layers=2, reward=True
    )


@pytest.mark.parametrize("input_format", ["chat", "pair"])
def test_reward_scorer_in_map(rows, tiny_reward_path, input_format):
    scored = rows.map(RewardModelScorer(tiny_reward_path, input_format=input_format, batch_size=4), batched=True)
    reward = np.array(scored["reward"])
    assert scored.features["reward"].dtype == "float64" and np.isfinite(reward).all() and reward.std() > 0
    single = rows.map(RewardModelScorer(tiny_reward_path, input_format=input_format, batch_size=1), batched=True)
    np.testing.assert_allclose(single["reward"], reward, rtol=1e-4, atol=1e-5)  # padding does not change scores
    assert len(select_diverse(scored, k=4, method="quality", quality_column="reward", show_progress=False)) == 4


def test_reward_scorer_errors(rows, tiny_reward_path, tmp_path):
    with pytest.raises(ModelLoadError, match="missing"):
        rows.map(RewardModelScorer(str(tmp_path / "missing")), batched=True)
    with pytest.raises(InvalidParameterError, match="input_format"):
        RewardModelScorer(tiny_reward_path, input_format="xml")
    with pytest.raises(InvalidParameterError, match="label_index"):
        rows.map(RewardModelScorer(tiny_reward_path, label_index=3), batched=True)
