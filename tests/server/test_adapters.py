"""LoRA hot-swap against the real engine: load, use, replace in place, unload, snapshots."""

from __future__ import annotations

import asyncio
import shutil
import threading

import httpx
import openai
import pytest

from server.lora_files import write_lora_adapter

PROMPTS = [f"{n} has {i} pens and" for i, n in enumerate(["Ann", "Bob", "Carla", "Dev", "Emma", "Farid"])]


def greedy(client, model, prompt=PROMPTS[0], max_tokens=16) -> str:
    return client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0).choices[0].text


def load(gateway, name, path, **extra):
    with gateway.admin() as admin:
        return admin.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path), **extra})


def unload(gateway, name):
    with gateway.admin() as admin:
        return admin.post("/v1/unload_lora_adapter", json={"lora_name": name})


def adapters(gateway) -> dict[str, dict]:
    with gateway.admin() as admin:
        return {a["name"]: a for a in admin.get("/v1/adapters").json()["data"]}


@pytest.fixture(autouse=True)
def _leave_adapters_as_found(gateway):
    """The session server is shared: whatever a test here loads is unloaded after it, so no later
    test (in any module) depends on what ran before it."""
    before = set(adapters(gateway))
    yield
    for name in set(adapters(gateway)) - before:
        assert unload(gateway, name).status_code == 200, name
    assert set(adapters(gateway)) == before


@pytest.fixture
def reference_adapters(gateway):
    """The session adapters A and B, loaded by the test that compares against them."""
    for name in ("A", "B"):
        assert load(gateway, name, gateway.adapters[name]).status_code == 200


@pytest.fixture
def work_adapter(gateway, tmp_path):
    """A user's training output directory, loaded as `work`; unloaded after the test."""
    path = shutil.copytree(gateway.adapters["A"], tmp_path / "out")
    yield path
    unload(gateway, "work")


def test_adapter_outputs_differ_from_base_and_each_other(gateway):
    client = gateway.openai()
    assert load(gateway, "A", gateway.adapters["A"]).status_code == 200
    assert load(gateway, "B", gateway.adapters["B"]).status_code == 200
    outs = {m: greedy(client, m) for m in ("tiny", "A", "B")}
    assert len(set(outs.values())) == 3, outs
    models = {m.id: m for m in client.models.list().data}
    assert models["A"].parent == "tiny" and models["A"].root == str(gateway.adapters["A"].resolve())
    info = adapters(gateway)["A"]
    assert info["base"] == "tiny" and info["version"] >= 1 and info["loaded_at"] > 0


def test_reload_same_name_serves_new_weights_next_request(gateway, reference_adapters, work_adapter):
    client = gateway.openai()
    assert load(gateway, "work", work_adapter).status_code == 200
    first = greedy(client, "work")
    assert first == greedy(client, "A")
    v1 = adapters(gateway)["work"]["version"]
    # The trainer overwrites its output directory with new weights, then reloads the same name.
    shutil.rmtree(work_adapter)
    shutil.copytree(gateway.adapters["B"], work_adapter)
    assert load(gateway, "work", work_adapter, load_inplace=True).status_code == 200
    assert greedy(client, "work") == greedy(client, "B") != first
    assert adapters(gateway)["work"]["version"] == v1 + 1


def test_deleting_user_dir_after_load_keeps_engine_alive(gateway, work_adapter, tmp_path):
    client = gateway.openai()
    assert load(gateway, "work", work_adapter).status_code == 200
    expected = greedy(client, "work")
    shutil.rmtree(work_adapter)
    # Churn other adapters so the engine's LRU evicts and re-reads `work` from disk.
    for i in range(6):
        write_lora_adapter(gateway.model_dir, tmp_path / f"churn{i}", rank=8, scale=0.3, seed=100 + i)
        assert load(gateway, f"churn{i}", tmp_path / f"churn{i}").status_code == 200
        greedy(client, f"churn{i}", max_tokens=2)
    assert greedy(client, "work") == expected
    for i in range(6):
        assert unload(gateway, f"churn{i}").status_code == 200


def test_unload_then_404(gateway, tmp_path):
    path = write_lora_adapter(gateway.model_dir, tmp_path / "gone", rank=8, scale=0.4, seed=9)
    assert load(gateway, "gone", path).status_code == 200
    assert greedy(gateway.openai(), "gone")
    r = unload(gateway, "gone")
    assert r.status_code == 200
    with pytest.raises(openai.NotFoundError) as e:
        greedy(gateway.openai(), "gone")
    assert "does not exist" in e.value.body["message"]
    r = unload(gateway, "gone")
    assert r.status_code == 404 and r.json()["error"]["code"] == "adapter_not_found"


def test_running_request_finishes_on_its_version(gateway, work_adapter):
    """A stream started on v1 completes with v1's tokens although v2 is loaded mid-stream."""
    client = gateway.openai()
    assert load(gateway, "work", work_adapter).status_code == 200
    v1_text = greedy(client, "work", max_tokens=150)
    v1_snapshot = adapters(gateway)["work"]["snapshot"]
    shutil.rmtree(work_adapter)
    shutil.copytree(gateway.adapters["B"], work_adapter)
    pieces, swapped = [], threading.Event()
    stream = client.completions.create(model="work", prompt=PROMPTS[0], max_tokens=150, temperature=0, stream=True)
    for chunk in stream:
        pieces.append(chunk.choices[0].text if chunk.choices else "")
        if not swapped.is_set():
            assert load(gateway, "work", work_adapter).status_code == 200
            assert adapters(gateway)["work"]["inflight"] == 0  # the stream holds v1, not v2
            swapped.set()
    assert "".join(pieces) == v1_text
    assert greedy(client, "work", max_tokens=150) != v1_text
    shutil.os.sync()
    assert not shutil.os.path.exists(v1_snapshot)  # v1 dropped once its last request ended


def test_concurrent_loads_of_one_name_are_serialized(gateway, reference_adapters, work_adapter):
    async def burst():
        async with httpx.AsyncClient(base_url=gateway.url, timeout=120,
                                     headers={"Authorization": f"Bearer {gateway.admin_key}"}) as c:
            body = {"lora_name": "work", "lora_path": str(work_adapter)}
            return await asyncio.gather(*[c.post("/v1/load_lora_adapter", json=body) for _ in range(4)])

    assert load(gateway, "work", work_adapter).status_code == 200
    before = adapters(gateway)["work"]["version"]
    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 4
    assert adapters(gateway)["work"]["version"] == before + 4
    assert greedy(gateway.openai(), "work") == greedy(gateway.openai(), "A")


def test_base_outputs_independent_of_concurrent_adapter_traffic(gateway):
    """vLLM CPU 0.32 gave base tokens the last adapter slot's LoRA (vllm-project/vllm#48421):
    base requests batched with requests to 4 adapters (all of the engine's 4 slots) came out
    wrong. server/vllm_plugin.py fixes the ops in the engine; the zero adapter stays off."""
    client = gateway.openai()
    names = ["A", "B", "slot-3", "slot-4"]
    for name, src in zip(names, ["A", "B", "A", "B"]):
        assert load(gateway, name, gateway.adapters[src]).status_code == 200
    alone = [greedy(client, "tiny", p, max_tokens=24) for p in PROMPTS]

    async def mixed():
        aclient = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key)

        async def one(model, p):
            r = await aclient.completions.create(model=model, prompt=p, max_tokens=24, temperature=0)
            return r.choices[0].text

        return await asyncio.gather(*[one("tiny", p) for p in PROMPTS],
                                    *[one(n, p) for p in PROMPTS for n in names])

    with gateway.admin() as admin:
        zero = {r["engine"]: r for r in admin.get("/v1/engines").json()["data"]}["tiny"]["zero_adapter"]
    assert not zero["enabled"], zero["reason"]  # the engine is fixed, so base traffic takes the fast path
    try:
        assert list(asyncio.run(mixed())[: len(PROMPTS)]) == alone
    finally:
        for name in names[2:]:
            unload(gateway, name)
