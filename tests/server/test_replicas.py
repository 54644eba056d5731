"""Scale-out: several vLLM replicas of one base model behind the gateway.

Pure tests of the routing choice first; then one gateway with two real vLLM CPU replicas
of the tiny model (started once for the module): load spread, adapters on every replica,
a replica killed during a burst, its restart reconciled before it serves, and a second
gateway attached to the same engines as external `urls`."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import httpx
import openai
import pytest
import yaml

from evalctl.process import ServerProcess
from server.engine import DOWN, SYNCING, UP, EngineGroup, EngineProcess, Replica
from server.lifecycle import Runtime, _resolve
from server.settings import EngineConfig, ServeSettings
from tests.conftest import ADMIN_KEY, API_KEY, ENGINE_ENV
from tests.server.test_resilience import metric


# -- pure: the routing choice -------------------------------------------------------------
def group_of(n: int) -> EngineGroup:
    cfg = EngineConfig(name="m", urls=[f"http://r{i}" for i in range(n)])
    return EngineGroup(cfg, [Replica(f"http://r{i}", client=None, label=f"m[{i}]") for i in range(n)])


def test_pick_least_outstanding():
    g = group_of(3)
    g.replicas[0].outstanding, g.replicas[1].outstanding, g.replicas[2].outstanding = 3, 1, 2
    assert g.pick("m").label == "m[1]"


def test_pick_prefers_adapter_affinity_among_equals():
    g = group_of(3)
    g.replicas[2].note_served("sft@v1")
    g.replicas[1].note_served("sft@v1")  # most recent
    assert g.pick("sft@v1").label == "m[1]"
    assert g.pick("other").label == "m[0]"  # no history: list order
    g.replicas[1].outstanding = 1  # load beats affinity
    assert g.pick("sft@v1").label == "m[2]"


@pytest.mark.parametrize("state", [DOWN, SYNCING, "starting"])
def test_pick_skips_replicas_not_up(state):
    g = group_of(2)
    g.replicas[0].state = state
    g.replicas[1].outstanding = 5
    assert g.pick().label == "m[1]"
    g.replicas[1].state = state
    assert g.pick() is None


def test_pick_excludes_the_replica_that_failed():
    g = group_of(2)
    assert g.pick(exclude=g.replicas[0]).label == "m[1]"
    assert group_of(1).pick(exclude=None) is not None
    one = group_of(1)
    assert one.pick(exclude=one.replicas[0]) is None


def test_mark_down_forgets_loaded_adapters():
    r = group_of(1).replicas[0]
    r.loaded = {"a@v1"}
    r.mark_down("health check failed")
    assert r.state == DOWN and not r.loaded and r.reason == "health check failed" and not r.alive()


@pytest.mark.parametrize("kw,msg", [
    ({"urls": ["http://a"]}, "needs a `name`"),
    ({"name": "x", "urls": ["http://a"], "discover": "svc:8000"}, "not both"),
    ({"name": "x", "upstream": ["http://a"], "urls": ["http://b"]}, "not both"),
    ({"name": "x", "discover": "svc"}, "HOST:PORT"),
])
def test_external_replica_config_rejects(kw, msg):
    with pytest.raises(ValueError, match=msg):
        EngineConfig(**kw)


def test_external_replicas_are_managed_not_local():
    cfg = EngineConfig(name="policy", urls=["http://a:8000"], model="/models/policy")
    assert cfg.managed and not cfg.local
    assert EngineConfig(model="m").local and not EngineConfig(upstream=["http://u"]).managed


def test_replica_env_gives_each_local_replica_its_own_devices(tmp_path):
    cfg = EngineConfig(model="m", replicas=3, env={"A": "1", "CUDA_VISIBLE_DEVICES": "0"},
                       replica_env=[{}, {"CUDA_VISIBLE_DEVICES": "1"}])
    envs = [EngineProcess(cfg, i, tmp_path / f"{i}.log").environment() for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert all(e["A"] == "1" and e["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" for e in envs)
    with pytest.raises(ValueError, match="2 entries for 1 replicas"):
        EngineConfig(model="m", replica_env=[{}, {}])


async def test_discover_resolves_addresses_to_urls():
    assert await _resolve("localhost:8123") in (["http://127.0.0.1:8123"], ["http://127.0.0.1:8123", "http://[::1]:8123"],
                                                ["http://[::1]:8123"])
    assert await _resolve("no-such-host.invalid:80", quiet=True) == []


async def test_discovered_replicas_join_down_and_leave(tmp_path):
    """A new address joins DOWN (the health check + adapter sync admit it); a vanished one
    leaves routing at once; an empty DNS answer changes nothing."""
    settings = ServeSettings(adapter_store=tmp_path, engines=[{"name": "m", "discover": "svc:8000"}])
    rt = Runtime(settings)
    g = EngineGroup(settings.engines[0], [rt._replica(settings.engines[0], "http://10.0.0.1:8000")])
    g.replicas[0].state = UP
    rt._apply_discovered(g, ["http://10.0.0.2:8000"])
    assert [(r.url, r.state) for r in g.replicas] == [("http://10.0.0.2:8000", DOWN)]
    assert [r.url for r in rt._removed] == ["http://10.0.0.1:8000"] and rt._removed[0].state == DOWN
    rt._apply_discovered(g, [])
    assert len(g.replicas) == 1
    for r in [*g.replicas, *rt._removed]:
        await r.client.aclose()


# -- real: two vLLM CPU replicas ------------------------------------------------------------
def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)


def engines(url: str) -> list[dict]:
    with admin(url) as c:
        return c.get("/v1/engines").json()["data"]


def adapters(url: str) -> dict[str, dict]:
    with admin(url) as c:
        return {a["name"]: a for a in c.get("/v1/adapters").json()["data"]}


def engine_adapters(engine_url: str) -> dict[str, str]:
    """What a vLLM server itself holds: adapter name -> path."""
    data = httpx.get(f"{engine_url}/v1/models", timeout=30).json()["data"]
    return {m["id"]: m["root"] for m in data if m.get("parent")}


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


async def burst(url: str, models: list[str], n: int, concurrency: int, streams: int = 0,
                during=None, max_tokens: int = 8) -> list[dict]:
    """n non-streaming + `streams` streaming completions; each result records the replica."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    sem = asyncio.Semaphore(concurrency)
    done: list[dict] = []

    async def one(i: int, stream: bool) -> None:
        model = models[i % len(models)]
        async with sem:
            rec = {"model": model, "stream": stream, "replica": None, "error": None}
            try:
                raw = await client.completions.with_raw_response.create(
                    model=model, prompt=f"Ann has {i} apples", max_tokens=24 if stream else max_tokens, temperature=0,
                    stream=stream, extra_body={"ignore_eos": True})
                rec["replica"] = raw.headers.get("x-evalctl-replica")
                if stream:
                    rec["text"] = "".join([c.choices[0].text async for c in raw.parse()])
                else:
                    rec["text"] = raw.parse().choices[0].text
            except Exception as e:  # recorded, asserted on by the test
                rec["error"] = repr(e)
            done.append(rec)

    jobs = [one(i, False) for i in range(n)] + [one(n + i, True) for i in range(streams)]
    tasks = [asyncio.ensure_future(j) for j in jobs]
    if during is not None:
        await during(done)
    await asyncio.gather(*tasks)
    await client.close()
    return done


def both_up_with(url: str, adapter_dirs, *names: str) -> None:
    """What a test on `two` needs, established by the test itself rather than by the ones before
    it: both replicas serving (a killed one restarted) and the named adapters loaded."""
    wait_for(lambda: [e["state"] for e in engines(url)] == [UP, UP], 420, "both replicas up")
    have = adapters(url)
    with admin(url) as c:
        for name in names:
            if name not in have:
                r = c.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(adapter_dirs[name])})
                assert r.status_code == 200, r.text


def replica(url: str, label: str) -> dict:
    return next(e for e in engines(url) if e["label"] == label)


@pytest.fixture(scope="module")
def two(tiny_model, adapter_dirs, tmp_path_factory):
    """One gateway, one base model, two vLLM replicas it starts and supervises."""
    logs = tmp_path_factory.mktemp("replicas")
    config = logs / "serve.yaml"
    config.write_text(yaml.safe_dump({"engine_poll_interval": 1.0, "engines": [{
        "name": "tiny", "model": str(tiny_model), "replicas": 2, "dtype": "float32", "max_model_len": 512,
        "max_lora_rank": 8, "max_loras": 4, "env": ENGINE_ENV,
        # Forced on: these tests check the zero adapter is re-synced onto a restarted replica.
        "base_via_zero_adapter": True,
        # vLLM CPU binds every engine to core 0 by default; a restarting replica's worker bound there
        # beside its busy twin got ~0 CPU for minutes here. One core each.
        "replica_env": [{"VLLM_CPU_OMP_THREADS_BIND": "0"}, {"VLLM_CPU_OMP_THREADS_BIND": "1"}]}]}))
    proc = ServerProcess(["--config", str(config), "--api-key", API_KEY, "--admin-key", ADMIN_KEY,
                          "--log-dir", str(logs)], logs / "gateway.log").start(timeout=600)
    yield proc
    proc.stop()


@pytest.mark.engine
def test_burst_spreads_load_across_both_replicas(two):
    info = engines(two.url)
    assert [e["state"] for e in info] == [UP, UP] and len({e["pid"] for e in info}) == 2
    results = asyncio.run(burst(two.url, ["tiny"], n=16, concurrency=8))
    assert [r["error"] for r in results if r["error"]] == []
    served = {r["replica"] for r in results}
    assert served == {"tiny[0]", "tiny[1]"}
    assert metric(two.url, "evalctl_replica_requests_total") >= 16


@pytest.mark.engine
def test_new_adapter_is_loaded_on_every_replica(two, adapter_dirs):
    with admin(two.url) as c:
        r = c.post("/v1/load_lora_adapter", json={"lora_name": "A", "lora_path": str(adapter_dirs["A"])})
    assert r.status_code == 200, r.text
    status = adapters(two.url)["A"]["replicas"]
    assert [(s["replica"], s["state"], s["loaded"]) for s in status] == [("tiny[0]", UP, True), ("tiny[1]", UP, True)]
    for e in engines(two.url):  # the engines themselves agree
        assert "A@v1" in engine_adapters(e["url"])
    results = asyncio.run(burst(two.url, ["A"], n=8, concurrency=4))
    assert [r["error"] for r in results if r["error"]] == []
    assert {r["replica"] for r in results} == {"tiny[0]", "tiny[1]"}


@pytest.mark.engine
def test_killed_replica_costs_no_request_beyond_inflight_streams(two, adapter_dirs):
    both_up_with(two.url, adapter_dirs, "A")
    victim = engines(two.url)[1]
    retries_before = metric(two.url, "evalctl_retries_total")

    total = 46

    async def kill_when_busy(done: list[dict]) -> None:
        # Poll off the event loop (a blocking call here would stall the burst itself) and give up
        # loudly if the burst ends first, instead of waiting for a busy victim forever.
        while len(done) < total:
            info = await asyncio.to_thread(engines, two.url)
            if [e for e in info if e["label"] == victim["label"] and e["outstanding"] >= 2]:
                os.killpg(victim["pid"], signal.SIGKILL)  # API server and engine core together
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the burst finished before the victim replica had 2 requests in flight")

    results = asyncio.run(burst(two.url, ["tiny", "A"], n=total - 6, concurrency=8, streams=6,
                                during=kill_when_busy, max_tokens=32))
    failed = [r for r in results if r["error"]]
    assert [r for r in failed if not r["stream"]] == []  # every non-streaming request answered
    assert all(r["replica"] == victim["label"] for r in failed), failed  # only streams already on the victim
    assert metric(two.url, "evalctl_retries_total") > retries_before
    state = {e["label"]: e["state"] for e in engines(two.url)}
    assert state["tiny[0]"] == UP and state[victim["label"]] != UP


@pytest.mark.engine
def test_restarted_replica_gets_adapters_before_traffic(two, adapter_dirs):
    if replica(two.url, "tiny[1]")["state"] == UP:  # not killed by the test before: kill it here
        both_up_with(two.url, adapter_dirs, "A")
        os.killpg(replica(two.url, "tiny[1]")["pid"], signal.SIGKILL)
        wait_for(lambda: replica(two.url, "tiny[1]")["state"] != UP, 60, "the killed tiny[1] to be ejected")
    elif "A" not in adapters(two.url):
        with admin(two.url) as c:
            assert c.post("/v1/load_lora_adapter", json={"lora_name": "A", "lora_path": str(adapter_dirs["A"])}
                          ).status_code == 200
    old_a = adapters(two.url)["A"]["version"]
    # While the killed replica is away: a new adapter and a new version of an old one.
    with admin(two.url) as c:
        for name, src in (("B", "B"), ("A", "B")):
            r = c.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(adapter_dirs[src])})
            assert r.status_code == 200, r.text
    b = adapters(two.url)["B"]["replicas"]
    assert [(s["state"] == UP, s["loaded"]) for s in b] == [(True, True), (False, False)]

    stop, seen = threading.Event(), []

    def hammer() -> None:  # keeps both adapters busy so a replica admitted too early gets hit
        client = openai.OpenAI(base_url=f"{two.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
        while not stop.is_set():
            for model in ("B", "A"):
                try:
                    raw = client.completions.with_raw_response.create(model=model, prompt="x", max_tokens=2)
                    raw.parse()
                    seen.append((model, raw.headers["x-evalctl-replica"], None))
                except Exception as e:
                    seen.append((model, None, repr(e)))
            time.sleep(0.05)  # leave CPU to the engine starting up

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        restarted = wait_for(lambda: next((e for e in engines(two.url) if e["label"] == "tiny[1]"
                                           and e["state"] == UP), None), 900, "the gateway to restart tiny[1]")
        wait_for(lambda: any(rep == "tiny[1]" for _, rep, _ in seen), 60, "traffic on the restarted replica")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert [s for s in seen if s[2]] == []
    assert restarted["restarts"] >= 1
    held = engine_adapters(restarted["url"])
    new_b = adapters(two.url)["B"]["version"]
    assert {f"A@v{old_a + 1}", f"B@v{new_b}", "__evalctl_base__"} <= set(held) and f"A@v{old_a}" not in held
    for name in ("A", "B"):
        assert all(s["loaded"] and s["state"] == UP for s in adapters(two.url)[name]["replicas"])
    with admin(two.url) as c:  # an unload reaches both replicas too
        assert c.post("/v1/unload_lora_adapter", json={"lora_name": "B"}).status_code == 200
    wait_for(lambda: all(f"B@v{new_b}" not in engine_adapters(e["url"]) for e in engines(two.url)), 30,
             "B to leave both engines")
    assert "B" not in adapters(two.url)


@pytest.mark.engine
def test_gateway_attaches_to_external_replicas(two, tiny_model, adapter_dirs, tmp_path):
    """`urls`: vLLM servers started elsewhere (here: the first gateway's two engines; last test,
    since the engines now change owner). The new gateway clears what it does not own, installs
    its own adapters on both, routes to both, and unloads its adapters again when it stops."""
    both_up_with(two.url, adapter_dirs, "A")  # the first gateway's adapters, for the new one to clear
    urls = [e["url"] for e in engines(two.url)]
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"engines": [{
        "name": "ext", "urls": urls, "model": str(tiny_model), "max_lora_rank": 8, "base_via_zero_adapter": True,
        "adapters": {"C": str(adapter_dirs["A"])}}]}))
    with ServerProcess(["--config", str(config), "--admin-key", ADMIN_KEY], tmp_path / "gw.log") as ext:
        assert [e["state"] for e in engines(ext.url)] == [UP, UP]
        store = adapters(ext.url)["C"]["snapshot"]
        for u in urls:
            held = engine_adapters(u)
            assert set(held) == {"__evalctl_base__", "C@v1"}  # the first gateway's A/B versions are gone
            assert held["C@v1"] == store
        results = asyncio.run(burst(ext.url, ["ext", "C"], n=12, concurrency=6))
        assert [r["error"] for r in results if r["error"]] == []
        assert {r["replica"] for r in results} == {f"ext@{u}" for u in urls}
    for u in urls:
        assert engine_adapters(u) == {}
