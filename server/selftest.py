"""Does an engine need base traffic routed through the all-zero LoRA adapter?

vLLM CPU 0.32's LoRA ops apply the *last* adapter slot to base-model tokens (index -1 wraps
around; vllm-project/vllm#48421), so once `max_loras` adapters are active, base requests
batched beside LoRA requests come out wrong. Engines evalctl starts load server/vllm_plugin.py,
which fixes the ops; an engine evalctl did not start (an external URL, a different build) may
still have the bug. Routing base traffic through an all-zero adapter avoids it, but puts every
base request on the LoRA path: 2.6x wall time on a 256-prompt eval (benchmarks/eval_limit.py).
So at start each engine is asked: greedy base requests sent alone (no adapter loaded yet), then
the same requests sent among requests to `max_loras` copies of a random, non-zero adapter, so
that every slot, the last one included, holds weights that change outputs. The workaround
turns on only for an engine whose base outputs differ, or when the config forces it either way.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from .lora_files import write_lora_adapter

log = logging.getLogger("evalctl.selftest")
SELFTEST_ADAPTER = "__evalctl_selftest__"
PROMPTS = ["Ann has 3 pens and", "The capital of France is", "def add(a, b):", "12 + 30 =", "Once upon a time",
           "Question: what is 7 times 8?"]
BASE_TOKENS = 16
LORA_TOKENS = 32  # longer than the base requests, so LoRA requests run for all of their decode steps
ROUNDS = 2  # the mixed batch twice: scheduling differs between rounds


@dataclass(frozen=True)
class ZeroAdapterDecision:
    enabled: bool
    reason: str

    def describe(self) -> dict:
        return {"enabled": self.enabled, "reason": self.reason}


async def _greedy(client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int) -> str:
    r = await client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": max_tokens,
                                                   "temperature": 0}, timeout=300)
    r.raise_for_status()
    return r.json()["choices"][0]["text"]


async def base_batching_difference(client: httpx.AsyncClient, base: str, adapter_dir: Path,
                                   slots: int = 1) -> str | None:
    """None when base outputs are the same alone and batched among LoRA requests, else the
    first difference. Loads `adapter_dir` on the engine under `slots` names (one adapter slot
    each) and unloads them."""
    alone = [await _greedy(client, base, p, BASE_TOKENS) for p in PROMPTS]  # before any slot is filled
    names = [f"{SELFTEST_ADAPTER}{i}" for i in range(slots)]
    try:
        for name in names:
            r = await client.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(adapter_dir)},
                                  timeout=300)
            r.raise_for_status()
        lora_prompts = [(names[i % slots], PROMPTS[i % len(PROMPTS)]) for i in range(max(2 * len(PROMPTS), slots))]
        lora_changed = False
        for round_ in range(ROUNDS):
            # LoRA requests first, so the engine schedules the base ones into a batch that holds them.
            outs = await asyncio.gather(*[_greedy(client, n, p, LORA_TOKENS) for n, p in lora_prompts],
                                        *[_greedy(client, base, p, BASE_TOKENS) for p in PROMPTS])
            for p, want, got in zip(PROMPTS, alone, outs[len(lora_prompts):]):
                if got != want:
                    return f"round {round_ + 1}, prompt {p!r}: {want!r} alone, {got!r} among LoRA requests"
            lora_changed |= any(not lora.startswith(alone[PROMPTS.index(p)])
                                for lora, (_, p) in zip(outs, lora_prompts))
        if not lora_changed:  # the LoRA path was not really taken: the test proves nothing
            raise RuntimeError("the self-test adapter changed no output")
        return None
    finally:
        for name in names:
            await client.post("/v1/unload_lora_adapter", json={"lora_name": name}, timeout=300)


async def decide(forced: bool | None, client: httpx.AsyncClient, base: str, model_dir: Path,
                 scratch: Path, max_rank: int, max_loras: int = 1) -> ZeroAdapterDecision:
    """`forced` is the config's base_via_zero_adapter: True/False win, None runs the self-test."""
    if forced is not None:
        return ZeroAdapterDecision(forced, f"base_via_zero_adapter={str(forced).lower()} in the config")
    try:
        adapter = await asyncio.to_thread(write_lora_adapter, model_dir, scratch, rank=min(8, max_rank), scale=0.5,
                                          seed=19)
        diff = await base_batching_difference(client, base, adapter, slots=max_loras)
    except Exception as e:  # an engine that cannot run the test gets the safe path
        return ZeroAdapterDecision(True, f"self-test could not run ({type(e).__name__}: {str(e)[:200]}); on to be safe")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if diff is not None:
        return ZeroAdapterDecision(True, f"self-test: base outputs changed when batched with LoRA requests ({diff})")
    return ZeroAdapterDecision(False, f"self-test: {len(PROMPTS)} greedy base outputs identical alone and batched "
                                      f"among LoRA requests "
                                      f"on all {max_loras} adapter slots ({ROUNDS} rounds)")
