"""ChromaDB: the embedded persistent store (`--chroma-path`, the default) or a running
`chroma run` server (`--chroma-url`). Telemetry is always off: the machines this runs
on often have no network, and nothing should phone home.

Each chunk is one Chroma record: id `DOC_ID#N`, the chunk text as its document, and
metadata `doc_id`, `doc_sha256` (what makes ingest idempotent), `chunk`, `start`,
`source` plus the record's own scalar fields. The collection's metadata keeps the
embedder spec, so queries embed the same way ingest did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import BadCollectionName, CollectionNotFound, StoreUnavailable

DEFAULT_PATH = Path(".cache/rag/chroma")
EMBEDDER_KEY = "evalctl_embedder"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
PAGE = 2000  # records per get(): bounded memory per request on big collections


def check_name(name: str) -> str:
    if not _NAME.match(name or "") or ".." in name:
        raise BadCollectionName(f"bad collection name {name!r}: Chroma needs 3-512 characters from "
                                "[A-Za-z0-9._-], starting and ending with a letter or digit")
    return name


@dataclass
class StoreConfig:
    path: Path | None = None  # embedded persistent store
    url: str | None = None  # a running Chroma server (wins over path)

    def describe(self) -> str:
        return self.url or str(self.path or DEFAULT_PATH)


def _settings():
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def open_client(cfg: StoreConfig):
    import chromadb

    if cfg.url:
        u = urlparse(cfg.url if "://" in cfg.url else f"http://{cfg.url}")
        if not u.hostname:
            raise StoreUnavailable(f"bad --chroma-url {cfg.url!r}: expected http://HOST:PORT")
        port = u.port or (443 if u.scheme == "https" else 8000)
        try:
            return chromadb.HttpClient(host=u.hostname, port=port, ssl=u.scheme == "https", settings=_settings())
        except Exception as e:  # noqa: BLE001 - chromadb raises ValueError, httpx errors, ... for one cause
            raise StoreUnavailable(f"cannot reach the Chroma server at {cfg.url} ({_first_line(e)}); "
                                   "is `chroma run` up?") from None
    path = Path(cfg.path or DEFAULT_PATH)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=_settings())
    except Exception as e:  # noqa: BLE001
        raise StoreUnavailable(f"cannot open the Chroma store at {path}: {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class Store:
    def __init__(self, cfg: StoreConfig):
        self.cfg = cfg
        self.client = open_client(cfg)

    def _call(self, fn, *args, **kw):
        """Chroma calls with connection failures turned into one-line errors."""
        from chromadb.errors import NotFoundError

        try:
            return fn(*args, **kw)
        except NotFoundError:
            raise
        except Exception as e:
            if type(e).__name__ in ("ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError"):
                raise StoreUnavailable(f"lost the Chroma server at {self.cfg.describe()}: {_first_line(e)}") from None
            raise

    def names(self) -> list[str]:
        return sorted(c.name for c in self._call(self.client.list_collections))

    def get(self, name: str):
        from chromadb.errors import NotFoundError

        check_name(name)
        try:
            return self._call(self.client.get_collection, name, embedding_function=None)
        except NotFoundError:
            have = self.names()
            hint = f"; collections: {', '.join(have)}" if have else "; there are none yet (run `evalctl rag ingest`)"
            raise CollectionNotFound(f"no collection {name!r} in {self.cfg.describe()}{hint}") from None

    def get_or_create(self, name: str, embedder: str):
        check_name(name)
        col = self._call(self.client.get_or_create_collection, name, embedding_function=None,
                         configuration={"hnsw": {"space": "cosine"}}, metadata={EMBEDDER_KEY: embedder})
        return col

    def drop(self, name: str) -> None:
        self.get(name)  # the clear "no collection" error
        self._call(self.client.delete_collection, name)

    def records(self, col, include=("documents", "metadatas")) -> dict[str, list]:
        """Every record of a collection, paged; ids in Chroma's order."""
        out: dict[str, list] = {"ids": [], **{k: [] for k in include}}
        offset = 0
        while True:
            page = self._call(col.get, include=list(include), limit=PAGE, offset=offset)
            out["ids"].extend(page["ids"])
            for k in include:
                got = page[k]
                out[k].extend(list(got) if got is not None else [])  # embeddings come as an array
            if len(page["ids"]) < PAGE:
                return out
            offset += PAGE


def embedder_of(col) -> str | None:
    return (col.metadata or {}).get(EMBEDDER_KEY)


def summary(store: Store, name: str) -> dict[str, Any]:
    col = store.get(name)
    metas = store.records(col, include=("metadatas",))["metadatas"]
    return {"name": name, "chunks": len(metas), "documents": len({m.get("doc_id") for m in metas if m}),
            "embedder": embedder_of(col)}
