"""The parts of the dataset card that say what the selection did to its input: the pool named as far as it can be
followed, what was left out, rescaled or cut on the way in, whether the strategy was approximate, and a Reproduce
block only when the pool can be loaded again (otherwise what is missing and how to fix it)."""

from pathlib import Path


def public_source_id(source: dict) -> str | None:
    """The source as it can be named publicly: Hub ids as they are, local files and folders by their name only."""
    sid = source.get("id")
    if not sid:
        return None
    if source.get("kind") in ("file", "save_to_disk", "hf_diverse subset"):
        return Path(str(sid).rstrip("/")).name
    return str(sid)


def pool_phrase(source: dict, pool_size: str) -> str:
    """`the 294-row pool [id](link)`, or what the pool was when it has no name (`a 20-row in-memory pool`)."""
    sid = public_source_id(source)
    if sid and source.get("loaded_fingerprint"):  # changed after it was loaded: not the source's rows
        return f"a {pool_size}-row pool derived from `{sid}` (changed after it was loaded)"
    if sid and source.get("kind") == "hub":
        return f"the {pool_size}-row pool [{sid}](https://huggingface.co/datasets/{sid})"
    if sid:
        return f"the {pool_size}-row pool `{sid}`"
    kind = source.get("kind")
    if kind == "stream":
        return f"the first {pool_size} rows of a stream (`IterableDataset`)"
    if kind and kind.endswith(" files"):
        return f"a {pool_size}-row pool built by `datasets` from local {kind}"
    return f"a {pool_size}-row in-memory pool"


def input_lines(record: dict) -> list[str]:
    """What happened to the input on the way in: empty rows, embedding norms, long texts."""
    inputs = record.get("inputs") or {}
    lines = []
    texts = inputs.get("texts") or {}
    if texts.get("checked"):
        view, empty = texts.get("view", "instruction"), texts.get("empty_rows", 0)
        if empty:
            done = (
                "kept among the candidates (`keep_empty=True`)"
                if texts.get("keep_empty")
                else "left out of the candidates (`keep_empty=True` keeps them)"
            )
            first = ", ".join(map(str, texts.get("empty_row_examples") or []))
            lines.append(f"{empty:,} of {record.get('pool_size')} rows have an empty {view}; they were {done}. "
                         f"First rows: {first}.")  # fmt: skip
        else:
            lines.append(f"No row has an empty {view} (multi-turn rows read with `turns={texts.get('turns')!r}`).")
    norms = inputs.get("embeddings") or {}
    if norms:
        spread = f"row norms {norms.get('norm_min', 0):.4g} to {norms.get('norm_max', 0):.4g}"
        if norms.get("rescaled_rows"):
            lines.append(
                f"The embedding column `{norms.get('column')}` is not unit-normalised ({spread}): "
                f"{norms['rescaled_rows']:,} of {norms.get('rows'):,} rows were rescaled to unit length on read, so "
                "every similarity is a cosine."
            )
        else:
            lines.append(f"The embedding column `{norms.get('column')}` is unit-normalised ({spread}).")
    long_texts = inputs.get("long_texts") or {}
    if long_texts:
        limit = long_texts.get("limit")
        if long_texts.get("count"):
            how = (
                "embedded whole, as the normalised mean of their windows (`long_text='chunks'`)"
                if long_texts.get("mode") == "chunks"
                else "cut: only their first tokens are embedded (`long_text='chunks'` embeds them whole)"
            )
            lines.append(
                f"{long_texts['count']:,} of {long_texts.get('rows'):,} embedded texts "
                f"({100 * long_texts.get('fraction', 0):.1f}%) are longer than the encoder's {limit}-token limit "
                f"(longest: {long_texts.get('longest_tokens')} tokens); they were {how}."
            )
        else:
            lines.append(f"No embedded text is longer than the encoder's {limit}-token limit.")
    return lines


def strategy_note(details: dict) -> str | None:
    """A choice line when the strategy that ran is approximate (and why `auto` chose it)."""
    if details.get("exact") is not False:
        return None
    strategy = details.get("strategy")
    why = (
        " It was chosen by `strategy='auto'` because the N x N similarity matrix did not fit in memory."
        if details.get("strategy_requested") == "auto"
        else ""
    )
    what = details.get("approximation") or "an approximation of greedy facility location"
    return (
        f"This run used strategy `{strategy}`, which is approximate: {what}.{why} The objective reported "
        "(`facility_location`, `coverage`) is the exact one of the rows picked."
    )


def reproduce_context(record: dict) -> dict:
    """The template values of the Reproduce section."""
    reproduce = record.get("reproduce") or {}
    if not record.get("method"):
        return {"reproduce_python": None, "reproduce_cli": None, "reproduce_missing": None, "reproduce_call": None}
    python = reproduce.get("python") if reproduce.get("reloadable", True) else None
    missing = None
    if python is None:
        why = reproduce.get("missing") or "the record does not say where the pool came from"
        fix = (
            reproduce.get("fix")
            or "save the pool with `pool.save_to_disk('pool/')` and select from `load_pool('pool/')`"
        )
        missing = f"The pool cannot be loaded again, so no code here can give the same rows: {why}. To make a " \
                  f"selection reproducible, {fix}."  # fmt: skip
    return {
        "reproduce_python": python,
        "reproduce_cli": reproduce.get("cli") if python else None,
        "reproduce_missing": missing,
        "reproduce_call": reproduce.get("call"),
    }
