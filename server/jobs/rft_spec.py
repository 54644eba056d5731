"""OpenAI's reinforcement hyperparameters onto `evalctl train grpo`.

  batch_size          prompts per GRPO step (auto: min(4, training records))
  compute_multiplier  the group size: G = max(2, round(4 x compute_multiplier)) completions per
                      prompt (auto: 1, so G = 4); `num_generations` sets G directly
  n_epochs            passes over the training prompts: steps = ceil(records x n_epochs / batch_size)
                      (auto: 1); `max_steps` sets the step count directly
  learning_rate_multiplier  x GRPO's 1e-5 (auto: 1)
  eval_interval       grade the validation file every N steps, and at the last (auto: steps / 4,
                      at least 1); a servable checkpoint is saved at each evaluation
  eval_samples        completions per validation prompt (auto: 1, decoded greedily; more: sampled
                      at the rollout temperature, their rewards averaged)
Extensions (ReinforcementHyperparameters): max_tokens (256), temperature (1.0), beta (0.04),
loss_type (grpo), micro_batch_size (16, lowered to divide the step's completions), lora_rank, lora_alpha.
"""

from __future__ import annotations

import math

from ..errors import BadRequest
from ..graders import checked_grader, embedder, python_limits
from ..routing import ModelRouter
from ..settings import ServeSettings

P = "method.reinforcement.hyperparameters"


def _auto(h: dict, key: str, default):
    v = h.get(key)
    return default if v is None or v == "auto" else v


def micro_batch(total: int, cap: int) -> int:
    """The largest micro-batch <= cap that divides the step's completions (TRL needs equal ones)."""
    return max(d for d in range(1, min(cap, total) + 1) if total % d == 0)


def resolve_reinforcement(method, sent: dict, records: int, max_rank: int, router: ModelRouter,
                          settings: ServeSettings | None) -> tuple[dict, dict]:
    """(hyperparameters, spec extras: the grader and what grading needs) or a 400 naming the field."""
    settings = settings or ServeSettings()
    grader = checked_grader(method.grader, router, settings, "method.reinforcement.grader")
    h = {k: v for k, v in sent.items() if v is not None}
    if h.get("reasoning_effort") not in (None, "default"):
        raise BadRequest("reasoning_effort: only `default` applies to the models served here",
                         param=f"{P}.reasoning_effort")
    batch = _auto(h, "batch_size", max(1, min(4, records)))
    if batch > records:
        raise BadRequest(f"batch_size {batch} exceeds the {records} training records", param=f"{P}.batch_size")
    compute = float(_auto(h, "compute_multiplier", 1.0))
    group = h.get("num_generations") or max(2, round(4 * compute))
    epochs = _auto(h, "n_epochs", 1)
    steps = h.get("max_steps") or math.ceil(records * epochs / batch)
    rank = h.get("lora_rank") or min(16, max_rank)
    if rank > max_rank:
        raise BadRequest(f"lora_rank {rank} exceeds the engine's max_lora_rank {max_rank}", param=f"{P}.lora_rank")
    hyper = {
        "n_epochs": epochs, "batch_size": batch,
        "learning_rate_multiplier": float(_auto(h, "learning_rate_multiplier", 1.0)),
        "eval_interval": _auto(h, "eval_interval", max(1, steps // 4)), "eval_samples": _auto(h, "eval_samples", 1),
        "compute_multiplier": compute, "reasoning_effort": "default",
        "max_steps": steps, "num_generations": group, "max_tokens": h.get("max_tokens") or 256,
        "temperature": h.get("temperature") or 1.0, "beta": h.get("beta", 0.04),
        "loss_type": h.get("loss_type") or "grpo",
        "micro_batch_size": micro_batch(batch * group, h.get("micro_batch_size") or 16),
        "lora_rank": rank, "lora_alpha": h.get("lora_alpha") or 2.0 * rank,
    }
    limits = python_limits(settings)
    extra = {"grader": grader.model_dump(exclude_none=True), "embed_model": embedder(router),
             "python_limits": {"timeout": limits.timeout, "memory_mb": limits.memory_mb} if limits else None}
    return hyper, extra
