"""The gateway under load and under clients that leave, against the session's real engine.

Load alternates with rounds sent straight to the engine, so the gateway's pooled connections sit
idle for as long as the engine's keep-alive: one reused just as the engine closed it used to
eject the only replica (503 for every request until the health check readmitted it). A client
that leaves mid-request is counted, not logged as a traceback, and its generation is aborted."""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import time

import httpx
import pytest

from tests.server.test_resilience import engine_url, metric

ROUNDS, N, CONCURRENCY = 3, 96, 16
KEEP_ALIVE = float(os.environ.get("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", 5))  # vLLM's uvicorn keep-alive
LONG = {"model": "tiny", "prompt": "Ann has", "max_tokens": 480, "ignore_eos": True, "temperature": 0}
# 128 x 480 tokens, about 20 s of decoding on the tiny model: long enough that the engine is still
# at it when the client leaves, even when a busy machine delays the first chunk by seconds.
ABANDONED = {**LONG, "n": 128, "temperature": 1.0, "seed": 0}
LEAVE_AFTER = 3.0  # seconds: leave by then even if the engine's counters have not shown it started

async def one_round(client: httpx.AsyncClient, url: str, headers: dict) -> collections.Counter:
    sem, codes = asyncio.Semaphore(CONCURRENCY), collections.Counter()

    async def one(i: int) -> None:
        async with sem:
            body = {"model": "tiny", "prompt": f"Ann has {i} apples", "max_tokens": 8}
            try:
                codes[(await client.post(f"{url}/v1/completions", json=body, headers=headers)).status_code] += 1
            except httpx.HTTPError as e:
                codes[type(e).__name__] += 1

    await asyncio.gather(*(one(i) for i in range(N)))
    return codes


@pytest.mark.engine
def test_alternating_load_gets_no_errors_and_ejects_nothing(gateway):
    engine, auth = engine_url(gateway), {"Authorization": f"Bearer {gateway.api_key}"}

    async def run():
        seen = []
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=64)) as c:
            for k in range(ROUNDS):
                seen.append(await one_round(c, gateway.url, auth))
                ended = time.monotonic()
                direct = await one_round(c, engine, {})
                assert direct == {200: N}, direct
                # Idle the gateway's connections to just around the engine's keep-alive, where a
                # connection is handed out while the engine closes it.
                await asyncio.sleep(max(0.0, KEEP_ALIVE - 0.1 + 0.1 * k - (time.monotonic() - ended)))
            seen.append(await one_round(c, gateway.url, auth))
        return seen

    seen = asyncio.run(run())
    assert seen == [{200: N}] * (ROUNDS + 1)
    with gateway.admin() as c:
        assert all(e["state"] == "up" for e in c.get("/v1/engines").json()["data"])


async def under_way(engine: str, before: float, started: asyncio.Event | None, since: float) -> bool:
    """True once the request has visibly started: for a stream, its first chunk reached the
    client; for a plain request, the engine's token count moved or LEAVE_AFTER seconds passed.
    The time limit is there because a busy engine can answer /metrics late (CI once saw the count
    move only after all 61,440 tokens were done); 3 s into a ~20 s generation the engine is still
    at it."""
    if started is not None:
        return started.is_set()
    if time.monotonic() - since >= LEAVE_AFTER:
        return True
    try:
        return await asyncio.to_thread(metric, engine, "vllm:generation_tokens_total", 1.0) >= before + 10
    except httpx.TimeoutException:
        return False


async def leave_once_started(engine: str, request, started: asyncio.Event | None) -> tuple[float, float]:
    """Start `request` and drop it once it is under way. Returns the tokens generated in all and
    the seconds the engine went on running after the client left. (vLLM's counters trail the
    engine on a busy machine: they say when it stopped, not how far it got when the client left.)"""
    before = await asyncio.to_thread(metric, engine, "vllm:generation_tokens_total")
    task, since = asyncio.ensure_future(request), time.monotonic()
    while not await under_way(engine, before, started, since):
        assert not task.done(), "the request finished before it could be cancelled"
        await asyncio.sleep(0.05)
    assert not task.done(), "the request finished before it could be cancelled"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    left = time.monotonic()
    while await asyncio.to_thread(metric, engine, "vllm:num_requests_running") > 0 and time.monotonic() - left < 60:
        await asyncio.sleep(0.1)
    went_on = time.monotonic() - left
    return await asyncio.to_thread(metric, engine, "vllm:generation_tokens_total") - before, went_on


def disconnects(gateway) -> float:
    return metric(gateway.url, "evalctl_client_disconnects_total")


@pytest.mark.engine
@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_client_that_leaves_frees_the_engine(gateway, stream):
    engine, auth = engine_url(gateway), {"Authorization": f"Bearer {gateway.api_key}"}
    log_from, gone_before = gateway.process.log_path.stat().st_size, disconnects(gateway)

    async def run():
        started = asyncio.Event()
        async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=120) as c:
            async def request():
                if not stream:
                    return await c.post("/v1/completions", json=ABANDONED)
                async with c.stream("POST", "/v1/completions", json={**ABANDONED, "stream": True}) as r:
                    async for line in r.aiter_lines():
                        started.set()

            tokens, went_on = await leave_once_started(engine, request(), started if stream else None)
            t0 = time.monotonic()
            after = await c.post("/v1/completions", json={**LONG, "max_tokens": 4})
            return tokens, went_on, after, time.monotonic() - t0

    tokens, went_on, after, seconds = asyncio.run(run())
    total = ABANDONED["n"] * ABANDONED["max_tokens"]
    seen_leaving = disconnects(gateway) - gone_before  # tells a gateway that missed the client leaving
    assert went_on < 5 and tokens < total, (
        f"the engine ran {went_on:.1f} s more for a client that left ({tokens:.0f} of {total} tokens; "
        f"the gateway counted {seen_leaving:.0f} disconnect(s))")
    assert after.status_code == 200 and seconds < 10  # not queued behind the abandoned generation
    assert seen_leaving == 1
    with open(gateway.process.log_path, errors="replace") as f:
        f.seek(log_from)
        log = f.read()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


@pytest.mark.engine
def test_client_that_leaves_while_sending_its_body_is_counted_quietly(gateway):
    log_from, gone_before = gateway.process.log_path.stat().st_size, disconnects(gateway)
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"authorization: Bearer " + gateway.api_key.encode() + b"\r\ncontent-length: 1000\r\n\r\n{\"mod")
        time.sleep(0.3)  # the gateway is reading the body by now
    deadline = time.monotonic() + 10
    while disconnects(gateway) == gone_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert disconnects(gateway) == gone_before + 1
    with open(gateway.process.log_path, errors="replace") as f:
        f.seek(log_from)
        log = f.read()
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-3000:]
    assert httpx.get(f"{gateway.url}/health").json()["status"] == "ok"
