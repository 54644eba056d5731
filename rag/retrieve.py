"""Search a collection: BM25 (lexical), dense (Chroma's cosine index), hybrid
(reciprocal-rank fusion of the two) and `lsa` (an offline dense baseline: TF-IDF on
character n-grams + truncated SVD, fitted on the collection itself; for benchmarks).

BM25 state is derived from the chunks stored in Chroma when a Retriever is built
(Chroma is the one source of truth, for the embedded store and the HTTP server
alike, so it can never be stale); one Retriever serves a whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .embed import Embedder, EndpointConfig, make_embedder, normalize_spec
from .errors import RagError
from .lexical import BM25
from .store import Store, embedder_of

MODES = ("bm25", "dense", "hybrid", "lsa")
RRF_K = 60  # the constant from Cormack et al. (2009); ranks past ~60 barely count
QUERY_BATCH = 64


@dataclass
class Hit:
    id: str
    doc_id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


def rrf(rankings: list[list[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion: sum over rankings of 1 / (k + rank), rank from 1; ties keep first-seen order."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Retriever:
    def __init__(self, store: Store, name: str, *, embedder: str | None = None,
                 endpoint: EndpointConfig | None = None):
        self.store, self.name = store, name
        self.col = store.get(name)
        recs = store.records(self.col)
        self.ids: list[str] = recs["ids"]
        self.texts: list[str] = [t or "" for t in recs["documents"]]
        self.metas: list[dict] = [m or {} for m in recs["metadatas"]]
        self.index = {cid: i for i, cid in enumerate(self.ids)}
        stored = embedder_of(self.col) or "none"
        if embedder and normalize_spec(embedder) != stored:
            raise RagError(f"collection {name!r} was embedded with {stored}, not {embedder}: "
                           "its vectors cannot be compared with another model's")
        self.embedder_spec, self.endpoint = stored, endpoint
        self._embedder: Embedder | None = None
        self._bm25: BM25 | None = None
        self._lsa = None

    @property
    def dense_available(self) -> bool:
        return self.embedder_spec != "none"

    def default_mode(self) -> str:
        return "hybrid" if self.dense_available else "bm25"

    @property
    def bm25(self) -> BM25:
        if self._bm25 is None:
            self._bm25 = BM25(self.texts)
        return self._bm25

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.embedder_spec, self.endpoint)
        return self._embedder

    def _hit(self, i: int, score: float) -> Hit:
        return Hit(self.ids[i], self.metas[i].get("doc_id", self.ids[i]), self.texts[i], float(score), self.metas[i])

    # -- rankings (chunk indices, best first) ------------------------------------------
    def _bm25_many(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        return [self.bm25.top(q, depth) for q in queries]

    def _dense_many(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        if not self.dense_available:
            raise RagError(f"collection {self.name!r} has no dense vectors (ingested with --embedder none); "
                           "use --mode bm25")
        out = []
        n = min(depth, len(self.ids))
        for i in range(0, len(queries), QUERY_BATCH):
            vectors = self.embedder.embed(queries[i:i + QUERY_BATCH])
            res = self.store._call(self.col.query, query_embeddings=vectors.tolist(), n_results=n,
                                   include=["distances"])
            for ids, dists in zip(res["ids"], res["distances"]):
                out.append([(self.index[c], 1.0 - d) for c, d in zip(ids, dists) if c in self.index])
        return out

    def _lsa_many(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        if self._lsa is None:
            from .lsa import LSA

            self._lsa = LSA(self.texts)
        return self._lsa.top_many(queries, depth)

    def search_many(self, queries: list[str], k: int = 3, mode: str | None = None,
                    depth: int | None = None) -> list[list[Hit]]:
        """The best `k` chunks per query. Hybrid fuses each method's top `depth` (default max(50, 5k))."""
        mode = mode or self.default_mode()
        if mode not in MODES:
            raise RagError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        if not self.ids or not queries:
            return [[] for _ in queries]
        depth = max(depth or 0, k, 50 if mode == "hybrid" else 0, 5 * k if mode == "hybrid" else 0)
        if mode == "hybrid":
            lex, den = self._bm25_many(queries, depth), self._dense_many(queries, depth)
            fused = [rrf([[i for i, _ in a], [i for i, _ in b]])[:k] for a, b in zip(lex, den)]
            return [[self._hit(i, s) for i, s in f] for f in fused]
        ranked = {"bm25": self._bm25_many, "dense": self._dense_many, "lsa": self._lsa_many}[mode](queries, depth)
        return [[self._hit(i, s) for i, s in r[:k]] for r in ranked]

    def search(self, query: str, k: int = 3, mode: str | None = None) -> list[Hit]:
        return self.search_many([query], k, mode)[0]
