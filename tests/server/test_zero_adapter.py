"""The all-zero adapter only where an engine needs it: the start-up self-test, what the gateway
reports about it, and the engine capacity clients size their concurrency from."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from clients import EvalClient
from clients.client import FALLBACK_CONCURRENCY
from server import selftest
from server.engine import VLLM_CPU_MAX_NUM_SEQS, EngineProcess, engine_max_num_seqs
from server.settings import EngineConfig


class FakeEngine:
    """vLLM's adapter and completion endpoints with `slots` adapter slots. `bug`: as in vLLM CPU
    0.32, base requests answered while a LoRA request runs get the last slot's adapter, so they
    come out wrong once every slot is filled. `inert`: the adapter changes nothing."""

    def __init__(self, bug: bool = False, inert: bool = False, slots: int = 1):
        self.bug, self.inert, self.slots = bug, inert, slots
        self.lora_running = 0
        self.loaded: set[str] = set()
        self.requests: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(request.url.path)
        if request.url.path == "/v1/load_lora_adapter":
            self.loaded.add(body["lora_name"])
            return httpx.Response(200, text="ok")
        if request.url.path == "/v1/unload_lora_adapter":
            self.loaded.discard(body["lora_name"])
            return httpx.Response(200, text="ok")
        if body["model"] != "tiny":
            assert body["model"] in self.loaded
            self.lora_running += 1
            try:
                await asyncio.sleep(0.05)  # still running when the base requests arrive
            finally:
                self.lora_running -= 1
            text = f" base {body['prompt']}" if self.inert else f" lora {body['prompt']}"
        else:
            await asyncio.sleep(0)
            wrong = self.bug and self.lora_running and len(self.loaded) >= self.slots
            text = f" wrong {body['prompt']}" if wrong else f" base {body['prompt']}"
        return httpx.Response(200, json={"choices": [{"index": 0, "text": text}]})


def decide(engine: FakeEngine, tiny_model, tmp_path, forced=None, max_loras=1) -> selftest.ZeroAdapterDecision:
    async def go():
        async with httpx.AsyncClient(base_url="http://engine", transport=httpx.MockTransport(engine)) as client:
            return await selftest.decide(forced, client, "tiny", tiny_model, tmp_path / "scratch", 8, max_loras)
    return asyncio.run(go())


def test_self_test_turns_the_zero_adapter_on_where_base_outputs_change(tiny_model, tmp_path):
    engine = FakeEngine(bug=True)
    d = decide(engine, tiny_model, tmp_path)
    assert d.enabled and "changed when batched with LoRA requests" in d.reason and "wrong" in d.reason
    assert engine.loaded == set() and not (tmp_path / "scratch").exists()  # test adapter unloaded and deleted


def test_self_test_fills_every_adapter_slot(tiny_model, tmp_path):
    """The CI failure this came from: the bug shows only once the last of 4 slots holds an
    adapter, so a self-test that loads one adapter passes a broken engine."""
    assert not decide(FakeEngine(bug=True, slots=4), tiny_model, tmp_path / "one", max_loras=1).enabled
    engine = FakeEngine(bug=True, slots=4)
    d = decide(engine, tiny_model, tmp_path / "all", max_loras=4)
    assert d.enabled and "wrong" in d.reason and engine.loaded == set()
    assert not decide(FakeEngine(slots=4), tiny_model, tmp_path / "ok", max_loras=4).enabled


def test_self_test_leaves_it_off_where_base_outputs_hold(tiny_model, tmp_path):
    engine = FakeEngine()
    d = decide(engine, tiny_model, tmp_path)
    assert not d.enabled and d.reason.startswith("self-test:") and "identical" in d.reason
    assert engine.requests.count("/v1/completions") == len(selftest.PROMPTS) * (1 + 3 * selftest.ROUNDS)
    assert engine.loaded == set()


def test_self_test_that_proves_nothing_keeps_it_on(tiny_model, tmp_path):
    """An adapter that changes no output means the LoRA path was not exercised."""
    d = decide(FakeEngine(inert=True), tiny_model, tmp_path)
    assert d.enabled and "could not run" in d.reason


@pytest.mark.parametrize("forced", [True, False])
def test_config_forces_the_decision_without_a_self_test(tiny_model, tmp_path, forced):
    engine = FakeEngine(bug=True)
    d = decide(engine, tiny_model, tmp_path, forced=forced)
    assert d.enabled is forced and "in the config" in d.reason and engine.requests == []


def test_engines_report_the_decision_and_base_traffic_follows_it(gateway):
    """The session gateway runs with the defaults: its engine's self-test decided."""
    with gateway.admin() as admin:
        rows = {r["engine"]: r for r in admin.get("/v1/engines").json()["data"]}
    zero = rows["tiny"]["zero_adapter"]
    assert isinstance(zero["enabled"], bool) and zero["reason"].startswith("self-test:")
    assert rows["tiny-embed"]["zero_adapter"] is None  # no LoRA on a pooling engine: nothing to decide
    r = gateway.openai().completions.with_raw_response.create(model="tiny", prompt="Ann has", max_tokens=2)
    assert r.headers["x-evalctl-engine-model"] == ("__evalctl_base__" if zero["enabled"] else "tiny")
    log = gateway.process.log_path.read_text()
    state = "through" if zero["enabled"] else "not through"
    assert f"engine tiny: base traffic {state} the all-zero adapter: {zero['reason']}" in log


def test_models_report_engine_capacity_and_clients_fill_it(gateway):
    """vLLM's CPU server runs 128 sequences at once; /v1/models says so, and a client made
    without a concurrency sizes its cap from it (adapters share their base engine's)."""
    cards = {m["id"]: m for m in httpx.get(f"{gateway.url}/v1/models",
                                           headers={"Authorization": f"Bearer {gateway.api_key}"}).json()["data"]}
    assert cards["tiny"]["max_num_seqs"] == cards["tiny-alias"]["max_num_seqs"] == VLLM_CPU_MAX_NUM_SEQS

    async def go(model):
        async with EvalClient(gateway.url, gateway.api_key, concurrency=None) as c:
            await c.generate(model, "Ann has", max_tokens=2)
            return c.concurrency
    assert asyncio.run(go("tiny")) == VLLM_CPU_MAX_NUM_SEQS


def test_client_concurrency_without_a_reported_capacity():
    """A plain vLLM server lists no max_num_seqs: the fallback; an explicit cap always wins."""
    def models(request):
        return httpx.Response(200, json={"object": "list", "data": [
            {"id": "m", "object": "model", "created": 0, "owned_by": "vllm"},
            {"id": "a", "object": "model", "created": 0, "owned_by": "vllm", "parent": "b"},
            {"id": "b", "object": "model", "created": 0, "owned_by": "vllm", "max_num_seqs": 7}]})

    async def go(concurrency, model):
        async with EvalClient("http://x", concurrency=concurrency) as c:
            await c.openai.close()
            c.openai = c.openai.with_options(http_client=httpx.AsyncClient(transport=httpx.MockTransport(models)))
            return await c.resolve_concurrency(model)
    assert asyncio.run(go(None, "m")) == FALLBACK_CONCURRENCY
    assert asyncio.run(go(None, "a")) == 7  # an adapter: its base engine's capacity
    assert asyncio.run(go(5, "b")) == 5


def test_engine_capacity_comes_from_the_config_or_vllm_args():
    assert engine_max_num_seqs(EngineConfig(model="m", max_num_seqs=64)) == 64
    assert engine_max_num_seqs(EngineConfig(model="m", extra_args=["--max-num-seqs", "32"])) == 32
    assert engine_max_num_seqs(EngineConfig(model="m", extra_args=["--max-num-seqs=48"])) == 48
    assert engine_max_num_seqs(EngineConfig(upstream=["http://x"])) is None
    cmd = EngineProcess(EngineConfig(model="m", max_num_seqs=64), 0, Path("/tmp/x.log")).command()
    assert cmd[cmd.index("--max-num-seqs") + 1] == "64"
