"""`--rerank endpoint:MODEL`: the retriever's candidates re-ordered by the endpoint's /v1/rerank.

The retriever returns `DEPTH` times more chunks than are kept, a cross-encoder (or a pooling
model's cosine, which vLLM serves on the same route) scores each against the query, and the best
`k` stay. Candidates cost one rerank request per query, so reranking pays where the scorer reads
query and passage together and first-stage ranks are noisy; where the retriever already puts the
gold first it can only move it down (`rag eval` shows both rows side by side).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from .embed import EndpointConfig, _api_message
from .errors import RagError
from .retrieve import Hit, Retriever

DEPTH = 4  # candidates retrieved per chunk kept


class RerankError(RagError):
    """The rerank model is unknown, its engine lacks the route, or the endpoint cannot be reached."""


def parse_spec(spec: str) -> str:
    """The model of `endpoint:MODEL` (the only kind: reranking runs where the models are served)."""
    kind, sep, model = (spec or "").strip().partition(":")
    if kind != "endpoint" or not sep or not model:
        raise RerankError(f"bad --rerank {spec!r}: use endpoint:MODEL (a cross-encoder or pooling model "
                          "the endpoint serves)")
    return model


class Reranker:
    def __init__(self, spec: str, endpoint: EndpointConfig, depth: int = DEPTH):
        self.spec, self.model, self.endpoint, self.depth = spec, parse_spec(spec), endpoint, depth

    def rerank_many(self, queries: list[str], candidates: list[list[Hit]], k: int) -> list[list[Hit]]:
        """Each query's candidates re-ordered by relevance, best `k` kept, `score` the reranker's."""
        scored = asyncio.run(self._score_all(queries, candidates))
        out = []
        for hits, scores in zip(candidates, scored):
            order = sorted(range(len(hits)), key=lambda i: -scores[i])  # stable: ties keep the retriever's order
            out.append([replace(hits[i], score=scores[i]) for i in order[:k]])
        return out

    def search_many(self, retriever: Retriever, queries: list[str], k: int, mode: str | None = None) -> list[list[Hit]]:
        return self.rerank_many(queries, retriever.search_many(queries, k * self.depth, mode), k)

    async def _score_all(self, queries: list[str], candidates: list[list[Hit]]) -> list[list[float]]:
        import openai

        from clients.client import EvalClient

        async with EvalClient(self.endpoint.base_url, self.endpoint.api_key, concurrency=self.endpoint.concurrency,
                              max_retries=2, backoff=0.3) as client:
            async def one(query: str, hits: list[Hit]) -> list[float]:
                if not hits:
                    return []
                # truncate: a long chunk must not fail the request on a short-context scorer
                return await client.rerank(self.model, query, [h.text for h in hits], truncate_prompt_tokens=-1)

            try:
                return list(await asyncio.gather(*(one(q, hs) for q, hs in zip(queries, candidates))))
            except openai.APIConnectionError:
                raise RerankError(f"cannot reach {client.base_url} to rerank (is `evalctl serve` running? "
                                  "set --base-url)") from None
            except openai.OpenAIError as e:
                raise RerankError(f"reranking with {self.model!r} failed: {_api_message(e)}") from None


def make_reranker(spec: str | None, endpoint: EndpointConfig) -> Reranker | None:
    return Reranker(spec, endpoint) if spec else None
