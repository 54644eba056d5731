"""TRL's `rollout_func`: G completions per prompt from the served policy version, as token ids.

The policy is trained on the exact tokens vLLM sampled (`return_token_ids`): decoding them to
text and encoding again gave other tokens in 16 of 16 samples on the tiny test model, and then
the update pushes on tokens the policy never chose. vLLM's log-probability of each sampled token
comes back too, so TRL can weigh the update by how far the trainer's probabilities drifted from
the engine's (importance sampling).
"""

from __future__ import annotations

import asyncio
import time
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
    seconds: float = 0.0
    completion_tokens: int = 0
    version: int | None = None
    engine_model: str | None = None
    calls: int = 0


class EndpointRollout:
    """Called by TRL as `rollout_func(prompts, trainer)`; returns prompt/completion ids and logprobs."""

    def __init__(self, loop: BackgroundLoop, sync: WeightSync, params: dict, seed: int, eos_token_id: int):
        self.loop, self.sync, self.params = loop, sync, params
        self.seed, self.eos = seed, eos_token_id
        self.stats = RolloutStats()

    def request_seed(self, step: int, process: int, group: int) -> int:
        """A seed per request: reruns sample the same completions (vLLM offsets it per choice)."""
        return (self.seed * 1_000_003 + step * 10_007 + process * 1_009 + group) % (2**31 - 1)

    async def _generate(self, groups: list[tuple[Any, int]], step: int, process: int):
        client = self.loop.client
        jobs = [client.generate(self.sync.name, p, n=n, cache=False, seed=self.request_seed(step, process, i),
                                **self.params, **logprob_params(p))
                for i, (p, n) in enumerate(groups)]
        return await asyncio.gather(*jobs)

    def __call__(self, prompts: list, trainer) -> dict[str, list]:
        t0 = time.perf_counter()
        version = self.sync.version
        if version is None:  # TRL syncs before the first rollout; a direct call must have pushed too
            version = self.sync.sync_weights()
        groups = prompt_groups(prompts)
        gens = self.loop.run(self._generate(groups, trainer.state.global_step, trainer.accelerator.process_index))
        check_versions(gens, self.sync.name, version)
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
        self.stats = RolloutStats(time.perf_counter() - t0, sum(len(c) for c in out["completion_ids"]), version,
                                  gens[0].engine_model if gens else None, self.stats.calls + 1)
        return out
