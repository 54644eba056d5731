"""The one async client every evaluator, judge, RAG pipeline and trainer uses.

Built on the official `openai` SDK (its own retries off): a concurrency cap,
bounded retries with backoff on 429/5xx/connection errors only, an optional
SQLite cache keyed by the full request, `generate_many` with a progress bar,
and the admin calls for adapters.
"""

from __future__ import annotations

import asyncio
import inspect
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
                 concurrency: int = 16, max_retries: int = 3, backoff: float = 0.5, timeout: float = 600.0,
                 cache_path: str | Path | None = None):
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.api_key = api_key or "EMPTY"
        self.admin_key = admin_key or api_key
        self.max_retries, self.backoff = max_retries, backoff
        self.openai = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=timeout,
                                         http_client=_http_client(timeout))
        self._sem = asyncio.Semaphore(concurrency)
        self.cache = ResponseCache(cache_path) if cache_path else None
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
        choices = sorted(data["choices"], key=lambda c: c["index"])
        texts = [c["text"] if kind == "completion" else (c["message"].get("content") or "") for c in choices]
        usage = data.get("usage") or {}
        ids = [c.get("token_ids") for c in choices]
        prompt_ids = data.get("prompt_token_ids") or (choices[0].get("prompt_token_ids") if choices else None)
        logprobs = [_sampled_logprobs(c.get("logprobs")) for c in choices]
        return Generation(prompt, texts, [c.get("finish_reason") for c in choices], usage.get("prompt_tokens", 0),
                          usage.get("completion_tokens", 0), time.perf_counter() - t0, meta.get("engine_model"),
                          meta.get("adapter_version"), meta.get("cached", False),
                          token_ids=ids if all(i is not None for i in ids) and ids else None,
                          prompt_token_ids=prompt_ids,
                          token_logprobs=logprobs if logprobs and all(lp is not None for lp in logprobs) else None)

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
        resp = await self._retry(lambda: self.openai.embeddings.create(model=model, input=inputs, **params))
        return [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]

    async def models(self) -> list[dict]:
        page = await self._retry(lambda: self.openai.models.list())
        return [m.model_dump() for m in page.data]

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
        raw = await self._retry(lambda: api.with_raw_response.create(**known, extra_body=extra or None))
        data = raw.parse().model_dump(exclude_unset=True)
        version = raw.headers.get("x-evalctl-adapter-version")
        meta = {"engine_model": raw.headers.get("x-evalctl-engine-model"),
                "adapter_version": int(version) if version else None}
        if key:
            self.cache.put(key, {"response": data, "meta": meta})
        return data, meta

    async def _retry(self, call):
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
        async with httpx.AsyncClient(base_url=self.base_url, timeout=600) as http:
            r = await http.request(method, path, json=body, headers=headers)
        if r.status_code >= 400:
            raise AdminError(r.status_code, _error_message(r))
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


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
