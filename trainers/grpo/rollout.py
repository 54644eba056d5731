"""TRL's `rollout_func`: G completions per prompt from the served policy version, as token ids.

The policy is trained on the exact tokens vLLM sampled (`return_token_ids`): decoding them to
text and encoding again gave other tokens in 16 of 16 samples on the tiny test model, and then
the update pushes on tokens the policy never chose. vLLM's log-probability of each sampled token
comes back too, so TRL can weigh the update by how far the trainer's probabilities drifted from
the engine's (importance sampling).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evaluators.task import Task

from ..endpoint import BackgroundLoop
from ..errors import RolloutError
from .sync import WeightSync, check_versions


def rollout_params(task: Task, temperature: float, top_p: float, max_tokens: int | None) -> dict[str, Any]:
    params = {k: v for k, v in task.sampling.items() if k not in ("temperature", "top_p", "n")}
    params.update(temperature=temperature, top_p=top_p)
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    params.setdefault("max_tokens", 256)
    if params.get("stop"):  # the stop string must be in the text, else it is not trained on, and EOS is guessed
        params["include_stop_str_in_output"] = True
    params["return_token_ids"] = True
    return params


def prompt_groups(prompts: list) -> list[tuple[Any, int]]:
    """TRL hands each process its prompts already repeated G times in a row; one request per run
    (`n` = its length) lets vLLM share the prompt's prefill across the group."""
    groups: list[tuple[Any, int]] = []
    for p in prompts:
        if groups and groups[-1][0] == p:
            groups[-1] = (p, groups[-1][1] + 1)
        else:
            groups.append((p, 1))
    return groups


def logprob_params(prompt) -> dict[str, Any]:
    """Ask for the sampled token's log-prob only (completions: logprobs=0; chat: top_logprobs=0)."""
    return {"logprobs": 0} if isinstance(prompt, str) else {"logprobs": True, "top_logprobs": 0}


@dataclass
class RolloutStats:
    seconds: float = 0.0  # the trainer's wait for this batch (the whole generation when not prefetched)
    completion_tokens: int = 0
    version: int | None = None  # the adapter version that sampled this batch
    engine_model: str | None = None
    calls: int = 0
    generation_seconds: float = 0.0  # the engine's time for this batch, overlapped with training or not
    prefetched: bool = False
    staleness: int = 0  # versions pushed since the one that sampled this batch


@dataclass
class Pending:
    """Rollouts of a coming step, sampled while the current one trains (--async-rollouts)."""
    step: int
    prompts: list
    version: int
    future: concurrent.futures.Future


class EndpointRollout:
    """Called by TRL as `rollout_func(prompts, trainer)`; returns prompt/completion ids and logprobs."""

    def __init__(self, loop: BackgroundLoop, sync: WeightSync, params: dict, seed: int, eos_token_id: int,
                 prefetch: bool = False):
        self.loop, self.sync, self.params = loop, sync, params
        self.seed, self.eos = seed, eos_token_id
        self.stats = RolloutStats()
        # --async-rollouts: `lookahead(step)` gives (next rollout step, its prompts) or None; the trainer sets it
        self.prefetch = prefetch
        self.lookahead: Callable[[int], tuple[int, list] | None] | None = None
        self.pending: Pending | None = None
        self.waited = 0.0  # time spent waiting for a prefetch before a push (the push must not race it)

    def request_seed(self, step: int, process: int, group: int) -> int:
        """A seed per request: reruns sample the same completions (vLLM offsets it per choice)."""
        return (self.seed * 1_000_003 + step * 10_007 + process * 1_009 + group) % (2**31 - 1)

    async def _generate(self, groups: list[tuple[Any, int]], step: int, process: int):
        client = self.loop.client
        t0 = time.perf_counter()
        jobs = [client.generate(self.sync.name, p, n=n, cache=False, seed=self.request_seed(step, process, i),
                                **self.params, **logprob_params(p))
                for i, (p, n) in enumerate(groups)]
        gens = await asyncio.gather(*jobs)
        return gens, time.perf_counter() - t0

    def wait_pending(self) -> None:
        """Block until the prefetched rollouts are in. WeightSync calls this before each push: every
        request of a prefetch must run on the version it was sent to, not the one being pushed."""
        if self.pending is not None and not self.pending.future.done():
            t0 = time.perf_counter()
            concurrent.futures.wait([self.pending.future])
            self.waited += time.perf_counter() - t0

    def _take_pending(self, step: int, prompts: list):
        """The prefetched batch if it is for this step and these prompts, else None (then the batch is
        sampled now: a prefetch is a guess at what TRL asks for next, checked here)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return None
        result = pending.future.result()  # a failed prefetch raises here, in the trainer's thread
        if pending.step != step or pending.prompts != prompts:
            return None
        return result, pending.version

    def _launch_next(self, step: int, version: int, process: int) -> None:
        nxt = self.lookahead(step) if self.prefetch and self.lookahead else None
        if nxt is None:
            return
        next_step, next_prompts = nxt
        coro = self._generate(prompt_groups(next_prompts), next_step, process)
        self.pending = Pending(next_step, list(next_prompts), version, self.loop.submit(coro))

    def __call__(self, prompts: list, trainer) -> dict[str, list]:
        t0 = time.perf_counter()
        version = self.sync.version
        if version is None:  # TRL syncs before the first rollout; a direct call must have pushed too
            version = self.sync.sync_weights()
        step, process = trainer.state.global_step, trainer.accelerator.process_index
        groups = prompt_groups(prompts)
        taken = self._take_pending(step, list(prompts))
        if taken is not None:
            (gens, gen_seconds), sampled_by = taken
        else:
            gens, gen_seconds = self.loop.run(self._generate(groups, step, process))
            sampled_by = version
        check_versions(gens, self.sync.name, sampled_by)
        self._launch_next(step, version, process)  # samples the next step from the version just pushed
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": []}
        for (_, n), g in zip(groups, gens):
            if g.token_ids is None or g.prompt_token_ids is None:
                raise RolloutError(f"{self.sync.name!r}: the endpoint returned no token ids; GRPO trains on the "
                                   "engine's own tokens and needs a vLLM upstream that honours return_token_ids")
            if len(g.token_ids) != n:
                raise RolloutError(f"{self.sync.name!r}: asked for {n} completions, got {len(g.token_ids)}")
            logprobs = g.token_logprobs or [None] * n
            for ids, lps in zip(g.token_ids, logprobs):
                ids = list(ids) or [self.eos]  # an empty completion still needs one token to carry its reward
                if lps is None or len(lps) != len(ids):
                    lps = [None] * len(ids)  # TRL reads None as "no sampling log-prob": no correction there
                out["prompt_ids"].append(list(g.prompt_token_ids))
                out["completion_ids"].append(ids)
                out["logprobs"].append([None if lp is None else float(lp) for lp in lps])
        waited, self.waited = self.waited, 0.0
        self.stats = RolloutStats(time.perf_counter() - t0 + waited, sum(len(c) for c in out["completion_ids"]),
                                  sampled_by, gens[0].engine_model if gens else None, self.stats.calls + 1,
                                  gen_seconds, taken is not None, version - sampled_by)
        return out
