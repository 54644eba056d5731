"""vLLM CPU's LoRA ops against server/vllm_plugin.py's, side by side.

Part 1 (no server): each op on the shapes a LoRA layer sees, vLLM 0.32's per-token gather +
einsum vs one matmul per adapter present. Part 2 (`--serve`): the same sampling workload as one
GRPO rollout batch (16 prompts x n=8 x 32 tokens, seeded, logprobs and token ids) through
`evalctl serve` with the plugin left out (VLLM_PLUGINS=none) and with it, alternating rounds.

    python benchmarks/lora_ops.py                      # op timings only
    python benchmarks/lora_ops.py --serve --model .cache/demo/model   # after `make demo`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def time_op(fn, *args, repeat: int = 20) -> float:
    fn(*args)
    t = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - t) / repeat


def op_table(tokens: list[int], rank: int, widths: list[int]) -> list[dict]:
    import torch
    from vllm.lora.ops.torch_ops import lora_ops

    from server import vllm_plugin

    torch.set_num_threads(1)
    rows = []
    for t in tokens:
        for width in widths:
            for name, (out, inp) in (("shrink", (rank, width)), ("expand", (width, rank))):
                x, w = torch.randn(t, inp), torch.randn(4, 1, out, inp)
                idx = torch.zeros(t, dtype=torch.long)
                y = torch.zeros(t, out)
                args = (x, w, y, idx, 1.0) if name == "shrink" else (x, w, y, idx, True)
                theirs = time_op(getattr(lora_ops, f"bgmv_{name}"), *args)
                ours = time_op(getattr(vllm_plugin, f"bgmv_{name}"), *args)
                rows.append({"op": name, "tokens": t, "out": out, "in": inp, "vllm_ms": theirs * 1e3,
                             "plugin_ms": ours * 1e3, "ratio": theirs / ours})
    return rows


async def rollout_batch(url: str, model: str, prompts: list[str], seed: int) -> tuple[float, int]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=600) as c:
        async def one(i, p):
            r = await c.post("/v1/completions", json={
                "model": model, "prompt": p, "n": 8, "max_tokens": 32, "temperature": 1.0, "seed": seed + i,
                "logprobs": 0, "return_token_ids": True})
            r.raise_for_status()
            return r.json()["usage"]["completion_tokens"]

        t = time.perf_counter()
        toks = await asyncio.gather(*[one(i, p) for i, p in enumerate(prompts)])
        return time.perf_counter() - t, sum(toks)


def serve_rounds(model: Path, rounds: int) -> dict:
    import httpx

    from evalctl.demo_task import problems
    from evalctl.process import ServerProcess
    from evaluators.tasks.gsm8k import PROMPT
    from server.lora_files import write_lora_adapter

    prompts = [PROMPT.format(question=p["question"]) for p in problems(16, seed=3)]
    work = Path(tempfile.mkdtemp(prefix="lora-ops-"))
    adapter = write_lora_adapter(model, work / "adapter", rank=16, scale=0.5, seed=1)
    out = {}
    for label, env in (("vLLM ops (VLLM_PLUGINS=none)", {"VLLM_PLUGINS": "none"}), ("plugin ops", {})):
        args = ["--model", str(model), "--name", "base", "--dtype", "float32", "--max-model-len", "512",
                "--max-lora-rank", "16", "--max-loras", "4", "--log-dir", str(work / "logs" / str(len(out)))]
        server = ServerProcess(args, work / f"serve-{len(out)}.log", env={"VLLM_CPU_KVCACHE_SPACE": "1", **env})
        server.start()
        try:
            httpx.post(f"{server.url}/v1/load_lora_adapter", json={"lora_name": "a", "lora_path": str(adapter)},
                       timeout=300).raise_for_status()
            runs = [asyncio.run(rollout_batch(server.url, "a", prompts, 100 * r)) for r in range(rounds + 1)][1:]
        finally:
            server.stop()
        secs = [s for s, _ in runs]
        out[label] = {"seconds": secs, "median_s": statistics.median(secs), "tokens": [n for _, n in runs]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", action="store_true", help="also time a rollout batch through evalctl serve")
    ap.add_argument("--model", type=Path, default=REPO / ".cache" / "demo" / "model")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs/lora_ops.json"))
    a = ap.parse_args()
    result = {"ops": op_table([128, 1600], 16, [128, 512])}
    print(f"{'op':7s} {'tokens':>6s} {'out x in':>10s} {'vLLM ms':>9s} {'plugin ms':>10s} {'ratio':>7s}")
    for r in result["ops"]:
        print(f"{r['op']:7s} {r['tokens']:6d} {r['out']:>4d} x {r['in']:<4d} {r['vllm_ms']:9.2f} "
              f"{r['plugin_ms']:10.3f} {r['ratio']:6.1f}x")
    if a.serve:
        result["serve"] = serve_rounds(a.model, a.rounds)
        base = None
        for label, r in result["serve"].items():
            base = base or r["median_s"]
            print(f"{label:30s} rollout batch median {r['median_s']:.2f}s  ({r['median_s'] / base:.2f}x of the first)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
