"""Context blocks and prompts: the same rendering for `rag ask` and `evalctl run --rag`,
so a chunk id the model cites can be traced back to what it was shown."""

from __future__ import annotations

import re
from typing import Any

from .retrieve import Hit

ASK_SYSTEM = ("Answer the question using only the numbered context passages. Cite the passages you use by "
              "their id in square brackets, e.g. [doc.txt#0]. If the context does not contain the answer, say so.")
_CITE = re.compile(r"\[([^\[\]\n]{1,300})\]")


def context_block(hits: list[Hit], max_chars: int | None = None) -> str:
    """`[chunk-id] text` lines; `max_chars` caps each passage (small models have short windows)."""
    lines = []
    for h in hits:
        text = h.text if max_chars is None or len(h.text) <= max_chars else h.text[:max_chars] + "…"
        lines.append(f"[{h.id}] {text}")
    return "\n".join(lines)


def ask_messages(question: str, hits: list[Hit], max_chars: int | None = None) -> list[dict[str, str]]:
    user = f"Context:\n{context_block(hits, max_chars)}\n\nQuestion: {question}"
    return [{"role": "system", "content": ASK_SYSTEM}, {"role": "user", "content": user}]


def cited_ids(answer: str, hits: list[Hit]) -> list[str]:
    """Chunk ids the answer cites, among those it was shown, in order of first citation.
    `[a#0, b#1]` and `[a#0][b#1]` both count."""
    shown = {h.id for h in hits}
    out: list[str] = []
    for m in _CITE.finditer(answer or ""):
        for part in re.split(r"[,;，；]\s*", m.group(1)):
            part = part.strip()
            if part in shown and part not in out:
                out.append(part)
    return out


def augment_prompt(prompt: str | list[dict[str, Any]], hits: list[Hit], max_chars: int | None = None):
    """Put retrieved context in front of a task prompt: inside the last user message of a chat
    prompt (system messages stay first), or ahead of a plain completion prompt."""
    block = f"Context (retrieved passages):\n{context_block(hits, max_chars)}\n\n"
    if isinstance(prompt, str):
        return block + prompt
    messages = [dict(m) for m in prompt]
    for m in reversed(messages):
        if m.get("role") == "user":
            m["content"] = block + str(m.get("content") or "")
            return messages
    return [{"role": "user", "content": block.rstrip()}] + messages
