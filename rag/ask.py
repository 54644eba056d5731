"""`evalctl rag ask`: retrieve, then answer through the endpoint citing chunk ids."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .embed import EndpointConfig
from .errors import RagError
from .prompting import ask_messages, cited_ids
from .rerank import Reranker
from .retrieve import Hit, Retriever


@dataclass
class Answer:
    question: str
    text: str
    cited: list[str]
    hits: list[Hit]
    mode: str
    model: str
    finish_reason: str | None = None
    rerank: str | None = None

    def as_dict(self) -> dict:
        return {"question": self.question, "answer": self.text, "cited": self.cited, "model": self.model,
                "mode": self.mode, "rerank": self.rerank, "finish_reason": self.finish_reason,
                "retrieved": [{"id": h.id, "doc_id": h.doc_id, "score": h.score, "text": h.text} for h in self.hits]}


async def _generate(endpoint: EndpointConfig, model: str, messages: list[dict], max_tokens: int, timeout: float):
    from clients.client import EvalClient
    from evaluators.runner import RunError, check_models

    async with EvalClient(endpoint.base_url, endpoint.api_key, max_retries=1, backoff=0.2, timeout=timeout) as c:
        try:
            await check_models(c, [model])
        except RunError as e:
            raise RagError(str(e)) from None
        g = await c.generate(model, messages, temperature=0, max_tokens=max_tokens, cache=False)
    if g.error:
        raise RagError(f"generation with {model!r} failed: {g.error}")
    return g


def ask(retriever: Retriever, question: str, model: str, endpoint: EndpointConfig, *, k: int = 3,
        mode: str | None = None, max_tokens: int = 256, max_chars: int | None = None,
        timeout: float = 120.0, reranker: Reranker | None = None) -> Answer:
    if not question.strip():
        raise RagError("the question is empty")
    mode = mode or retriever.default_mode()
    # before the event loop: an endpoint embedder and the reranker run their own
    hits = reranker.search_many(retriever, [question], k, mode)[0] if reranker else retriever.search(question, k, mode)
    g = asyncio.run(_generate(endpoint, model, ask_messages(question, hits, max_chars), max_tokens, timeout))
    text = g.texts[0] if g.texts else ""
    return Answer(question, text, cited_ids(text, hits), hits, mode, model,
                  g.finish_reasons[0] if g.finish_reasons else None, reranker.spec if reranker else None)
