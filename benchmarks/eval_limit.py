"""`evalctl run gsm8k` against the engine's own limit, in one run.

    python benchmarks/eval_limit.py                 # tiny model, 256 GSM8K r1_zero prompts, greedy, 64 tokens
    python benchmarks/eval_limit.py --limit 512 --tiny-dir /tmp/tiny

Rows, each as wall time and its ratio to the limit:
- vLLM offline `LLM.generate` on the same prompts: the engine's limit (load and a warm-up excluded);
- `evalctl run` against a plain vLLM server: one prompt per request at --concurrency 16 (the old
  default) and 256, then all defaults (concurrency from the engine, several prompts per request);
- `evalctl run` through `evalctl serve` with base traffic forced through the all-zero adapter
  (the old default), and with the defaults (a self-test decides; the output says what it decided):
  one prompt per request at 256 and at the default concurrency, then all defaults.

Every engine runs with the same settings: float32, max_model_len 1024, 1 GiB KV cache, no prefix
caching (a later row must not get an earlier row's prompts for free), and the whole-prompt
prefill evalctl gives vLLM CPU engines (--no-enable-chunked-prefill, see server/engine.py), also
on the plain server and offline. One engine at a time. `evalctl run` is a subprocess, as a user
runs it: "run" is its own request phase (summary.json's wall_s), "process" adds interpreter
start, imports and the pre-flight check. The ratio the goal is stated in uses "run".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalctl.process import ServerProcess, wait_healthy  # noqa: E402
from evaluators import runner  # noqa: E402
from evaluators.cli import load_samples  # noqa: E402
from evaluators.data import data_root  # noqa: E402
from evaluators.registry import TASKS  # noqa: E402
from server.engine import free_port  # noqa: E402

MAX_MODEL_LEN = 1024
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}
WHOLE_PREFILL = ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(max(MAX_MODEL_LEN, 4096))]
ENGINE_ARGS = ["--dtype", "float32", "--max-model-len", str(MAX_MODEL_LEN), "--no-enable-prefix-caching",
               *WHOLE_PREFILL]

OFFLINE = """
import json, sys, time
from vllm import LLM, SamplingParams
cfg = json.load(open(sys.argv[1]))
llm = LLM(cfg["model"], dtype="float32", max_model_len=cfg["max_model_len"], enable_prefix_caching=False,
          enable_chunked_prefill=False, max_num_batched_tokens=cfg["batched_tokens"])
params = SamplingParams(temperature=0, max_tokens=cfg["max_tokens"], stop=cfg["stop"])
llm.generate(cfg["prompts"][:8], params, use_tqdm=False)  # warm-up, as the servers get one
t0 = time.perf_counter()
outs = llm.generate(cfg["prompts"], params, use_tqdm=False)
wall = time.perf_counter() - t0
print("RESULT", json.dumps({"wall": wall, "tokens": sum(len(o.outputs[0].token_ids) for o in outs)}))
"""


def offline_limit(args, prompts: list[str], sampling: dict, work: Path) -> dict:
    cfg = work / "offline.json"
    cfg.write_text(json.dumps({"model": str(args.model_dir), "max_model_len": MAX_MODEL_LEN, "prompts": prompts,
                               "batched_tokens": max(MAX_MODEL_LEN, 4096), "max_tokens": args.max_tokens,
                               "stop": sampling.get("stop") or []}))
    proc = subprocess.run([sys.executable, "-c", OFFLINE, str(cfg)], capture_output=True, text=True,
                          env={**os.environ, **ENV}, timeout=900)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"offline vLLM failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def evalctl_run(args, url: str, work: Path, concurrency: int | None, batch: int | None = None) -> dict:
    out = work / f"run-{time.monotonic_ns()}"  # fresh: no resume, no cache
    cmd = [sys.executable, "-m", "evalctl.cli", "run", "gsm8k", "--model", "tiny", "--base-url", url,
           "--limit", str(args.limit), "--temperature", "0", "--max-tokens", str(args.max_tokens),
           "--data", str(args.data), "--out", str(out), "--no-progress"]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    if batch is not None:
        cmd += ["--batch-size", str(batch)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"evalctl run failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    t = summary["timings"]
    return {"process": wall, "run": t["wall_s"], "concurrency": t["concurrency"], "batch": t["batch_size"],
            "failed": summary["num_failed"], "tokens": summary["tokens"]["completion"]}


def warm(url: str) -> None:
    for _ in range(2):
        httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "warm up", "max_tokens": 8}, timeout=300)


class PlainVLLM:
    """`vllm serve` as a user would start it, with the same engine settings as the gateway's."""

    def __init__(self, model: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
                    "--served-model-name", "tiny", "--port", str(self.port), *ENGINE_ARGS]
        self.log = log

    def __enter__(self) -> "PlainVLLM":
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **ENV},
                                         start_new_session=True)
        if wait_healthy(self.proc, self.url, 900):
            return self
        if self.proc.poll() is not None:
            sys.exit(f"vLLM exited with code {self.proc.returncode}; see {self.log}")
        self.__exit__()
        sys.exit(f"vLLM was not healthy after 900 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def gateway(model: Path, log: Path, *extra: str) -> ServerProcess:
    args = ["--model", str(model), "--name", "tiny", "--dtype", "float32", "--max-model-len", str(MAX_MODEL_LEN),
            "--max-lora-rank", "8", "--vllm-arg=--no-enable-prefix-caching", *extra]
    return ServerProcess(args, log, env=ENV)  # its CPU engine gets WHOLE_PREFILL from the gateway itself


def _how(concurrency: int | None, batch: int | None) -> str:
    if concurrency is None and batch is None:
        return "all defaults"
    c = f"--concurrency {concurrency}" if concurrency else "default concurrency"
    return f"{c}, " + ("one prompt per request" if batch == 1 else "default batching")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=256)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--data", type=Path, help="GSM8K test.jsonl (default: the shared data folder's).")
    p.add_argument("--tiny-dir", type=Path, help="Reuse a tiny model build.")
    p.add_argument("--json", type=Path, help="Also write the rows here.")
    args = p.parse_args()
    from evalctl.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="eval-limit-"))
    args.model_dir = build_tiny_model(args.tiny_dir or work / "tiny")
    args.data = (args.data or data_root() / "gsm8k" / "test.jsonl").resolve()
    task = TASKS.get("gsm8k")
    prompts = [s["prompt"] for s in load_samples(task, args.data, args.limit)]  # what `evalctl run` sends
    sampling = runner.sampling_params(task, temperature=0, max_tokens=args.max_tokens)
    load_before = os.getloadavg()
    rows: list[tuple[str, dict]] = []
    try:
        limit = offline_limit(args, prompts, sampling, work)
        rows.append(("vLLM offline `LLM.generate` (the limit)", {"run": limit["wall"], "tokens": limit["tokens"]}))
        with PlainVLLM(args.model_dir, work / "vllm.log") as plain:
            warm(plain.url)
            # (concurrency, prompts per request): one request per prompt as before, then the defaults
            for c, b in ((16, 1), (256, 1), (None, None)):
                rows.append((f"`evalctl run` -> plain vLLM server, {_how(c, b)}",
                             evalctl_run(args, plain.url, work, c, b)))
        decision = None
        for label, extra in (("zero adapter forced on", ["--base-via-zero-adapter"]), ("defaults", [])):
            with gateway(args.model_dir, work / f"gateway-{len(rows)}.log", *extra).start() as gw:
                engine = httpx.get(f"{gw.url}/v1/engines", timeout=30).json()["data"][0]
                if not extra:
                    decision = engine["zero_adapter"]
                warm(gw.url)
                for c, b in ((256, 1), (None, 1), (None, None)) if not extra else ((256, 1), (None, None)):
                    rows.append((f"`evalctl run` -> `evalctl serve` ({label}), {_how(c, b)}",
                                 evalctl_run(args, gw.url, work, c, b)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0][1]["run"]
    print(f"tiny model, {args.limit} GSM8K r1_zero prompts, greedy, {args.max_tokens} tokens, "
          f"stop {sampling.get('stop')}; "
          f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"self-test with the defaults: {decision}")
    print("| path | in flight | prompts/request | run s | x limit | process s | completion tokens | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        proc = f"{r['process']:.2f}" if "process" in r else "-"
        print(f"| {name} | {r.get('concurrency', '-')} | {r.get('batch', '-')} | {r['run']:.2f} | "
              f"{r['run'] / base:.2f}x | {proc} | {r['tokens']} | {r.get('failed', '-')} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "decision": decision, "load": [load_before, os.getloadavg()]},
                                        indent=1))


if __name__ == "__main__":
    main()
