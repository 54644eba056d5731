"""Retrieval-augmented generation on ChromaDB, as a client of the evalctl endpoint.

`loaders` (files and records -> documents), `chunking` (sentence-aware character
chunks), `store` (Chroma: embedded persistent store or a `chroma run` server),
`embed` (endpoint `/v1/embeddings`, local sentence-transformers, or none),
`lexical` (CJK-aware BM25), `retrieve` (bm25 / dense / hybrid RRF), `ingest`
(idempotent), `ask`, `augment` (context for `evalctl run --rag`), `metrics` and
`evaluate` (`evalctl rag eval`), `cli` (`evalctl rag ...`).
"""
