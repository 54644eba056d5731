"""Engine processes: fronting an upstream, engine death -> 503, SIGTERM leaves no orphans."""

from __future__ import annotations

import os
import signal
import time

import httpx
import openai
import pytest

from evalctl.process import ServerProcess
from tests.conftest import start_gateway


def engines(url: str, key: str | None = None) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/v1/engines", headers=headers).json()["data"]


def test_upstream_mode_fronts_a_running_server(gateway, tmp_path):
    """`--upstream` fronts the session's vLLM engine directly; base outputs match the gateway's,
    which routes base traffic through the all-zero adapter (so that adapter is exact)."""
    engine_url = engines(gateway.url, gateway.admin_key)[0]["url"]
    with ServerProcess(["--upstream", engine_url], tmp_path / "upstream.log") as front:
        client = openai.OpenAI(base_url=f"{front.url}/v1", api_key="none", max_retries=0)
        ids = {m.id for m in client.models.list().data}
        assert "tiny" in ids
        direct = client.completions.create(model="tiny", prompt="Bob has 5 pens", max_tokens=16, temperature=0)
        via_zero = gateway.openai().completions.create(model="tiny", prompt="Bob has 5 pens", max_tokens=16,
                                                       temperature=0)
        assert direct.choices[0].text == via_zero.choices[0].text
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model="upstream", prompt="x", max_tokens=1)


def test_started_server_used_as_context_manager_runs_once_and_stops(gateway, tmp_path):
    """`with ServerProcess(...).start()` (the benchmarks' idiom) must not start a second gateway
    on the same port and leave the first one running after the block."""
    engine_url = engines(gateway.url, gateway.admin_key)[0]["url"]
    server = ServerProcess(["--upstream", engine_url], tmp_path / "twice.log").start(timeout=120)
    first = server.proc
    with server as same:
        assert same.proc is first
    assert first.poll() is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)


@pytest.fixture(scope="module")
def doomed(tiny_model, tmp_path_factory):
    """A gateway of its own, since these tests kill its engine."""
    proc = start_gateway(tiny_model, tmp_path_factory.mktemp("doomed") / "gateway.log")
    yield proc
    proc.stop()


def test_engine_killed_gives_503_not_a_hang(doomed):
    info = engines(doomed.url)[0]
    os.kill(info["pid"], signal.SIGKILL)
    client = openai.OpenAI(base_url=f"{doomed.url}/v1", api_key="none", max_retries=0, timeout=30)
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as e:
        client.completions.create(model="tiny", prompt="x", max_tokens=4)
    assert e.value.status_code == 503
    assert "tiny" in e.value.body["message"] and e.value.body["code"] == "engine_unavailable"
    assert time.monotonic() - t0 < 10
    deadline = time.monotonic() + 10
    while httpx.get(f"{doomed.url}/health").status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert httpx.get(f"{doomed.url}/health").json()["engines_down"] == ["tiny"]


def test_sigterm_stops_gateway_and_every_engine_process(doomed):
    pgid = engines(doomed.url)[0]["pid"]  # the engine's process group: API server + engine core
    assert doomed.stop(timeout=60) == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
