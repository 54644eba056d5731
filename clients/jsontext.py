"""JSON objects found in a model's free-text reply.

Judges (evaluators.judge) and RAG's claim/relevance graders (rag.metrics) both read verdicts
that models write as a JSON object, in ```json fences or buried in prose, sometimes as a
Python-style dict; the finder lives here so neither reaches into the other's internals.
"""

from __future__ import annotations

import ast
import json
import re

FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def json_objects(text: str):
    """Dicts found in the text: fenced blocks first, then every `{` that starts a valid object."""
    decoder = json.JSONDecoder()
    sources = [m.group(1) for m in FENCE.finditer(text)] + [text]
    for src in sources:
        for m in re.finditer(r"\{", src):
            try:
                obj, _ = decoder.raw_decode(src, m.start())
            except json.JSONDecodeError:
                end = src.find("}", m.start())
                try:  # Python-style dicts with single quotes
                    obj = ast.literal_eval(src[m.start():end + 1]) if end > 0 else None
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    continue
            if isinstance(obj, dict):
                yield obj
