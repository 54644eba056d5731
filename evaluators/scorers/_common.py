"""Helpers every scorer shares: TRL's two completion shapes, aligned gold columns,
and the tag patterns several tasks use."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def completion_text(completion: Any) -> str:
    """The assistant text of one completion: a str, a message dict, or a list of
    chat messages (TRL's conversational format; assistant turns are joined)."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        parts = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in parts if m.get("role", "assistant") == "assistant"] or parts
        return "".join(str(m.get("content") or "") for m in assistant)
    return str(completion)


def gold_column(columns: dict[str, Any], name: str, n: int) -> list[Any]:
    """Column `name` aligned with n completions; all None when the column is absent."""
    values = columns.get(name)
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return [values] * n  # a scalar given for a single completion
    values = list(values)
    return values + [None] * (n - len(values)) if len(values) < n else values[:n]


def per_sample(completions: Sequence[Any], fn: Callable[..., float | None], columns: dict[str, Any],
               names: Sequence[str]) -> list[float | None]:
    """Apply fn(text, *gold) to each completion; an exception scores 0.0, never raises."""
    n = len(completions)
    golds = [gold_column(columns, name, n) for name in names]
    out: list[float | None] = []
    for i, completion in enumerate(completions):
        try:
            out.append(fn(completion_text(completion), *(g[i] for g in golds)))
        except Exception:  # odd model output must never break a training step
            out.append(0.0)
    return out


def nfkc(text: str) -> str:
    """Full-width letters, digits and punctuation to ASCII (Ａ→A, ｜→|, １２→12)."""
    return unicodedata.normalize("NFKC", text)


def answer_tag(text: str) -> str | None:
    """Content of the last <answer>…</answer>, stripped; None without the tags."""
    found = _ANSWER_RE.findall(text or "")
    return found[-1].strip() if found else None


def after_think(text: str) -> str:
    """The text after the last </think> (the whole text when there is none)."""
    text = text if isinstance(text, str) else ""
    return text.rsplit("</think>", 1)[-1] if "</think>" in text else text


def true_within(fn: Callable[..., bool], *args: Any, timeout_s: float, name: str = "scorer-timeout") -> bool:
    """`fn(*args)` in a daemon thread, False on timeout or any error. A thread, not SIGALRM:
    scorers run in worker threads, where alarms are not theirs to set (sympy can hang for minutes)."""
    result: list[bool] = []

    def run() -> None:
        try:
            result.append(bool(fn(*args)))
        except Exception:
            result.append(False)

    worker = threading.Thread(target=run, daemon=True, name=name)
    worker.start()
    worker.join(timeout_s)
    return bool(result and result[0])
