"""The shared client: bounded retries on 429/5xx only, and the on-disk cache.

Retries are checked against a small local HTTP server that fails on purpose (vLLM
cannot be made to answer 429 on demand); the cache against the real gateway."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from clients import EvalClient
from server.engine import free_port

COMPLETION = {"id": "c1", "object": "text_completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "text": "ok", "finish_reason": "stop", "logprobs": None}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.fixture(scope="module")
def flaky():
    """Answers each model's first `fail` requests with its status code, then succeeds."""
    app, calls = FastAPI(), {}
    plan = {"m429": (429, 2), "m503": (503, 2), "m400": (400, 5), "mdown": (503, 99)}

    @app.post("/v1/completions")
    async def completions(body: dict):
        model = body["model"]
        calls[model] = calls.get(model, 0) + 1
        status, fail = plan[model]
        if calls[model] <= fail:
            return JSONResponse({"error": {"message": "nope", "type": "x", "param": None, "code": None}}, status)
        return COMPLETION

    @app.get("/v1/adapters")
    async def adapters(request: Request):
        calls.setdefault("admin_ports", []).append(request.client.port)  # one port per TCP connection
        return {"data": []}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", calls
    server.should_exit = True
    thread.join(5)


@pytest.mark.parametrize("model", ["m429", "m503"])
def test_retries_transient_errors_then_succeeds(flaky, model):
    url, calls = flaky
    gen = asyncio.run(_generate(url, model, max_retries=3))
    assert gen.error is None and gen.texts == ["ok"] and calls[model] == 3


def test_does_not_retry_client_errors(flaky):
    url, calls = flaky
    gen = asyncio.run(_generate(url, "m400", max_retries=3))
    assert calls["m400"] == 1 and gen.error.startswith("BadRequestError(400)")


def test_retries_are_bounded(flaky):
    url, calls = flaky
    gen = asyncio.run(_generate(url, "mdown", max_retries=2))
    assert calls["mdown"] == 3 and "503" in gen.error


async def _generate(url, model, max_retries):
    async with EvalClient(url, max_retries=max_retries, backoff=0.01) as c:
        return await c.generate(model, "hi", max_tokens=1)


def test_cache_makes_a_rerun_free(gateway, tmp_path):
    async def run():
        async with EvalClient(gateway.url, gateway.api_key, cache_path=tmp_path / "c.sqlite", concurrency=4) as c:
            return await c.generate_many("tiny", ["a", "b", "c"], max_tokens=4, temperature=0, progress=False)

    first, second = asyncio.run(run()), asyncio.run(run())
    assert [g.cached for g in first] == [False] * 3 and [g.cached for g in second] == [True] * 3
    assert [g.texts for g in first] == [g.texts for g in second]


def test_generate_many_keeps_order_and_n(gateway):
    async def run():
        async with EvalClient(gateway.url, gateway.api_key, concurrency=2) as c:
            many = await c.generate_many("tiny", ["x", [{"role": "user", "content": "y"}]], n=3, max_tokens=3,
                                         temperature=1.0, progress=False)
            single = await c.generate("tiny", "x", n=3, max_tokens=3, temperature=1.0, seed=1)
            return many, single

    many, single = asyncio.run(run())
    assert [g.prompt for g in many] == ["x", [{"role": "user", "content": "y"}]]
    assert all(len(g.texts) == 3 and g.completion_tokens == 9 for g in many)
    # base traffic reaches the engine as the base model, or as the zero adapter where the gateway's
    # start-up self-test found that engine needs it (server/selftest.py)
    zero = httpx.get(f"{gateway.url}/v1/engines", headers={"Authorization": f"Bearer {gateway.admin_key}"}
                     ).json()["data"][0]["zero_adapter"]
    assert single.engine_model == ("__evalctl_base__" if zero["enabled"] else "tiny")


def test_admin_calls(gateway):
    async def run():
        async with EvalClient(gateway.url, gateway.api_key, admin_key=gateway.admin_key) as c:
            await c.load_adapter("client-a", gateway.adapters["A"])
            names = [a["name"] for a in await c.list_adapters()]
            gen = await c.generate("client-a", "x", max_tokens=2)
            await c.unload_adapter("client-a")
            return names, gen

    names, gen = asyncio.run(run())
    assert "client-a" in names and gen.adapter_version >= 1 and gen.engine_model.startswith("client-a@v")


def test_admin_calls_share_one_connection(flaky):
    """A GRPO run pushes an adapter every step: a new connection (and TLS context) per admin call
    cost ~50 ms of each push."""
    url, calls = flaky

    async def run():
        async with EvalClient(url, admin_key="k") as c:
            for _ in range(3):
                assert await c.list_adapters() == []

    asyncio.run(run())
    assert len(calls["admin_ports"]) == 3 and len(set(calls["admin_ports"])) == 1


def test_wrong_key_fails_fast(gateway):
    async def run():
        async with EvalClient(gateway.url, "wrong", max_retries=3) as c:
            return await c.generate("tiny", "x", max_tokens=1)

    gen = asyncio.run(run())
    assert gen.error.startswith("AuthenticationError(401)")
    with pytest.raises(openai.AuthenticationError):
        asyncio.run(_chat_raises(gateway.url))


async def _chat_raises(url):
    async with EvalClient(url, "wrong") as c:
        await c.chat("tiny", [{"role": "user", "content": "x"}])
