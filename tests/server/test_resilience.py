"""One failed request is that request's problem, not the replica's.

The gateway's forwarding path (server.proxy.forward) runs in-process here, without the
request checks of the real routes, in front of real upstreams: the session's vLLM engine and,
for the failure cases, real TCP servers that refuse or drop connections. A vLLM 500 (which
makes uvicorn close the connection) must not cost the next requests anything; a replica that
fails on fresh connections is ejected on evidence, and never when it is the last live one."""

from __future__ import annotations

import asyncio
import json
import re
import socket

import httpx
import pytest
from fastapi import FastAPI, Request

from server.adapters import AdapterManager
from server.engine import DOWN, UP, EngineGroup, Replica, make_client
from server.errors import install_error_handlers
from server.metrics import Metrics
from server.protocol import CompletionRequest
from server.proxy import _attempt, _Dropped, forward
from server.routing import ModelRouter
from server.settings import EngineConfig, ServeSettings

OK = {"model": "tiny", "prompt": "Ann has", "max_tokens": 2}


def engine_url(gateway) -> str:
    with gateway.admin() as c:
        return next(e["url"] for e in c.get("/v1/engines").json()["data"] if e["engine"] == "tiny")


def metric(url: str, name: str, timeout: float = 10) -> float:
    """A Prometheus counter or gauge at `url`/metrics (the gateway's or a vLLM engine's), summed over its labels."""
    text = httpx.get(f"{url}/metrics", timeout=timeout).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


def proxy_app(urls: list[str], store) -> FastAPI:
    """The gateway's forwarding path in front of replicas at `urls`, with only the base schema
    checked: bodies the real routes refuse reach the engine."""
    cfg = EngineConfig(name="tiny", urls=urls)
    group = EngineGroup(cfg, [Replica(u, make_client(u, 60), label=f"tiny[{i}]") for i, u in enumerate(urls)])
    app = FastAPI()
    install_error_handlers(app)
    app.state.settings = ServeSettings(engines=[cfg], adapter_store=store)
    app.state.metrics = Metrics()
    app.state.router = ModelRouter({"tiny": group}, AdapterManager(store / "adapters", {"tiny": group}))
    app.state.group = group

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await forward(request, "/v1/completions", CompletionRequest)

    return app


async def post_all(app: FastAPI, bodies: list[dict]) -> list[httpx.Response]:
    out = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway",
                                 timeout=60) as c:
        for body in bodies:
            out.append(await c.post("/v1/completions", json=body))
    for r in app.state.group.replicas:
        await r.aclose()
    return out


def retries(app: FastAPI, reason: str) -> float:
    value = app.state.metrics.registry.get_sample_value("evalctl_retries_total", {"engine": "tiny", "reason": reason})
    return value or 0


@pytest.mark.engine
def test_engine_500_then_normal_traffic_is_all_2xx(gateway):
    """vLLM answers a request that crashes its parsing with a 500, then closes the connection
    once it has logged the traceback: a request sent on that pooled connection in the meantime
    fails at once. Straight after the 500 on the replica's own client, that window is always
    met (through the HTTP stack in front only sometimes, which is what made it rare and nasty)."""
    url = engine_url(gateway)

    async def run():
        replica, metrics = Replica(url, make_client(url, 60), label="tiny[0]"), Metrics()
        group = EngineGroup(EngineConfig(name="tiny", urls=[url]), [replica])

        async def send(body: dict) -> httpx.Response:
            try:
                reply = await _attempt(replica, "tiny", "/v1/completions", json.dumps(body).encode(), False, metrics)
            except _Dropped as e:  # what the proxy does with it: a strike, or the next replica
                group.request_failed(replica, str(e), e.refused)
                raise
            return reply.resp

        crashed, normal = [], []
        for bad in ("", "x", 3.5, True, [1, "a"]):  # each crashes vLLM 0.32's request parsing
            crashed.append(await send({**OK, "structured_outputs": bad}))
            normal += [await send(OK) for _ in range(4)]
        await replica.aclose()
        return crashed, normal, replica.state, metrics

    crashed, normal, state, metrics = asyncio.run(run())
    assert [r.status_code for r in crashed] == [500] * 5  # that request's own error
    assert [r.status_code for r in normal] == [200] * 20
    assert state == UP
    stale = metrics.registry.get_sample_value("evalctl_retries_total", {"engine": "tiny", "reason": "stale_connection"})
    assert stale and stale >= 3  # the dropped connections were really handed out again, then retried


class Dropper:
    """Accepts connections and closes each at once: an engine that is listening but broken."""

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._drop, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _drop(self, reader, writer) -> None:
        writer.close()

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()


def closed_port() -> str:
    with socket.socket() as s:  # bound, then closed: connections to it are refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_last_live_replica_is_not_ejected_for_failed_requests(tmp_path):
    async def run():
        async with Dropper() as url:
            app = proxy_app([url], tmp_path)
            replies = await post_all(app, [OK] * 3)
            return app, replies

    app, replies = asyncio.run(run())
    assert [r.status_code for r in replies] == [503] * 3
    assert all(r.json()["error"]["code"] == "engine_unavailable" for r in replies)
    assert app.state.group.replicas[0].state == UP  # the health check decides about the last one
    assert retries(app, "stale_connection") == 3  # each tried a pooled, then a new connection


def test_last_live_replica_is_kept_when_its_port_refuses(tmp_path):
    app = proxy_app([closed_port()], tmp_path)
    replies = asyncio.run(post_all(app, [OK] * 2))
    assert [r.status_code for r in replies] == [503] * 2
    assert app.state.group.replicas[0].state == UP
    assert retries(app, "stale_connection") == 0  # a refused connect was a new connection already


@pytest.mark.engine
def test_replica_that_refuses_is_ejected_at_once_when_another_serves(gateway, tmp_path):
    app = proxy_app([closed_port(), engine_url(gateway)], tmp_path)
    replies = asyncio.run(post_all(app, [OK] * 3))
    assert [r.status_code for r in replies] == [200] * 3
    assert [r.headers["x-evalctl-replica"] for r in replies] == ["tiny[1]"] * 3
    assert [r.state for r in app.state.group.replicas] == [DOWN, UP]


@pytest.mark.engine
def test_replica_that_drops_connections_is_ejected_on_the_second_failure(gateway, tmp_path):
    async def run():
        async with Dropper() as url:
            app = proxy_app([url, engine_url(gateway)], tmp_path)
            dropper, engine = app.state.group.replicas
            engine.outstanding = 1  # a busy twin: every request is offered to the dropper first
            states = []
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway",
                                         timeout=60) as c:
                for _ in range(3):
                    r = await c.post("/v1/completions", json=OK)
                    states.append((r.status_code, r.headers.get("x-evalctl-replica"), dropper.state))
            for r in app.state.group.replicas:
                await r.aclose()
            return states

    assert asyncio.run(run()) == [(200, "tiny[1]", UP), (200, "tiny[1]", DOWN), (200, "tiny[1]", DOWN)]


def test_request_failures_in_a_row_only_count_until_one_succeeds():
    cfg = EngineConfig(name="m", urls=["http://a", "http://b"])
    a, b = Replica("http://a", client=None, label="m[0]"), Replica("http://b", client=None, label="m[1]")
    g = EngineGroup(cfg, [a, b])
    g.request_failed(a, "ServerDisconnectedError")
    a.request_strikes = 0  # what the proxy does when `a` answers
    g.request_failed(a, "ServerDisconnectedError")
    assert a.state == UP
    g.request_failed(a, "ServerDisconnectedError")
    assert a.state == DOWN and a.request_strikes == 0
    g.request_failed(b, "ClientConnectorError", refused=True)
    assert b.state == UP  # the last live one


def test_upstream_error_that_is_not_openai_shaped_is_mapped(tmp_path):
    """A proxy or load balancer in front of vLLM answering a 5xx in HTML: an OpenAI-shaped 502."""

    async def run():
        async def answer(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            body = b"<html>Bad Gateway</html>"
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        app = proxy_app([url], tmp_path)
        try:
            return app, await post_all(app, [OK])
        finally:
            server.close()

    app, (r,) = asyncio.run(run())
    assert r.status_code == 502
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == "upstream_error"
    assert app.state.group.replicas[0].state == UP
