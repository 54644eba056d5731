"""The one async client every evaluator, judge, RAG pipeline and trainer uses.

Built on the official `openai` SDK (its own retries off): a concurrency cap,
bounded retries with backoff on 429/5xx/connection errors only, an optional
SQLite cache keyed by the full request, `generate_many` with a progress bar,
and the admin calls for adapters.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types import Completion
from openai.types.chat import ChatCompletion
from tqdm.auto import tqdm

from .cache import ResponseCache, request_key

# Requests kept in flight when the endpoint does not say what its engine runs at once (a plain
# vLLM server): vLLM's CPU server default max_num_seqs; its GPU defaults (256-1024) queue the rest.
FALLBACK_CONCURRENCY = 128
RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
Prompt = str | list[dict[str, Any]]  # plain text (completions) or chat messages


@dataclass
class Generation:
    """The outcome of one prompt in `generate_many`; failures are recorded, not raised."""

    prompt: Prompt
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    engine_model: str | None = None
    adapter_version: int | None = None
    cached: bool = False
    error: str | None = None
    # vLLM's token ids, present when the request asked for them (`return_token_ids=True`):
    # trainers need the exact sampled tokens, which re-tokenizing the text does not always give back.
    token_ids: list[list[int]] | None = None
    prompt_token_ids: list[int] | None = None
    # The engine's log-probability of each sampled token, per choice, when the request asked for
    # `logprobs` (GRPO corrects its update for the engine/trainer mismatch with them).
    token_logprobs: list[list[float | None]] | None = None


class EvalClient:
    def __init__(self, base_url: str, api_key: str | None = None, *, admin_key: str | None = None,
                 concurrency: int | None = 16, max_retries: int = 3, backoff: float = 0.5, timeout: float = 600.0,
                 cache_path: str | Path | None = None):
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.api_key = api_key or "EMPTY"
        self.admin_key = admin_key or api_key
        self.max_retries, self.backoff = max_retries, backoff
        self.openai = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=timeout,
                                         http_client=_http_client(timeout))
        # None: the cap is what fills the engine serving the first request's model (resolve_concurrency).
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency) if concurrency else None
        self._sem_lock = asyncio.Lock()
        self.cache = ResponseCache(cache_path) if cache_path else None
        # One admin connection pool per client: a new httpx client per call built a TLS context
        # each time (~50 ms, even for http URLs), most of a GRPO step's adapter push.
        self._admin_http: httpx.AsyncClient | None = None
        self._known = {
            "chat": set(inspect.signature(self.openai.chat.completions.create).parameters),
            "completion": set(inspect.signature(self.openai.completions.create).parameters),
        }

    async def __aenter__(self) -> "EvalClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.openai.close()
        if self._admin_http is not None:
            await self._admin_http.aclose()
        if self.cache:
            self.cache.close()

    # -- generation -------------------------------------------------------------
    async def chat(self, model: str, messages: list[dict], *, cache: bool = True, **params) -> ChatCompletion:
        data, _ = await self._create("chat", {"model": model, "messages": messages, **params}, cache)
        return ChatCompletion.model_validate(data)

    async def complete(self, model: str, prompt: str | list, *, cache: bool = True, **params) -> Completion:
        data, _ = await self._create("completion", {"model": model, "prompt": prompt, **params}, cache)
        return Completion.model_validate(data)

    async def generate(self, model: str, prompt: Prompt, *, n: int = 1, cache: bool = True, **params) -> Generation:
        kind = "completion" if isinstance(prompt, str) else "chat"
        body = {"model": model, ("prompt" if kind == "completion" else "messages"): prompt, "n": n, **params}
        t0 = time.perf_counter()
        try:
            data, meta = await self._create(kind, body, cache)
        except openai.OpenAIError as e:
            return Generation(prompt, latency=time.perf_counter() - t0, error=_describe(e))
        return _generation(prompt, kind, data, meta, time.perf_counter() - t0)

    async def generate_batch(self, model: str, prompts: list[str], *, n: int = 1, cache: bool = True,
                             **params) -> list[Generation]:
        """`generate` for several plain-text prompts in one /v1/completions request (a list
        `prompt`): one request instead of len(prompts) through the client, the gateway and vLLM's
        API server, which share the engine's CPU on a CPU box. Cached per prompt under the key
        `generate` uses; a failed batch falls back to one request per prompt, so one bad prompt
        (too long, say) fails alone."""
        bodies = [{"model": model, "prompt": p, "n": n, **params} for p in prompts]
        keys = [request_key("completion", b) if self.cache is not None and cache else None for b in bodies]
        out: list[Generation | None] = [None] * len(prompts)
        for i, key in enumerate(keys):
            if key and (hit := self.cache.get(key)) is not None:
                out[i] = _generation(prompts[i], "completion", hit["response"], {**hit["meta"], "cached": True}, 0.0)
        todo = [i for i, g in enumerate(out) if g is None]
        if todo:
            t0 = time.perf_counter()
            # Token ids give each prompt its own token counts (usage is the batch's total).
            body = {**bodies[todo[0]], "prompt": [prompts[i] for i in todo], "return_token_ids": True}
            try:
                data, meta = await self._create("completion", body, use_cache=False)
                if len(data["choices"]) != n * len(todo):
                    raise ValueError(f"{len(data['choices'])} choices for {len(todo)} prompts x {n}")
            except (openai.OpenAIError, ValueError, KeyError):
                singles = await asyncio.gather(*(self.generate(model, prompts[i], n=n, cache=cache, **params)
                                                 for i in todo))
                for i, g in zip(todo, singles):
                    out[i] = g
                return out
            latency = time.perf_counter() - t0
            choices = sorted(data["choices"], key=lambda c: c["index"])  # prompt-major: index = i * n + j
            for k, i in enumerate(todo):
                own = choices[k * n:(k + 1) * n]
                usage = {"prompt_tokens": len(own[0].get("prompt_token_ids") or []),
                         "completion_tokens": sum(len(c.get("token_ids") or []) for c in own)}
                # what a one-prompt request would have returned (the ids were asked for the counts only)
                mine = [{**{f: v for f, v in c.items() if f not in ("token_ids", "prompt_token_ids")}, "index": j}
                        for j, c in enumerate(own)]
                single = {**{f: v for f, v in data.items() if f not in ("choices", "usage")}, "choices": mine,
                          "usage": usage}
                if keys[i]:
                    self.cache.put(keys[i], {"response": single, "meta": meta})
                out[i] = _generation(prompts[i], "completion", single, meta, latency)
        return out

    async def generate_many(self, model: str, prompts: list[Prompt], *, n: int = 1, cache: bool = True,
                            progress: bool | str = True, **params) -> list[Generation]:
        """Generate for every prompt concurrently (up to the cap), in input order."""
        bar = tqdm(total=len(prompts), desc=progress if isinstance(progress, str) else model,
                   disable=not progress, unit="prompt")

        async def one(p: Prompt) -> Generation:
            g = await self.generate(model, p, n=n, cache=cache, **params)
            bar.update()
            return g

        try:
            return list(await asyncio.gather(*(one(p) for p in prompts)))
        finally:
            bar.close()

    async def embed(self, model: str, inputs: list[str], **params) -> list[list[float]]:
        resp = await self._retry(lambda: self.openai.embeddings.create(model=model, input=inputs, **params), model)
        return [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]

    async def rerank(self, model: str, query: str, documents: list[str], **params) -> list[float]:
        """The relevance score of each document to `query` (in `documents` order) from the endpoint's
        /v1/rerank (vLLM: a cross-encoder, or the cosine of a pooling model's embeddings)."""
        body = {"model": model, "query": query, "documents": documents, **params}
        data = await self._retry(lambda: self.openai.post("/rerank", body=body, cast_to=object), model)
        scores = {r["index"]: float(r["relevance_score"]) for r in data["results"]}
        return [scores[i] for i in range(len(documents))]

    async def models(self) -> list[dict]:
        page = await self._retry(lambda: self.openai.models.list())
        return [m.model_dump() for m in page.data]

    async def engine_concurrency(self, model: str) -> int:
        """Requests that fill the engine serving `model`: the `max_num_seqs` evalctl's gateway
        reports in /v1/models (summed over replicas), else FALLBACK_CONCURRENCY. A fixed 16 left
        a 128-sequence CPU engine mostly idle: 10.1 s vs 3.1 s for 256 GSM8K prompts."""
        try:  # one plain attempt: this must not take the cap it is sizing
            cards = {m.id: m.model_dump() for m in (await self.openai.models.list()).data}
        except openai.OpenAIError:
            return FALLBACK_CONCURRENCY
        card = cards.get(model) or {}
        seqs = card.get("max_num_seqs") or (cards.get(card.get("parent") or "") or {}).get("max_num_seqs")
        return int(seqs) if isinstance(seqs, int) and seqs > 0 else FALLBACK_CONCURRENCY

    async def resolve_concurrency(self, model: str | None) -> int:
        """The cap, sizing it from the engine serving `model` if the client was made with None."""
        if self._sem is None:
            async with self._sem_lock:
                if self._sem is None:
                    self.concurrency = await self.engine_concurrency(model) if model else FALLBACK_CONCURRENCY
                    self._sem = asyncio.Semaphore(self.concurrency)
        return self.concurrency

    # -- admin ------------------------------------------------------------------
    async def load_adapter(self, name: str, path: str | Path, base_model: str | None = None) -> str:
        body = {"lora_name": name, "lora_path": str(Path(path).resolve())}
        if base_model:
            body["base_model"] = base_model
        return await self._admin("POST", "/load_lora_adapter", body)

    async def unload_adapter(self, name: str) -> str:
        return await self._admin("POST", "/unload_lora_adapter", {"lora_name": name})

    async def list_adapters(self) -> list[dict]:
        return (await self._admin("GET", "/adapters")).get("data", [])

    # -- internals --------------------------------------------------------------
    async def _create(self, kind: str, body: dict, use_cache: bool) -> tuple[dict, dict]:
        key = request_key(kind, body) if self.cache is not None and use_cache else None
        if key and (hit := self.cache.get(key)) is not None:
            return hit["response"], {**hit["meta"], "cached": True}
        api = self.openai.chat.completions if kind == "chat" else self.openai.completions
        known = {k: v for k, v in body.items() if k in self._known[kind]}
        extra = {k: v for k, v in body.items() if k not in self._known[kind]}  # vLLM's own sampling fields
        raw = await self._retry(lambda: api.with_raw_response.create(**known, extra_body=extra or None), body["model"])
        data = _body(raw)
        version = raw.headers.get("x-evalctl-adapter-version")
        meta = {"engine_model": raw.headers.get("x-evalctl-engine-model"),
                "adapter_version": int(version) if version else None}
        if key:
            self.cache.put(key, {"response": data, "meta": meta})
        return data, meta

    async def _retry(self, call, model: str | None = None):
        if self._sem is None:
            await self.resolve_concurrency(model)
        for attempt in range(self.max_retries + 1):
            try:
                async with self._sem:
                    return await call()
            except RETRYABLE:
                if attempt == self.max_retries:
                    raise
                await asyncio.sleep(self.backoff * 2**attempt * (0.5 + random.random()))

    async def _admin(self, method: str, path: str, body: dict | None = None):
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        if self._admin_http is None:
            self._admin_http = httpx.AsyncClient(base_url=self.base_url, timeout=600)
        try:
            r = await self._admin_http.request(method, path, json=body, headers=headers)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            # a pooled connection the server closed just as it was reused: once more on a new one
            r = await self._admin_http.request(method, path, json=body, headers=headers)
        if r.status_code >= 400:
            raise AdminError(r.status_code, _error_message(r))
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def _body(raw) -> dict:
    """The response's JSON as sent: what `raw.parse().model_dump(exclude_unset=True)` gives (vLLM's
    extra fields such as token_ids included), without building the SDK's pydantic objects first,
    which cost ~2 ms per GRPO rollout request of 8 completions with log-probs (0.4 ms here)."""
    try:
        data = json.loads(raw.content)
    except ValueError:
        data = None
    return data if isinstance(data, dict) else raw.parse().model_dump(exclude_unset=True)


def _generation(prompt: Prompt, kind: str, data: dict, meta: dict, latency: float) -> Generation:
    choices = sorted(data["choices"], key=lambda c: c["index"])
    texts = [c["text"] if kind == "completion" else (c["message"].get("content") or "") for c in choices]
    usage = data.get("usage") or {}
    ids = [c.get("token_ids") for c in choices]
    prompt_ids = data.get("prompt_token_ids") or (choices[0].get("prompt_token_ids") if choices else None)
    logprobs = [_sampled_logprobs(c.get("logprobs")) for c in choices]
    return Generation(prompt, texts, [c.get("finish_reason") for c in choices], usage.get("prompt_tokens", 0),
                      usage.get("completion_tokens", 0), latency, meta.get("engine_model"),
                      meta.get("adapter_version"), meta.get("cached", False),
                      token_ids=ids if all(i is not None for i in ids) and ids else None,
                      prompt_token_ids=prompt_ids,
                      token_logprobs=logprobs if logprobs and all(lp is not None for lp in logprobs) else None)


def _sampled_logprobs(logprobs: dict | None) -> list[float | None] | None:
    """The sampled tokens' log-probs from a completions (`token_logprobs`) or chat (`content`) choice."""
    if not logprobs:
        return None
    if logprobs.get("token_logprobs") is not None:
        return list(logprobs["token_logprobs"])
    if logprobs.get("content") is not None:
        return [t.get("logprob") for t in logprobs["content"]]
    return None


def _http_client(timeout: float):
    """The SDK on aiohttp's transport: its default httpx pool cost ~10% more time per request
    than lm-eval's aiohttp client when client and server share two cores."""
    try:
        return openai.DefaultAioHttpClient(timeout=timeout)
    except RuntimeError:  # the `aiohttp` extra is missing: the SDK's default client works too
        return None


class AdminError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _error_message(r: httpx.Response) -> str:
    try:
        return r.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return r.text[:300]


def _describe(e: openai.OpenAIError) -> str:
    status = getattr(e, "status_code", None)
    body = getattr(e, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    return f"{type(e).__name__}({status}): {msg or e}" if status else f"{type(e).__name__}: {e}"
