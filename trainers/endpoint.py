"""Talking to the evalctl endpoint from trainers: always through `clients.EvalClient`."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from clients import EvalClient
from clients.client import AdminError

from .errors import EndpointError

_VERSION = re.compile(r"\(version (\d+) on ")


@dataclass
class Endpoint:
    base_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    admin_key: str | None = None
    concurrency: int | None = 16  # None: what fills the engine (EvalClient.resolve_concurrency)

    def client(self) -> EvalClient:
        # no cache: trainers need fresh samples from the current weights every time
        return EvalClient(self.base_url, self.api_key, admin_key=self.admin_key, concurrency=self.concurrency)


async def push_adapter(client: EvalClient, name: str, path: Path, base_model: str | None = None) -> int:
    """Load (or replace) adapter `name` from `path`; returns the version the server now serves."""
    try:
        msg = await client.load_adapter(name, path, base_model)
    except AdminError as e:
        raise EndpointError(f"loading adapter {name!r} from {path} failed: {e}") from None
    except httpx.HTTPError as e:
        raise EndpointError(f"cannot reach {client.base_url} to load adapter {name!r}: {e}") from None
    m = _VERSION.search(str(msg))
    if m:
        return int(m.group(1))
    for a in await client.list_adapters():  # a server that words its reply differently
        if a.get("name") == name:
            return int(a["version"])
    raise EndpointError(f"adapter {name!r} loaded but the server does not list it")


def push_adapter_sync(endpoint: Endpoint, name: str, path: Path, base_model: str | None = None) -> int:
    import asyncio

    async def go() -> int:
        async with endpoint.client() as c:
            return await push_adapter(c, name, path, base_model)

    return asyncio.run(go())


class BackgroundLoop:
    """An event loop on its own thread, for synchronous trainers (TRL calls our rollout and reward
    functions from its training loop) that need one long-lived `EvalClient`: its connection pool
    and concurrency cap survive across steps instead of being rebuilt by `asyncio.run` each time."""

    def __init__(self, endpoint: Endpoint):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="evalctl-endpoint", daemon=True)
        self.thread.start()
        self.client: EvalClient = self.run(self._open(endpoint))

    async def _open(self, endpoint: Endpoint) -> EvalClient:
        return endpoint.client()

    def run(self, coro):
        """Run `coro` on the loop and wait for its result (exceptions propagate)."""
        return self.submit(coro).result()

    def submit(self, coro):
        """Start `coro` on the loop; returns a concurrent.futures.Future for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.run(self.client.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
