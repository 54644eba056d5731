"""Idempotent ingest: a document whose text, metadata and chunking are unchanged adds
nothing; a changed one has all its old chunks replaced; new ones are added.

The fingerprint stored on every chunk (`doc_sha256`) covers the text, the record's
metadata and the chunk size/overlap, so re-chunking with other settings re-ingests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from .chunking import chunk_text
from .embed import Embedder
from .errors import CollectionNotFound, RagError
from .loaders import Document
from .store import Store, embedder_of

BATCH = 256


@dataclass
class IngestStats:
    documents: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    empty: int = 0
    chunks_added: int = 0
    chunks_deleted: int = 0
    empty_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.documents} documents: {self.added} new, {self.replaced} changed, {self.unchanged} unchanged, "
                f"{self.empty} empty; {self.chunks_added} chunks added, {self.chunks_deleted} removed")


def fingerprint(doc: Document, size: int, overlap: int) -> str:
    return hashlib.sha256(f"{doc.sha256}|{size}|{overlap}".encode()).hexdigest()


def open_for_ingest(store: Store, name: str, embedder: Embedder):
    try:
        col = store.get(name)
    except CollectionNotFound:
        return store.get_or_create(name, embedder.spec)
    have = embedder_of(col)
    if have and have != embedder.spec:
        raise RagError(f"collection {name!r} was embedded with {have}; ingest with --embedder {have} "
                       f"(or drop it and re-ingest with {embedder.spec})")
    return col


def existing_fingerprints(store: Store, col) -> dict[str, str]:
    metas = store.records(col, include=("metadatas",))["metadatas"]
    return {m["doc_id"]: m.get("doc_sha256", "") for m in metas if m and "doc_id" in m}


def _chunk_records(doc: Document, fp: str, size: int, overlap: int) -> list[tuple[str, str, dict]]:
    out = []
    for c in chunk_text(doc.text, size, overlap):
        meta = {**doc.metadata, "doc_id": doc.id, "doc_sha256": fp, "chunk": c.index, "start": c.start,
                "source": doc.source}
        out.append((f"{doc.id}#{c.index}", c.text, meta))
    return out


def ingest(store: Store, name: str, docs: list[Document], embedder: Embedder, *, size: int = 500,
           overlap: int = 50, progress: bool = True) -> IngestStats:
    col = open_for_ingest(store, name, embedder)
    have = existing_fingerprints(store, col)
    stats = IngestStats(documents=len(docs))
    pending: list[tuple[str, str, dict]] = []
    for doc in docs:
        fp = fingerprint(doc, size, overlap)
        if have.get(doc.id) == fp:
            stats.unchanged += 1
            continue
        if doc.id in have:
            old = store._call(col.get, where={"doc_id": doc.id}, include=[])["ids"]
            store._call(col.delete, ids=old)
            stats.chunks_deleted += len(old)
            stats.replaced += 1
        records = _chunk_records(doc, fp, size, overlap)
        if not records:
            stats.empty += 1
            stats.empty_ids.append(doc.id)
            continue
        stats.added += doc.id not in have
        pending.extend(records)
    bar = tqdm(total=len(pending), desc=f"embedding {name}", unit="chunk", disable=not progress or not pending)
    try:
        for i in range(0, len(pending), BATCH):
            batch = pending[i:i + BATCH]
            vectors = embedder.embed([text for _, text, _ in batch])
            store._call(col.add, ids=[r[0] for r in batch], documents=[r[1] for r in batch],
                        metadatas=[r[2] for r in batch], embeddings=vectors.tolist())
            stats.chunks_added += len(batch)
            bar.update(len(batch))
    finally:
        bar.close()
    return stats
