"""RAG metrics. Retrieval: recall@k and MRR against gold document ids. Answers (via an
LLM judge): faithfulness, the share of the answer's claims the retrieved context supports,
and context relevance, the share of retrieved passages relevant to the question.
Everything here is pure: prompts in, parsed numbers out (None when a reply is unreadable).
"""

from __future__ import annotations

import ast
from typing import Any

from clients.jsontext import json_objects


def unit_of(doc_id: str, sep: str | None) -> str:
    """The gold-level id of a document: all of it, or the part before `sep`
    (criminal-law keys "264-0-0" -> article "264" with sep "-")."""
    return doc_id.split(sep, 1)[0] if sep else doc_id


def ranked_units(doc_ids: list[str], sep: str | None) -> list[str]:
    """Distinct gold-level units in first-retrieved order (several chunks of one unit count once)."""
    out: list[str] = []
    for d in doc_ids:
        u = unit_of(d, sep)
        if u not in out:
            out.append(u)
    return out


def recall_at(units: list[str], gold: set[str], k: int) -> float | None:
    return len(gold & set(units[:k])) / len(gold) if gold else None


def reciprocal_rank(units: list[str], gold: set[str]) -> float | None:
    if not gold:
        return None
    return next((1.0 / r for r, u in enumerate(units, start=1) if u in gold), 0.0)


def retrieval_scores(units: list[str], gold: set[str], ks: tuple[int, ...]) -> dict[str, float | None]:
    out = {f"recall@{k}": recall_at(units, gold, k) for k in ks}
    out["mrr"] = reciprocal_rank(units, gold)
    return out


# -- judge prompts ----------------------------------------------------------------------
FAITHFULNESS = """You check an ANSWER against the CONTEXT it was written from.
Split the answer into its factual claims. For each claim decide whether the context supports it.
Reply with JSON only: {{"claims": [{{"claim": "...", "supported": true or false}}, ...]}}
An answer with no factual claims gets {{"claims": []}}.

CONTEXT:
{context}

ANSWER:
{answer}"""

RELEVANCE = """For the QUESTION, decide for each numbered PASSAGE whether it is relevant (helps answer it).
Reply with JSON only: {{"relevant": [true or false for each passage, in order]}}

QUESTION:
{question}

PASSAGES:
{passages}"""


def faithfulness_messages(context: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": FAITHFULNESS.format(context=context, answer=answer)}]


def relevance_messages(question: str, passages: list[str]) -> list[dict[str, str]]:
    body = "\n".join(f"{i}. {p}" for i, p in enumerate(passages, start=1))
    return [{"role": "user", "content": RELEVANCE.format(question=question, passages=body)}]


def _objects(text: str):
    """JSON objects in the reply (the judges' shared finder), then the outermost `{...}` read as a
    Python literal: judges write nested single-quoted dicts that the shared finder cuts short."""
    yield from json_objects(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            obj = ast.literal_eval(text[start:end + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return
        if isinstance(obj, dict):
            yield obj


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "yes", "supported", "relevant", "y", "1"):
            return True
        if v in ("false", "no", "unsupported", "not supported", "irrelevant", "not relevant", "n", "0"):
            return False
    return None


def parse_faithfulness(text: str | None) -> dict[str, Any]:
    """{"faithfulness": supported/claims (None for no claims), "claims": n, "supported": m}
    or {"parse_error": True, "raw": text}."""
    for obj in _objects(text or ""):
        claims = obj.get("claims")
        if not isinstance(claims, list):
            continue
        flags = [_truthy(c.get("supported")) if isinstance(c, dict) else _truthy(c) for c in claims]
        if any(f is None for f in flags):
            continue
        n, m = len(flags), sum(flags)
        return {"faithfulness": m / n if n else None, "claims": n, "supported": m}
    return {"parse_error": True, "raw": text or ""}


def parse_relevance(text: str | None, n_passages: int) -> dict[str, Any]:
    """{"context_relevance": relevant/passages, "relevant": [bools]} or a parse error; a reply
    with another number of verdicts than passages is not trusted."""
    for obj in _objects(text or ""):
        flags = obj.get("relevant")
        if not isinstance(flags, list) or len(flags) != n_passages:
            continue
        bools = [_truthy(f) for f in flags]
        if any(b is None for b in bools) or not bools:
            continue
        return {"context_relevance": sum(bools) / len(bools), "relevant": bools}
    return {"parse_error": True, "raw": text or ""}
