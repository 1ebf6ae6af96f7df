"""`hf_diverse.train.data`: every dataset format to prompt/completion rows, and the fallback chat template."""

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from hf_diverse import EmptyDatasetError, TextFormatError
from hf_diverse.train import FALLBACK_CHAT_TEMPLATE, ensure_chat_template, split_conversation, to_prompt_completion
from tests.helpers import A, S, U, m

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


def test_fallback_template_renders_plain_text_with_eos_and_is_prefix_preserving(tiny_llama_path):
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
