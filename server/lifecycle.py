"""Bring engines up and down: start vLLM processes (or attach to vLLM replicas started
elsewhere, or to upstream URLs), discover what they serve, install adapters, and keep
watching: eject a replica that fails its health check, restart a started one whose
process exited, and readmit a replica only after it holds the current adapter set."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import cpu_memory, selftest
from .adapters import AdapterManager, _local_model_dir
from .engine import DOWN, STARTING, UP, EngineGroup, EngineProcess, Replica, engine_max_num_seqs, make_client, refused
from .errors import EngineStartError
from .settings import EngineConfig, ServeSettings

log = logging.getLogger("evalctl.lifecycle")
RESTART_BACKOFF = (5.0, 300.0)  # first delay before restarting a dead engine, and the cap
HEALTH_TIMEOUT = 5.0
# A busy engine can answer /health slowly or fail it once; ejecting it then forces an adapter
# re-sync and flaps under load. Refused connections (nothing listening) eject at once.
HEALTH_STRIKES = 2


class Runtime:
    """Everything long-lived the app holds on `app.state`, created in the lifespan."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self._own_store = settings.adapter_store is None
        self.store = Path(settings.adapter_store or tempfile.mkdtemp(prefix="evalctl-"))
        self.log_dir = Path(settings.log_dir or self.store / "logs")
        self.groups: dict[str, EngineGroup] = {}
        self.adapters = AdapterManager(self.store / "adapters", self.groups)
        self._watch: asyncio.Task | None = None
        self._restarting: dict[int, asyncio.Task] = {}  # id(replica) -> its restart task
        self._backoff: dict[int, tuple[float, float]] = {}  # id(replica) -> (not before, next delay)
        self._removed: list[Replica] = []  # discovered replicas gone from DNS, closed once idle
        self._keep_logs = False

    async def start(self) -> None:
        try:
            await self._start_engines()
            for g in self.groups.values():
                await self._discover(g)
                if g.config.managed:  # clean slate: drop what a previous gateway left on external engines
                    for r in g.live():
                        await self.adapters.reconcile(g, r)
                if g.config.managed and g.config.enable_lora and g.config.runner == "generate" and g.config.model:
                    await self._zero_adapter(g)
                for name, path in g.config.adapters.items():
                    await self.adapters.load(name, path, base=g.name)
        except BaseException as e:
            # The engine logs of a failed start are its only record of why (the error names them).
            self._keep_logs = isinstance(e, Exception)
            await self.stop()
            raise
        self._watch = asyncio.get_running_loop().create_task(self._watch_loop())

    async def _zero_adapter(self, g: EngineGroup) -> None:
        """Route base traffic through the all-zero adapter only where this engine needs it
        (selftest.py): the LoRA path it puts every base request on is not free."""
        replica = g.pick() or g.replicas[0]
        g.zero_adapter = await selftest.decide(
            g.config.base_via_zero_adapter, replica.client, (g.served_names or [g.name])[0],
            _local_model_dir(g.config.model or ""), self.store / selftest.SELFTEST_ADAPTER / g.name.replace("/", "__"),
            g.config.max_lora_rank, g.config.max_loras)
        log.info("engine %s: base traffic %s the all-zero adapter: %s", g.name,
                 "through" if g.zero_adapter.enabled else "not through", g.zero_adapter.reason)
        if g.zero_adapter.enabled:
            await self.adapters.install_zero(g)

    async def _start_engines(self) -> None:
        procs: list[EngineProcess] = []
        for cfg in self.settings.engines:
            replicas = []
            if cfg.local:
                for i in range(cfg.replicas):
                    p = EngineProcess(cfg, i, self.log_dir / f"{cfg.name.replace('/', '__')}-{i}.log")
                    procs.append(p)
                    replicas.append(Replica(p.url, make_client(p.url, self.settings.request_timeout), p,
                                            label=p.label))
            else:
                urls = await _resolve(cfg.discover) if cfg.discover else (cfg.urls or cfg.upstream)
                replicas = [self._replica(cfg, u) for u in urls]
            self.groups[cfg.name] = EngineGroup(cfg, replicas)
        sizes = cpu_memory.plan([(p.config, p.environment()) for p in procs], self.settings.cpu_kv_cache_gib)
        for p, size in zip(procs, sizes):
            p.kv_cache_bytes = size
        for p in procs:
            p.start()
        waits = [p.wait_healthy(p.config.startup_timeout) for p in procs]
        waits += [self._wait_external(g) for g in self.groups.values() if not g.config.local]
        results = await asyncio.gather(*waits, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        for p in procs:
            log.info("engine %s healthy", p.label)

    def _replica(self, cfg: EngineConfig, url: str) -> Replica:
        url = url.rstrip("/")
        # Replicas started elsewhere begin DOWN: a first health check (and adapter sync) admits them.
        state = DOWN if cfg.managed else UP
        return Replica(url, make_client(url, self.settings.request_timeout), label=f"{cfg.name}@{url}",
                       state=state, reason="not checked yet" if state == DOWN else "")

    async def _wait_external(self, g: EngineGroup) -> None:
        """External replicas may still be starting (pods, other hosts): wait for one to answer."""
        if not g.config.managed:
            return
        deadline = time.monotonic() + g.config.startup_timeout
        while time.monotonic() < deadline:
            if g.config.discover:
                self._apply_discovered(g, await _resolve(g.config.discover, quiet=True))
            oks = await asyncio.gather(*(_healthy(r) for r in g.replicas))
            for r, ok in zip(g.replicas, oks):
                r.state = UP if ok else DOWN  # UP before its first sync: start() reconciles it at once
            if any(oks):
                return
            await asyncio.sleep(1.0)
        where = g.config.discover or ", ".join(g.config.urls)
        raise EngineStartError(f"engine {g.name}: no replica at {where} became healthy within "
                               f"{g.config.startup_timeout:.0f}s")

    async def _discover(self, g: EngineGroup) -> None:
        replica = g.pick() or g.replicas[0]
        try:
            r = await replica.client.get("/v1/models", timeout=30)
            r.raise_for_status()
            models = r.json()["data"]
        except (httpx.HTTPError, KeyError, ValueError) as e:
            raise EngineStartError(f"engine {g.name} at {replica.url} did not list its models: {e!r}") from None
        g.served_names = [m["id"] for m in models if not m.get("parent")]
        g.max_model_len = next((m.get("max_model_len") for m in models if m.get("max_model_len")), None)
        g.discovered = models
        per_replica = engine_max_num_seqs(g.config)
        g.max_num_seqs = per_replica * len(g.replicas) if per_replica else None

    # -- watching ---------------------------------------------------------------
    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.engine_poll_interval)
            try:
                await self.check_all()
            except Exception:  # the watcher must survive anything one replica does
                log.exception("engine watch failed")

    async def check_all(self) -> None:
        for g in self.groups.values():
            if g.config.discover:
                self._apply_discovered(g, await _resolve(g.config.discover, quiet=True))
        await asyncio.gather(*(self._check(g, r) for g in self.groups.values() for r in g.replicas))
        for r in [r for r in self._removed if r.outstanding == 0]:
            self._removed.remove(r)
            await r.aclose()

    async def _check(self, g: EngineGroup, r: Replica) -> None:
        if id(r) in self._restarting:
            return
        if r.process is not None and not r.process.alive():
            r.mark_down(f"process exited with code {r.process.proc.returncode if r.process.proc else None}")
            if g.config.restart:
                self._maybe_restart(g, r)
            return
        failure = await _probe(r)
        if failure is not None:
            r.health_strikes += 1
            if r.state != UP or failure.refused or r.health_strikes >= HEALTH_STRIKES:
                r.mark_down(f"health check failed: {failure}")
            else:
                log.info("replica %s failed a health check (%s); ejected if it fails again", r.label, failure)
            return
        r.health_strikes = 0
        if r.state == DOWN and g.config.managed:
            await self._readmit(g, r)
        elif r.state == DOWN:
            r.state, r.reason = UP, ""

    async def _readmit(self, g: EngineGroup, r: Replica) -> None:
        try:
            await self.adapters.reconcile(g, r)
        except Exception as e:
            r.mark_down(f"adapter sync failed: {getattr(e, 'message', e)!s}"[:300])
        else:
            log.info("replica %s readmitted", r.label)

    def _maybe_restart(self, g: EngineGroup, r: Replica) -> None:
        not_before, delay = self._backoff.get(id(r), (0.0, RESTART_BACKOFF[0]))
        if time.monotonic() < not_before:
            return
        self._backoff[id(r)] = (time.monotonic() + delay, min(delay * 2, RESTART_BACKOFF[1]))
        task = asyncio.get_running_loop().create_task(self._restart(g, r))
        self._restarting[id(r)] = task
        task.add_done_callback(lambda _: self._restarting.pop(id(r), None))

    async def _restart(self, g: EngineGroup, r: Replica) -> None:
        """Start the process again on the same port; it serves only once reconciled."""
        p = r.process
        r.state, r.reason = STARTING, "restarting"
        r.restarts += 1
        log.warning("restarting engine %s (restart %d)", r.label, r.restarts)
        await asyncio.to_thread(p.stop, 5.0)  # engine-core children of the dead API server
        p.start()
        try:
            await p.wait_healthy(g.config.startup_timeout)
        except EngineStartError as e:
            r.mark_down(str(e).splitlines()[0])
            return
        await self._readmit(g, r)
        if r.state == UP:
            self._backoff.pop(id(r), None)

    def _apply_discovered(self, g: EngineGroup, urls: list[str]) -> None:
        if not urls:  # a DNS hiccup must not empty the group
            return
        known = {r.url for r in g.replicas}
        for u in urls:
            if u not in known:
                log.info("replica %s discovered for %s", u, g.name)
                g.replicas.append(self._replica(g.config, u))
        for r in [r for r in g.replicas if r.url not in urls]:
            log.info("replica %s gone from %s", r.url, g.config.discover)
            g.replicas.remove(r)
            r.mark_down("gone from DNS")
            self._removed.append(r)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        restarts = list(self._restarting.values())
        for task in restarts:
            task.cancel()
        await asyncio.gather(*restarts, return_exceptions=True)  # none may start a process after this
        await self.adapters.drain()
        for g in self.groups.values():
            if g.config.managed and not g.config.local:
                await self.adapters.detach(g)
            for r in g.replicas:
                await r.aclose()
        await asyncio.gather(*[asyncio.to_thread(r.process.stop) for g in self.groups.values()
                               for r in g.replicas if r.process is not None])
        if self._own_store:
            _remove_store(self.store, keep=self.log_dir if self._keep_logs else None)


def _remove_store(store: Path, keep: Path | None) -> None:
    """Delete the server's own store, except `keep` (the log dir) when it lies inside it."""
    if keep is None or not keep.resolve().is_relative_to(store.resolve()):
        shutil.rmtree(store, ignore_errors=True)
        return
    kept = keep.resolve().relative_to(store.resolve()).parts[0]
    for child in store.iterdir():
        if child.name == kept:
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    log.warning("engine logs kept in %s", keep)


@dataclass(frozen=True)
class HealthFailure:
    reason: str
    refused: bool = False  # no connection at all: the engine is gone, not busy

    def __str__(self) -> str:
        return self.reason


async def _probe(r: Replica) -> HealthFailure | None:
    """None when /health answers 200, else why not."""
    try:
        resp = await r.client.get("/health", timeout=HEALTH_TIMEOUT)
    except httpx.HTTPError as e:
        if refused(e):
            return HealthFailure(f"cannot connect ({e})"[:200], refused=True)
        return HealthFailure(type(e).__name__)
    return None if resp.status_code == 200 else HealthFailure(f"HTTP {resp.status_code}")


async def _healthy(r: Replica) -> bool:
    return await _probe(r) is None


async def _resolve(hostport: str, quiet: bool = False) -> list[str]:
    """Every address a headless Service name resolves to, as replica URLs."""
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError as e:
        if not quiet:
            log.warning("cannot resolve %s: %s", hostport, e)
        return []
    addrs = sorted({i[4][0] for i in infos})
    return [f"http://[{a}]:{port}" if ":" in a else f"http://{a}:{port}" for a in addrs]
