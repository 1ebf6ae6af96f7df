"""`hf_diverse.textviews`: the instruction / response views of every dataset format."""

import pytest

from hf_diverse import ColumnNotFoundError, InvalidParameterError, TextFormatError, TextView, detect_format

ROWS = {
    "alpaca": (
        {"instruction": ["Add the numbers"], "input": ["2 and 2"], "output": ["4"]},
        "Add the numbers\n\n2 and 2",
        "4",
    ),
    "prompt_response": ({"prompt": ["Hi?"], "response": ["Hello."]}, "Hi?", "Hello."),
    "prompt_completion": ({"prompt": ["Say a"], "completion": ["a"]}, "Say a", "a"),
    "messages": (
        {
            "messages": [
                [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Q1"},
                    {"role": "assistant", "content": "A1"},
                    {"role": "user", "content": "Q2"},
                    {"role": "assistant", "content": "A2"},
                ]
            ]
        },
        "Q1\n\nQ2",
        "A1\n\nA2",
    ),
    "sharegpt": ({"conversations": [[{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]]}, "Q", "A"),
    "text": ({"text": ["just text"]}, "just text", "just text"),
}


@pytest.mark.parametrize("fmt", list(ROWS))
def test_views_of_each_format(fmt):
    batch, instruction, response = ROWS[fmt]
    assert detect_format(batch) == fmt
    view = TextView.for_columns(list(batch))
    assert view.texts(batch, what="instruction") == [instruction]
    assert view.texts(batch, what="response") == [response]
    both = view.texts(batch, what="both")[0]
    assert both == (instruction if fmt == "text" else f"{instruction}\n\n{response}")


def test_conversational_prompt_completion():
    batch = {"prompt": [[{"role": "user", "content": "Q"}]], "completion": [[{"role": "assistant", "content": "A"}]]}
    view = TextView.for_columns(list(batch))
    assert view.conversations(batch) == [[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]]
    assert view.texts(batch, what="both") == ["Q\n\nA"]


def test_override_columns_list_and_dict():
    batch = {"question": ["Q"], "context": ["C"], "answer": ["A"]}
    with pytest.raises(TextFormatError, match="Formats understood"):
        detect_format(batch)
    view = TextView.for_columns(list(batch), text_columns="question,context")
    assert view.texts(batch) == ["Q\n\nC"]
    view = TextView.for_columns(list(batch), text_columns={"instruction": ["question"], "response": "answer"})
    assert view.texts(batch, what="response") == ["A"]
    assert view.conversations(batch)[0][1] == {"role": "assistant", "content": "A"}


def test_errors_name_the_problem():
    with pytest.raises(TextFormatError) as e:
        detect_format(["foo", "bar"])
    assert "['bar', 'foo']" in str(e.value) and "alpaca" in str(e.value)
    with pytest.raises(ColumnNotFoundError, match="nope"):
        TextView.for_columns(["a"], text_columns=["nope"])
    with pytest.raises(InvalidParameterError, match="instruction"):
        TextView.for_columns(["text"]).texts({"text": ["x"]}, what="everything")
    view = TextView.for_columns(["prompt", "response"])
    with pytest.raises(TextFormatError, match="Row 7 has no text"):
        view.texts({"prompt": ["ok", None], "response": ["a", "b"]}, indices=[6, 7])
    with pytest.raises(TextFormatError, match="int"):
        view.texts({"prompt": [3], "response": ["a"]})


def test_empty_text_is_kept_and_none_input_is_optional():
    view = TextView.for_columns(["instruction", "input", "output"])
    batch = {"instruction": [""], "input": [None], "output": ["x"]}
    assert view.texts(batch) == [""]
