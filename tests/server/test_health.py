"""Health checks against a real HTTP endpoint whose /health we control: a busy replica that
answers slowly once stays in rotation; twice in a row, or nothing listening, ejects it."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import server.lifecycle as lifecycle
from server.engine import DOWN, UP, EngineGroup, Replica, make_client
from server.lifecycle import Runtime
from server.settings import EngineConfig, ServeSettings


class Health:
    """/health answers `mode`: ok (200), slow (past the probe timeout), error (503)."""

    def __init__(self):
        self.mode = "ok"
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if health.mode == "slow":
                    time.sleep(1.0)
                code = 503 if health.mode == "error" else 200
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health(monkeypatch):
    monkeypatch.setattr(lifecycle, "HEALTH_TIMEOUT", 0.3)
    h = Health()
    yield h
    h.close()


async def checks(url: str, modes: list[str], health: Health, store) -> list[str]:
    """Run one check per mode; the replica's state after each."""
    cfg = EngineConfig(name="m", upstream=[url])
    rt = Runtime(ServeSettings(engines=[cfg], adapter_store=store))
    r = Replica(url, make_client(url, 5.0), label="m[0]")
    rt.groups["m"] = EngineGroup(cfg, [r])
    states = []
    try:
        for mode in modes:
            health.mode = mode
            await rt.check_all()
            states.append(r.state)
    finally:
        await r.client.aclose()
    return states


@pytest.mark.parametrize("modes,want", [
    (["slow", "ok", "slow", "ok"], [UP, UP, UP, UP]),  # isolated slow answers: never ejected
    (["slow", "slow", "ok"], [UP, DOWN, UP]),  # twice in a row: ejected, then readmitted
    (["error", "error"], [UP, DOWN]),
    (["error", "slow", "ok", "error"], [UP, DOWN, UP, UP]),  # a success resets the count
])
def test_replica_ejected_only_after_two_failed_checks_in_a_row(health, modes, want, tmp_path):
    assert asyncio.run(checks(health.url, modes, health, tmp_path)) == want


def test_nothing_listening_ejects_at_once(health, tmp_path):
    url = health.url
    health.close()  # the port is free now: connection refused
    assert asyncio.run(checks(url, ["ok"], health, tmp_path)) == [DOWN]
