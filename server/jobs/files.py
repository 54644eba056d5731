"""Training-file checks, with the trainers' own loaders so that a file accepted on
upload is a file the worker can train on (and the first bad line is named the same way)."""

from __future__ import annotations

from pathlib import Path

from trainers.data import detect_format, load_preferences, load_sft, read_rows
from trainers.errors import DataError

PREFERENCE = "preference"


def _is_preference(rec) -> bool:
    return isinstance(rec, dict) and "chosen" in rec and "rejected" in rec


def inspect_file(path: Path, label: str) -> tuple[str, int]:
    """(format, records) of a training file; a DataError names `label` and the first bad line.

    The first record decides the kind: preference pairs (chosen/rejected) or an SFT format."""
    try:
        rows = read_rows(path)
        if _is_preference(rows[0][1]):
            return PREFERENCE, len(load_preferences(path))
        if detect_format(rows[0][1]) is None and any(_is_preference(r) for _, r in rows):
            return PREFERENCE, len(load_preferences(path))
        examples, fmt = load_sft(path)
        return fmt, len(examples)
    except DataError as e:
        raise DataError(str(e).replace(str(path), label)) from None


def check_for_method(fmt: str | None, method: str, param: str) -> str | None:
    """Why a file of format `fmt` cannot feed a `method` job (None: it can)."""
    if method == "dpo" and fmt != PREFERENCE:
        return f"`{param}` holds {fmt} records; a dpo job needs preference pairs {{prompt, chosen, rejected}}"
    if method == "supervised" and fmt == PREFERENCE:
        return f"`{param}` holds preference pairs; a supervised job needs Alpaca, ShareGPT, messages or " \
               "prompt/completion records (use method dpo for preference pairs)"
    return None
