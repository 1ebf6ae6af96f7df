"""Curated subset -> TRL's conversational prompt/completion rows, and the checks on how they tokenize.

Every format `TextView` reads as a conversation (Alpaca, prompt/response, prompt/completion, chat `messages`, ShareGPT
`conversations`) becomes one row `{"prompt": [every message before the last assistant turn], "completion": [the last
assistant turn]}`. TRL renders both with the tokenizer's chat template and, since the rows are prompt/completion,
computes the loss on the completion tokens only (`completion_only_loss=None` resolves to `True`).
"""

from datasets import Dataset, DatasetDict, Features, List, Value

from ..errors import EmptyDatasetError, InvalidParameterError, TextFormatError
from ..textviews import TextView
from ..utils.logging import get_logger

logger = get_logger(__name__)

_MESSAGES = List({"role": Value("string"), "content": Value("string")})
PROMPT_COMPLETION_FEATURES = Features({"prompt": _MESSAGES, "completion": _MESSAGES})

# Used only when the tokenizer has no chat template (base models). Plain text, so no token has to be added to the
# vocabulary; the assistant turn ends with the EOS token so the model learns to stop, and sits inside
# `{% generation %}` markers so `assistant_only_loss=True` also works. Rendering the prompt with
# `add_generation_prompt=True` gives a prefix of the rendered prompt + completion, which TRL's completion mask needs.
FALLBACK_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if not loop.first %}{{ '\\n\\n' }}{% endif %}"
    "{%- if message['role'] == 'system' %}{{ message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}{{ '### Response:\\n' }}"
    "{% generation %}{{ message['content'] }}{{ eos_token if eos_token else '' }}{% endgeneration %}"
    "{%- else %}{{ '### Instruction:\\n' + message['content'] }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{% if messages %}{{ '\\n\\n' }}{% endif %}{{ '### Response:\\n' }}{% endif %}"
)


def split_conversation(messages: list[dict]) -> tuple[list[dict], list[dict]] | None:
    """Split a conversation at its last assistant turn: `(prompt, [last assistant message])`.

    Messages after the last assistant turn are dropped. Returns `None` when there is no assistant turn, or nothing
    before it to prompt with.

    Args:
        messages (`list[dict]`): `{"role": ..., "content": ...}` messages in order.

    Example:
    ```py
    >>> split_conversation([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])
    ([{'role': 'user', 'content': '2+2?'}], [{'role': 'assistant', 'content': '4'}])
    ```
    """
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if not last:  # None (no assistant turn) or 0 (nothing before it)
        return None
    return messages[:last], [messages[last]]


class PromptCompletionConverter:
    """`Dataset.map(batched=True, with_indices=True)` callable: rows of any conversational format -> TRL's
    conversational prompt/completion rows. Rows without a usable assistant turn produce no output row.

    Args:
        view (`TextView`): a view built for the dataset's columns (`TextView.for_columns`).
    """

    def __init__(self, view: TextView):
        self.view = view

    def __call__(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        prompts, completions = [], []
        for conversation in self.view.conversations(batch, indices=indices):
            pair = split_conversation(conversation)
            if pair is not None:
                prompts.append(pair[0])
                completions.append(pair[1])
        return {"prompt": prompts, "completion": completions}


def to_prompt_completion(
    dataset: Dataset, text_columns=None, format: str | None = None, num_proc: int | None = None
) -> Dataset:
    """Convert a dataset to TRL's conversational prompt/completion format (columns `prompt` and `completion`).

    The prompt is every message before the last assistant turn (system and earlier turns included), the completion
    that last assistant turn. Rows with no assistant turn after a first message are skipped (logged); if no row is
    left, `TextFormatError` is raised. Other columns (embeddings, scores, ...) are dropped.

    Args:
        dataset (`datasets.Dataset`):
            Rows in any format `TextView` reads as a conversation: Alpaca, prompt/response, prompt/completion,
            chat `messages` or ShareGPT `conversations`.
        text_columns (`dict`, *optional*):
            `{"instruction": [...], "response": [...]}` to name the columns instead of detecting the format.
        format (`str`, *optional*):
            Force one of `hf_diverse.textviews.FORMATS` instead of detecting it.
        num_proc (`int`, *optional*):
            Processes for the `map`.

    Example:
    ```py
    >>> ds = Dataset.from_dict({"instruction": ["Add"], "input": ["2+2"], "output": ["4"]})
    >>> to_prompt_completion(ds)[0]
    {'prompt': [{'role': 'user', 'content': 'Add\\n\\n2+2'}], 'completion': [{'role': 'assistant', 'content': '4'}]}
    ```
    """
    if isinstance(dataset, DatasetDict):
        raise InvalidParameterError(
            f"Pass one split (e.g. `dataset['train']`), not a DatasetDict with splits {list(dataset)}."
        )
    if len(dataset) == 0:
        raise EmptyDatasetError("The subset to train on has no rows.")
    view = TextView.for_columns(dataset.column_names, format=format, text_columns=text_columns)
    if view.text_columns is None and view.format == "text":
        raise TextFormatError(
            f"The subset is in the `text` format (columns {dataset.column_names}): it has no instruction/response "
            "roles to build prompt/completion pairs from. Name them with "
            "`text_columns={'instruction': [...], 'response': [...]}`, or use a conversational format "
            "(Alpaca, prompt/response, prompt/completion, messages, ShareGPT)."
        )
    converted = dataset.map(
        PromptCompletionConverter(view),
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        features=PROMPT_COMPLETION_FEATURES,
        num_proc=num_proc,
        desc="Converting to prompt/completion",
    )
    skipped = len(dataset) - len(converted)
    if len(converted) == 0:
        raise TextFormatError(
            f"None of the {len(dataset)} rows (format {view.format!r}) has an assistant turn after a prompt, so "
            "there is no completion to train on."
        )
    if skipped:
        logger.warning("Skipped %d of %d rows with no assistant turn after a prompt.", skipped, len(dataset))
    return converted


def ensure_chat_template(tokenizer) -> str:
    """Give `tokenizer` hf_diverse's plain-text fallback template if it has none.

    Returns `"tokenizer"` when the tokenizer's own template is kept, `"fallback"` when `FALLBACK_CHAT_TEMPLATE`
    was set. The fallback renders `### Instruction:` / `### Response:` blocks separated by a blank line and ends each
    assistant turn with the EOS token.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the tokenizer to train with; its `chat_template` is set in place.

    Example:
    ```py
    >>> from transformers import AutoTokenizer
    >>> from hf_diverse.models import default_causal_lm_path
    >>> tokenizer = AutoTokenizer.from_pretrained(default_causal_lm_path())  # SmolLM2-135M-Instruct, offline
    >>> ensure_chat_template(tokenizer)  # an instruct model keeps its own
    'tokenizer'
    >>> tokenizer.chat_template = None  # as for a base model such as gpt2
    >>> ensure_chat_template(tokenizer)
    'fallback'
    ```
    """
    if getattr(tokenizer, "chat_template", None):
        return "tokenizer"
    logger.warning(
        "The tokenizer has no chat template; using hf_diverse's plain-text fallback "
        "(### Instruction: / ### Response:). It is saved with the model, so inference with `apply_chat_template` "
        "uses the same format."
    )
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return "fallback"


def _ids(tokenizer, messages, **kwargs) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def _completion_start(tokenizer, row) -> tuple[int, int]:
    """`(first completion token, total tokens)`, as TRL finds them: the common prefix of the tokenized prompt and
    prompt + completion."""
    prompt = _ids(tokenizer, row["prompt"], add_generation_prompt=True)
    full = _ids(tokenizer, row["prompt"] + row["completion"])
    start = 0
    for a, b in zip(prompt, full, strict=False):
        if a != b:
            break
        start += 1
    return start, len(full)


def check_max_length(rows: Dataset, tokenizer, max_length: int | None):
    """Raise `InvalidParameterError` when `max_length` leaves no completion token in any example.

    TRL truncates each tokenized example to `max_length` and drops the ones left with no completion token; when that
    is all of them, training would fail later with an unhelpful error. Stops at the first example that fits.

    Args:
        rows (`datasets.Dataset`): prompt/completion rows (`to_prompt_completion`).
        tokenizer (`PreTrainedTokenizerBase`): the tokenizer, with a chat template (`ensure_chat_template`).
        max_length (`int`, *optional*): the truncation length; `None` checks nothing.

    Example:
    ```py
    >>> from transformers import AutoTokenizer
    >>> from hf_diverse.models import default_causal_lm_path
    >>> tokenizer = AutoTokenizer.from_pretrained(default_causal_lm_path())  # SmolLM2-135M-Instruct, offline
    >>> rows = to_prompt_completion(Dataset.from_dict({"instruction": ["Add"], "input": ["2+2"], "output": ["4"]}))
    >>> check_max_length(rows, tokenizer, max_length=1024)  # a completion token fits: returns None
    >>> check_max_length(rows, tokenizer, max_length=8)
    Traceback (most recent call last):
    ...
    hf_diverse.errors.InvalidParameterError: max_length=8 is smaller than every example: ...
    ```
    """
    if max_length is None:
        return
    shortest = None
    for row in rows:
        start, total = _completion_start(tokenizer, row)
        if start < min(max_length, total):
            return
        shortest = start if shortest is None else min(shortest, start)
    raise InvalidParameterError(
        f"max_length={max_length} is smaller than every example: the shortest of the {len(rows)} prompts already "
        f"takes {shortest} tokens, so truncation would leave no completion token to train on. Use a max_length "
        f"above {shortest}, or max_length=None for no truncation."
    )
