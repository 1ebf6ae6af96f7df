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
        "Q1",  # the first user turn by default (`turns="first"`)
        "A1",
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


# --- issue 12: multi-turn rows, tool turns, empty rows ---------------------------------------------------------
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "code a simple travel app"},
    {"role": "assistant", "content": "Here is the app."},
    {"role": "user", "content": "Continue writing please"},
    {"role": "assistant", "content": "More code."},
]


@pytest.mark.parametrize(
    "turns, instruction, response",
    [
        ("first", "code a simple travel app", "Here is the app."),
        ("all", "code a simple travel app\n\nContinue writing please", "Here is the app.\n\nMore code."),
        ("last", "Continue writing please", "More code."),
    ],
)
def test_turns_choose_the_instruction_of_a_multi_turn_row(turns, instruction, response):
    names = {"user": "human", "assistant": "gpt"}
    sharegpt = [{"from": names.get(m["role"], m["role"]), "value": m["content"]} for m in CHAT]
    for batch in ({"messages": [CHAT]}, {"conversations": [sharegpt]}):
        view = TextView.for_columns(list(batch), turns=turns)
        assert view.texts(batch, what="instruction") == [instruction]
        assert view.texts(batch, what="response") == [response]
    assert TextView.for_columns(["messages"]).texts({"messages": [CHAT]}) == ["code a simple travel app"]


def test_tool_turns_are_neither_instruction_nor_response():
    chat = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me look."},
        {"role": "tool", "content": '{"temp": 21}'},
        {"role": "assistant", "content": "21 degrees."},
    ]
    for turns in ("first", "all", "last"):
        view = TextView.for_columns(["messages"], turns=turns)
        assert view.texts({"messages": [chat]}, what="instruction") == ["Weather in Paris?"]
        assert '{"temp": 21}' not in view.texts({"messages": [chat]}, what="both")[0]
    assert TextView.for_columns(["messages"], turns="all").texts({"messages": [chat]}, what="response") == [
        "Let me look.\n\n21 degrees."
    ]
    conv = TextView.for_columns(["messages"]).conversations({"messages": [chat]})[0]
    assert [m["role"] for m in conv] == ["user", "assistant", "tool", "assistant"]
    observation = [
        {"from": "human", "value": "Q"},
        {"from": "observation", "value": "R"},
        {"from": "gpt", "value": "A"},
    ]
    assert TextView.for_columns(["conversations"]).texts({"conversations": [observation]}, what="both") == ["Q\n\nA"]


def test_unknown_roles_and_turns_are_errors():
    with pytest.raises(TextFormatError, match=r"Row 4: unknown role 'narrator' in 'messages'.*'tool'"):
        TextView.for_columns(["messages"]).texts({"messages": [[{"role": "narrator", "content": "x"}]]}, indices=[4])
    with pytest.raises(InvalidParameterError, match=r"turns='second'.*\['first', 'all', 'last'\]"):
        TextView(turns="second")


def test_a_row_without_a_user_turn_has_an_empty_instruction():
    view = TextView.for_columns(["messages"])
    batch = {"messages": [[{"role": "assistant", "content": "Hello!"}], [{"role": "user", "content": "   "}]]}
    assert view.texts(batch, what="instruction") == ["", "   "]
    assert view.empty(batch, what="instruction") == [True, True]
    pairs = TextView.for_columns(["prompt", "response"])
    assert pairs.empty({"prompt": ["a", "", "c"], "response": ["", "b", "d"]}, what="both") == [True, True, False]
