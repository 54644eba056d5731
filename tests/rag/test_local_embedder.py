"""Dense retrieval with a local sentence-transformers model: the tiny test model's directory
(random weights; sentence-transformers adds mean pooling to a plain transformers model)."""

from __future__ import annotations

import pytest

from rag.embed import make_embedder
from rag.errors import RagError
from rag.ingest import ingest
from rag.loaders import Document
from rag.retrieve import Retriever
from rag.store import Store, StoreConfig

DOCS = [Document("a", "Ann has three apples and buys four more.", "t"),
        Document("b", "盗窃公私财物，数额较大的，处三年以下有期徒刑。", "t"),
        Document("c", "Drunk driving is dangerous driving.", "t")]


def test_local_sentence_transformers_dense_search(tiny_model, tmp_path):
    store = Store(StoreConfig(path=tmp_path / "db"))
    emb = make_embedder(f"st:{tiny_model}")
    vecs = emb.embed(["x", "a much longer text " * 100])
    assert vecs.shape == (2, 128)
    stats = ingest(store, "local-st", DOCS, emb, progress=False)
    assert stats.chunks_added == 3
    r = Retriever(store, "local-st")
    r._embedder = emb  # the same loaded model; building it again costs seconds
    for doc in DOCS:  # identical text: cosine 1 even with random weights
        [hit] = r.search(doc.text, 1, "dense")
        assert hit.doc_id == doc.id and hit.score == pytest.approx(1.0, abs=1e-4)
    assert [h.doc_id for h in r.search(DOCS[1].text, 3, "hybrid")][0] == "b"
    with pytest.raises(RagError, match="was embedded with st:"):
        Retriever(store, "local-st", embedder="endpoint:tiny-embed")
