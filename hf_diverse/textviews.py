"""Text views of a row: the one place that turns instruction-tuning formats into text.

Understood formats (auto-detected from the column names, first match wins):

| format              | columns                                   |
|---------------------|-------------------------------------------|
| `messages`          | `messages`: list of `{"role", "content"}` |
| `sharegpt`          | `conversations`: list of `{"from", "value"}` |
| `alpaca`            | `instruction`, `output` (optional `input`) |
| `prompt_response`   | `prompt`, `response`                       |
| `prompt_completion` | `prompt`, `completion` (strings, or TRL conversational lists of messages) |
| `text`              | `text`                                     |

Every chat-like format is first normalised to a conversation: a list of `{"role", "content"}` with roles `system`,
`user`, `assistant` and `tool`. Roles are mapped explicitly (`ROLES`): `human`/`user` -> user, `gpt`/`assistant`/
`chatgpt`/`bing`/`bard`/`model` -> assistant, `system`/`developer` -> system, `tool`/`function`/`ipython`/
`observation`/`function_call` -> tool (tool calls and their outputs); any other role is a `TextFormatError` naming
the row and the role.

Which turns make the views (`turns=`, for `messages`, ShareGPT and conversational prompt/completion rows):

- `"first"` (default): the instruction is the first user turn, the response the assistant turns that answer it
  (up to the next user turn). A ShareGPT conversation of "code a travel app" followed by ten "Continue writing
  please" turns is about the travel app, not about its continuations.
- `"all"`: every user turn joined by a blank line, and every assistant turn joined the same way.
- `"last"`: the last user turn and the assistant turns after it.

System and tool turns are never part of the instruction or the response. Alpaca: the `instruction` then its `input`;
*both* is instruction, blank line, response. A `text` row has no roles: all three views are the text itself.

Handling of odd values: an empty string is kept (a row with no user turn has an empty instruction); `empty()` says
which rows have an empty (or whitespace-only) view, so that `select_diverse` can leave them out. `None` or a
non-string value raises `TextFormatError` naming the row and the column.
"""

from collections.abc import Iterable, Sequence

from .errors import ColumnNotFoundError, InvalidParameterError, TextFormatError

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_response", "prompt_completion", "text")
WHAT = ("instruction", "response", "both")
TURNS = ("first", "all", "last")

_REQUIRED = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt_response": ("prompt", "response"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
# role or ShareGPT speaker name (lower case) -> the role of the normalised conversation
ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
    "observation": "tool",
    "function_call": "tool",
}


def detect_format(column_names: Iterable[str]) -> str:
    """Return the first format of `FORMATS` whose columns are all present.

    Example:
    ```py
    >>> detect_format(["instruction", "input", "output"])
    'alpaca'
    ```
    """
    cols = set(column_names)
    for fmt in FORMATS:
        if all(c in cols for c in _REQUIRED[fmt]):
            return fmt
    raise TextFormatError(
        f"Could not find instruction text in columns {sorted(cols)}. Formats understood: "
        + "; ".join(f"{f} ({', '.join(_REQUIRED[f])})" for f in FORMATS)
        + ". Name the columns to use with `text_columns=` (CLI: `--text-columns`)."
    )


def _parse_columns(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [c.strip() for c in value.split(",") if c.strip()]
    return tuple(value)


class TextView:
    """Turns batches of rows into texts. A plain, picklable object (safe inside `Dataset.map`).

    Args:
        format (`str`, *optional*):
            One of `FORMATS`. Detected from the columns when `None`.
        text_columns (`str`, `list[str]` or `dict`, *optional*):
            Overrides detection. A list (or comma-separated string) of columns is joined with a blank line and
            used for every view; a dict `{"instruction": [...], "response": [...]}` names the columns of each role.
        turns (`str`, defaults to `"first"`): which turns of a multi-turn row make its instruction and response:
            `"first"`, `"all"` or `"last"` (see the module docstring).

    Example:
    ```py
    >>> view = TextView.for_columns(["instruction", "input", "output"])
    >>> view.texts({"instruction": ["Add"], "input": ["2+2"], "output": ["4"]}, what="both")
    ['Add\\n\\n2+2\\n\\n4']
    ```
    """

    def __init__(self, format: str | None = None, text_columns=None, turns: str = "first"):
        if format is not None and format not in FORMATS:
            raise InvalidParameterError(f"Unknown text format {format!r}. Valid formats: {list(FORMATS)}.")
        if turns not in TURNS:
            raise InvalidParameterError(f"Unknown turns={turns!r}. Valid values: {list(TURNS)}.")
        self.format = format
        self.turns = turns
        if isinstance(text_columns, dict):
            unknown = set(text_columns) - {"instruction", "response"}
            if unknown:
                raise InvalidParameterError(
                    f"`text_columns` keys {sorted(unknown)} are not understood; use 'instruction' and/or 'response'."
                )
            self.text_columns = {role: _parse_columns(cols) for role, cols in text_columns.items()}
        elif text_columns is not None:
            cols = _parse_columns(text_columns)
            if not cols:
                raise InvalidParameterError("`text_columns` is empty; name at least one column.")
            self.text_columns = {"instruction": cols, "response": cols}
        else:
            self.text_columns = None

    def __repr__(self):
        return f"TextView(format={self.format!r}, text_columns={self.text_columns!r}, turns={self.turns!r})"

    @classmethod
    def for_columns(
        cls, column_names: Sequence[str], format: str | None = None, text_columns=None, turns: str = "first"
    ) -> "TextView":
        """Build a view for a dataset with `column_names`, checking that every column it needs exists."""
        view = cls(format=format, text_columns=text_columns, turns=turns)
        column_names = list(column_names)
        if view.text_columns is not None:
            named = list(dict.fromkeys(c for cols in view.text_columns.values() for c in cols))
            missing = [c for c in named if c not in column_names]
            if missing:
                raise ColumnNotFoundError(
                    f"Text column(s) {missing} not in the dataset. Current columns in the dataset: {column_names}."
                )
            return view
        if view.format is None:
            view.format = detect_format(column_names)
        else:
            missing = [c for c in _REQUIRED[view.format] if c not in column_names]
            if missing:
                raise ColumnNotFoundError(
                    f"Format {view.format!r} needs column(s) {missing}. "
                    f"Current columns in the dataset: {column_names}."
                )
        return view

    # --- public views -------------------------------------------------------------------------------------
    def texts(
        self, batch: dict[str, list], what: str = "instruction", indices: Sequence[int] | None = None
    ) -> list[str]:
        """The `what` view (`"instruction"`, `"response"` or `"both"`) of each row of a batch."""
        return [_join(*parts) for parts in self._parts(batch, what, indices)]

    def empty(
        self, batch: dict[str, list], what: str = "instruction", indices: Sequence[int] | None = None
    ) -> list[bool]:
        """Whether the `what` view of each row is empty or whitespace only; for `"both"`, whether the instruction or
        the response is (a `text` row counts as both).

        Example:
        ```py
        >>> view = TextView.for_columns(["prompt", "response"])
        >>> view.empty({"prompt": ["Hi", " ", "Hey"], "response": ["Hello", "Yes", ""]}, what="instruction")
        [False, True, False]
        ```
        """
        views = ("instruction", "response") if what == "both" else (what,)
        by_view = [self._parts(batch, v, indices) for v in views]
        return [any(not _join(*parts[i]).strip() for parts in by_view) for i in range(len(by_view[0]))]

    def columns(self, column_names: Sequence[str]) -> list[str]:
        """The columns of `column_names` this view reads its texts from, in dataset order (e.g. to read only those).

        Example:
        ```py
        >>> TextView.for_columns(["instruction", "input", "output", "id"]).columns(["instruction", "input", "output",
        ...     "id"])
        ['instruction', 'input', 'output']
        ```
        """
        if self.text_columns is not None:
            named = {c for cols in self.text_columns.values() for c in cols}
        else:
            fmt = self.format or detect_format(column_names)
            named = set(_REQUIRED[fmt]) | ({"input"} if fmt == "alpaca" else set())
        return [c for c in column_names if c in named]

    def _parts(self, batch, what, indices) -> list[tuple[str, ...]]:
        """The pieces of the `what` view of each row (joined by a blank line into its text)."""
        if what not in WHAT:
            raise InvalidParameterError(f"Unknown text view what={what!r}. Valid values: {list(WHAT)}.")
        view = self if self.format is not None or self.text_columns is not None else self._detected(batch)
        n = len(next(iter(batch.values()))) if batch else 0
        rows = list(indices) if indices is not None else list(range(n))
        if view.text_columns is not None:
            return [(view._custom(batch, i, rows[i], what),) for i in range(n)]
        if view.format == "text":
            return [(_as_text(batch["text"][i], rows[i], "text"),) for i in range(n)]
        out = []
        for i in range(n):
            instr, resp = select_turns(view._conversation(batch, i, rows[i]), view.turns)
            out.append((instr,) if what == "instruction" else (resp,) if what == "response" else (instr, resp))
        return out

    def _detected(self, batch) -> "TextView":
        return self.for_columns(batch.keys(), turns=self.turns)

    def conversations(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> list[list[dict]]:
        """Each row as a list of `{"role", "content"}` messages (roles `system`, `user`, `assistant`, `tool`), every
        turn of the row whatever `turns` says.

        With `text_columns` as a dict, the instruction columns become one user turn and the response columns one
        assistant turn. Plain `text` rows (and a list of `text_columns`) have no roles and raise `TextFormatError`.
        """
        view = self if self.format is not None or self.text_columns is not None else self._detected(batch)
        n = len(next(iter(batch.values()))) if batch else 0
        rows = list(indices) if indices is not None else list(range(n))
        if view.text_columns is not None:
            if view.text_columns["instruction"] == view.text_columns.get("response"):
                raise TextFormatError(
                    "A single list of `text_columns` has no instruction/response roles; pass "
                    "`text_columns={'instruction': [...], 'response': [...]}`."
                )
            return [
                [
                    {"role": "user", "content": view._custom(batch, i, rows[i], "instruction")},
                    {"role": "assistant", "content": view._custom(batch, i, rows[i], "response")},
                ]
                for i in range(n)
            ]
        if view.format == "text":
            raise TextFormatError("Rows in the `text` format have no instruction/response roles.")
        return [view._conversation(batch, i, rows[i]) for i in range(n)]

    # --- internals ----------------------------------------------------------------------------------------
    def _custom(self, batch, i, row, what):
        roles = ("instruction", "response") if what == "both" else (what,)
        parts = []
        for role in roles:
            cols = self.text_columns.get(role)
            if cols is None:
                raise TextFormatError(
                    f"`text_columns` names no {role!r} columns, needed for the {what!r} view; "
                    f"it has {sorted(self.text_columns)}."
                )
            parts.extend(_as_text(batch[c][i], row, c) for c in cols)
        return _join(*parts)

    def _conversation(self, batch, i, row) -> list[dict]:
        fmt = self.format
        if fmt == "alpaca":
            instr = _as_text(batch["instruction"][i], row, "instruction")
            extra = batch["input"][i] if "input" in batch else ""
            extra = "" if extra is None else _as_text(extra, row, "input")
            return [
                {"role": "user", "content": _join(instr, extra)},
                {"role": "assistant", "content": _as_text(batch["output"][i], row, "output")},
            ]
        if fmt == "prompt_response":
            return [
                {"role": "user", "content": _as_text(batch["prompt"][i], row, "prompt")},
                {"role": "assistant", "content": _as_text(batch["response"][i], row, "response")},
            ]
        if fmt == "prompt_completion":
            return _messages_or_text(batch["prompt"][i], row, "prompt", "user") + _messages_or_text(
                batch["completion"][i], row, "completion", "assistant"
            )
        if fmt == "messages":
            return _normalise_messages(batch["messages"][i], row, "messages", "role", "content")
        if fmt == "sharegpt":
            return _normalise_messages(batch["conversations"][i], row, "conversations", "from", "value")
        raise TextFormatError(f"Format {fmt!r} has no conversation view.")


def select_turns(conversation: list[dict], turns: str = "first") -> tuple[str, str]:
    """`(instruction, response)` of a normalised conversation under `turns` (`"first"`, `"all"` or `"last"`).

    Example:
    ```py
    >>> chat = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
    ...         {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]
    >>> select_turns(chat, "first"), select_turns(chat, "last"), select_turns(chat, "all")
    (('Q1', 'A1'), ('Q2', 'A2'), ('Q1\\n\\nQ2', 'A1\\n\\nA2'))
    ```
    """
    users = [i for i, m in enumerate(conversation) if m["role"] == "user"]
    if turns == "all" or not users:
        span = conversation if turns == "all" else []
        instr = [m["content"] for m in span if m["role"] == "user"]
        return "\n\n".join(instr), "\n\n".join(m["content"] for m in span if m["role"] == "assistant")
    at = users[0] if turns == "first" else users[-1]
    end = next((i for i in users if i > at), len(conversation))
    answer = [m["content"] for m in conversation[at + 1 : end] if m["role"] == "assistant"]
    return conversation[at]["content"], "\n\n".join(answer)


def _join(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)


def _as_text(value, row, column) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise TextFormatError(f"Row {row} has no text (None) in column {column!r}. Drop or fill such rows first.")
    raise TextFormatError(
        f"Row {row} has a {type(value).__name__} in column {column!r} where text was expected: {value!r:.80}."
    )


def _messages_or_text(value, row, column, role) -> list[dict]:
    if isinstance(value, list):
        return _normalise_messages(value, row, column, "role", "content")
    return [{"role": role, "content": _as_text(value, row, column)}]


def _normalise_messages(messages, row, column, role_key, content_key) -> list[dict]:
    if messages is None or not isinstance(messages, list):
        raise TextFormatError(f"Row {row}: column {column!r} must hold a list of messages, got {messages!r:.80}.")
    out = []
    for m in messages:
        if not isinstance(m, dict) or role_key not in m or content_key not in m:
            raise TextFormatError(
                f"Row {row}: each message in {column!r} needs keys {role_key!r} and {content_key!r}, got {m!r:.80}."
            )
        role = ROLES.get(str(m[role_key]).lower())
        if role is None:
            raise TextFormatError(
                f"Row {row}: unknown role {m[role_key]!r} in {column!r}. Known roles: {sorted(ROLES)}. Drop or "
                "rename the turns with that role first."
            )
        out.append({"role": role, "content": _as_text(m[content_key], row, f"{column}.{content_key}")})
    return out
