"""Training-file checks, with the trainers' own loaders so that a file accepted on
upload is a file the worker can train on (and the first bad line is named the same way)."""

from __future__ import annotations

from pathlib import Path

from trainers.data import detect_format, load_preferences, load_sft, read_rows
from trainers.errors import DataError

PREFERENCE = "preference"
REINFORCEMENT = "reinforcement"  # OpenAI's RFT rows: `messages` ending in a user turn, plus the grader's fields


def _is_preference(rec) -> bool:
    return isinstance(rec, dict) and "chosen" in rec and "rejected" in rec


def _is_prompt_only(rec) -> bool:
    msgs = rec.get("messages") if isinstance(rec, dict) else None
    return isinstance(msgs, list) and bool(msgs) and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "user"


def load_prompts(path: Path) -> list[dict]:
    """Reinforcement rows: each a dict whose `messages` end with a user turn; the whole row is the
    graders' `item` namespace. The first bad line is named as the trainers' loaders name it."""
    out = []
    for where, rec in read_rows(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("messages"), list) or not rec["messages"]:
            raise DataError(f"{where}: a reinforcement record needs a non-empty `messages` list")
        for i, m in enumerate(rec["messages"]):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise DataError(f"{where}: `messages[{i}]` needs string `role` and `content`")
        if rec["messages"][-1]["role"] != "user":
            raise DataError(f"{where}: the last message of a reinforcement record must be the user's (the model "
                            "answers it)")
        out.append(rec)
    return out


def inspect_file(path: Path, label: str) -> tuple[str, int]:
    """(format, records) of a training file; a DataError names `label` and the first bad line.

    The first record decides the kind: preference pairs (chosen/rejected) or an SFT format."""
    try:
        rows = read_rows(path)
        if _is_prompt_only(rows[0][1]):
            return REINFORCEMENT, len(load_prompts(path))
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
    if method == "reinforcement" and fmt != REINFORCEMENT:
        return f"`{param}` holds {fmt} records; a reinforcement job needs `messages` ending in a user turn, " \
               "with the fields its grader reads"
    if method != "reinforcement" and fmt == REINFORCEMENT:
        return f"`{param}` holds prompts without answers (reinforcement records); use method reinforcement"
    if method == "dpo" and fmt != PREFERENCE:
        return f"`{param}` holds {fmt} records; a dpo job needs preference pairs {{prompt, chosen, rejected}}"
    if method == "supervised" and fmt == PREFERENCE:
        return f"`{param}` holds preference pairs; a supervised job needs Alpaca, ShareGPT, messages or " \
               "prompt/completion records (use method dpo for preference pairs)"
    return None
