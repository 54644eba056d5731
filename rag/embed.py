"""Embedders, named by a spec string that is stored with each collection:

- `endpoint:MODEL`: the endpoint's `/v1/embeddings` (a pooling model in serve.yaml), via `EvalClient`;
- `st:MODEL_OR_PATH`: sentence-transformers in this process (`st:BAAI/bge-base-en-v1.5` is the default);
- `none`: no dense vectors (BM25 only; the collection stores a 1-d placeholder vector).

Vectors are L2-normalised so Chroma's cosine space and a plain dot product agree.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from .errors import EmbedderError

DEFAULT_EMBEDDER = "st:BAAI/bge-base-en-v1.5"
PLACEHOLDER = [1.0]  # Chroma needs a vector per record; lexical-only collections store this one


@dataclass
class EndpointConfig:
    base_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    batch_size: int = 64
    concurrency: int = 4


def normalize_spec(spec: str | None) -> str:
    spec = (spec or DEFAULT_EMBEDDER).strip()
    if spec == "none":
        return spec
    kind, sep, name = spec.partition(":")
    if not sep or kind not in ("endpoint", "st") or not name:
        raise EmbedderError(f"bad embedder {spec!r}: use endpoint:MODEL, st:MODEL_OR_PATH or none")
    return spec


def _normalized(vectors) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        arr = arr.reshape(len(arr), -1)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


class Embedder:
    spec: str

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    @property
    def dense(self) -> bool:
        return True


class NoEmbedder(Embedder):
    spec = "none"

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.tile(np.asarray(PLACEHOLDER, dtype=np.float32), (len(texts), 1))

    @property
    def dense(self) -> bool:
        return False


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, spec: str, batch_size: int = 32):
        self.spec, self.batch_size = spec, batch_size
        self.model = _load_st(spec.partition(":")[2])
        if self.model.max_seq_length is None or self.model.max_seq_length > 8192:
            self.model.max_seq_length = 512  # tokenizers without a limit would embed whole books at once

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vecs = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return _normalized(vecs)


class EndpointEmbedder(Embedder):
    """Synchronous wrapper over `EvalClient.embed`: callers are CLI steps, not coroutines.
    Long texts are truncated by the server to the model's length (`truncate_prompt_tokens=-1`)."""

    def __init__(self, spec: str, endpoint: EndpointConfig):
        self.spec, self.model, self.endpoint = spec, spec.partition(":")[2], endpoint

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return _normalized(asyncio.run(self._embed_all(texts)))

    async def _embed_all(self, texts: list[str]) -> list[list[float]]:
        import openai

        from clients.client import EvalClient

        size = self.endpoint.batch_size
        batches = [texts[i:i + size] for i in range(0, len(texts), size)]
        async with EvalClient(self.endpoint.base_url, self.endpoint.api_key, concurrency=self.endpoint.concurrency,
                              max_retries=2, backoff=0.3) as client:
            try:
                parts = await asyncio.gather(*(client.embed(self.model, b, extra_body={"truncate_prompt_tokens": -1})
                                               for b in batches))
            except openai.APIConnectionError:
                raise EmbedderError(f"cannot reach {client.base_url} for embeddings (is `evalctl serve` running? "
                                    "set --base-url)") from None
            except openai.OpenAIError as e:
                raise EmbedderError(f"embedding with {self.model!r} failed: {_api_message(e)}") from None
        return [v for part in parts for v in part]


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect: offline, huggingface_hub's own retries take ~90 s to give up."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hf_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return True  # cannot tell: let sentence-transformers try
    try:
        return any(isinstance(try_to_load_from_cache(name, f), str) for f in ("modules.json", "config.json"))
    except Exception:  # noqa: BLE001 - an id the hub would refuse: let the loader say so
        return True


def _load_st(name: str):
    """A local path as is; a hub id from the local cache first, then the hub if it can be reached."""
    from pathlib import Path

    def fail(e: Exception | None, why: str = ""):
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200] if e else why
        return EmbedderError(f"cannot load sentence-transformers model {name!r}: {first} "
                             "(pass a local path, --embedder endpoint:MODEL or --embedder none)")

    if not Path(name).expanduser().exists() and not _in_hf_cache(name) and not _hub_reachable():
        # Checked before importing sentence-transformers (seconds of imports for a known answer).
        raise fail(None, "not in the local Hugging Face cache and the hub cannot be reached (offline)")
    from sentence_transformers import SentenceTransformer

    try:
        if Path(name).expanduser().exists():
            return SentenceTransformer(str(Path(name).expanduser()), device="cpu")
        try:
            return SentenceTransformer(name, device="cpu", local_files_only=True)
        except Exception:  # noqa: BLE001 - not in the cache (or broken there): try the hub below
            if not _hub_reachable():
                raise fail(None, "not in the local Hugging Face cache and the hub cannot be reached (offline)") \
                    from None
        return SentenceTransformer(name, device="cpu")
    except EmbedderError:
        raise
    except Exception as e:  # noqa: BLE001 - hub/format errors all mean "cannot load it"
        raise fail(e) from None


def _api_message(e: Exception) -> str:
    body = getattr(e, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    return (msg or str(e)).splitlines()[0][:300]


def make_embedder(spec: str | None, endpoint: EndpointConfig | None = None) -> Embedder:
    spec = normalize_spec(spec)
    if spec == "none":
        return NoEmbedder()
    if spec.startswith("endpoint:"):
        return EndpointEmbedder(spec, endpoint or EndpointConfig())
    return SentenceTransformerEmbedder(spec)
