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
        from sentence_transformers import SentenceTransformer

        self.spec, self.batch_size = spec, batch_size
        name = spec.partition(":")[2]
        try:
            self.model = SentenceTransformer(name, device="cpu")
        except Exception as e:  # noqa: BLE001 - hub/offline/format errors all mean "cannot load it"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise EmbedderError(f"cannot load sentence-transformers model {name!r}: {first} "
                                "(offline? pass a local path, --embedder endpoint:MODEL or --embedder none)") from None
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
