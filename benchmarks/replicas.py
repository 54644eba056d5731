"""Replicas: throughput with 1 vs 2 vLLM replicas behind the gateway, and what routing costs.

Starts two vLLM CPU engines on the tiny model (each bound to its own core by default) and
two gateways that manage them as external replicas (`urls`): one with replica 0 only, one
with both. The same concurrent workload then runs, alternating rounds so drift hits every
path alike, against

    direct     engine 0 itself (the baseline),
    gateway-1  the gateway with one replica (routing overhead = gateway-1 vs direct),
    gateway-2  the gateway with two replicas (scale-out gain = gateway-2 vs gateway-1),

and prints a table with ratios plus the in-process cost of one routing decision.

    python benchmarks/replicas.py [--requests 200] [--concurrency 16] [--max-tokens 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import timeit
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from gateway_overhead import compare  # noqa: E402  (same workload and alternating rounds)

from evalctl.process import ServerProcess  # noqa: E402
from evalctl.tiny import build_tiny_model  # noqa: E402
from server.engine import EngineGroup, EngineProcess, Replica  # noqa: E402
from server.settings import EngineConfig  # noqa: E402


def start_engines(model_dir: Path, logs: Path, bind: bool) -> list[EngineProcess]:
    engines = []
    for i in range(2):
        env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
        if bind and (os.cpu_count() or 1) >= 2:
            env["VLLM_CPU_OMP_THREADS_BIND"] = str(i)  # one core each instead of both on core 0
        cfg = EngineConfig(model=str(model_dir), name="tiny", dtype="float32", max_model_len=512, env=env)
        engines.append(EngineProcess(cfg, i, logs / f"engine-{i}.log"))
    for e in engines:
        e.start()

    async def wait() -> list[float]:
        return await asyncio.gather(*(e.wait_healthy(900) for e in engines))

    print("engines healthy after " + ", ".join(f"{t:.0f}s" for t in asyncio.run(wait())))
    return engines


def gateway(urls: list[str], logs: Path, label: str) -> ServerProcess:
    config = logs / f"{label}.yaml"
    # Base traffic without the zero adapter: the direct baseline runs the same engine work.
    config.write_text(yaml.safe_dump({"engines": [{"name": "tiny", "urls": urls, "base_via_zero_adapter": False}]}))
    return ServerProcess(["--config", str(config)], logs / f"{label}.log").start(timeout=120)


def routing_cost_us() -> float:
    """One `pick()` among two replicas with affinity bookkeeping, in microseconds."""
    g = EngineGroup(EngineConfig(name="m", urls=["http://a", "http://b"]),
                    [Replica("http://a", client=None), Replica("http://b", client=None)])

    def one() -> None:
        r = g.pick("sft@v1")
        r.note_served("sft@v1")

    n = 100_000
    return timeit.timeit(one, number=n) / n * 1e6


def print_table(label: str, r: dict) -> None:
    base = r["direct"]
    print(f"\n{label}")
    print(f"{'path':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x direct':>9}")
    for name, m in r.items():
        print(f"{name:<10} {m['rps']:>8.1f} {m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f} {m['rps'] / base['rps']:>9.3f}")
    g1, g2 = r["gateway-1"], r["gateway-2"]
    print(f"2 replicas vs 1: throughput x{g2['rps'] / g1['rps']:.3f}; routing overhead (gateway-1 vs direct): "
          f"throughput x{g1['rps'] / base['rps']:.3f}, p50 {g1['p50_ms'] - base['p50_ms']:+.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-bind", action="store_true", help="Let vLLM place both engines (both land on core 0).")
    ap.add_argument("--stream", action="store_true", help="Also measure streaming requests.")
    ap.add_argument("--workdir", type=Path, default=Path(".cache/bench"))
    ap.add_argument("--out", type=Path, help="Write the results as JSON here too.")
    args = ap.parse_args()
    model_dir = build_tiny_model(Path(os.environ.get("EVALCTL_TEST_MODEL_DIR") or args.workdir / "tiny-model"))
    logs = Path(tempfile.mkdtemp(prefix="evalctl-bench-replicas-"))
    engines = start_engines(model_dir, logs, bind=not args.no_bind)
    report = {"settings": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(),
              "pick_us": routing_cost_us()}
    try:
        with gateway([engines[0].url], logs, "gateway-1") as g1, \
                gateway([e.url for e in engines], logs, "gateway-2") as g2:
            paths = {"direct": (engines[0].url, "tiny"), "gateway-1": (g1.url, "tiny"), "gateway-2": (g2.url, "tiny")}
            for stream in (False, True) if args.stream else (False,):
                label = "stream" if stream else "non_stream"
                report[label] = r = asyncio.run(compare(paths, args, stream))
                print_table(f"{label}: {args.requests} requests x {args.rounds} rounds, concurrency "
                            f"{args.concurrency}, {args.max_tokens} tokens each ({os.cpu_count()} CPUs)", r)
    finally:
        for e in engines:
            e.stop()
    print(f"\nrouting decision (pick + affinity bookkeeping): {report['pick_us']:.2f} us")
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
