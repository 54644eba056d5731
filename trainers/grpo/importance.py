"""Importance weights pi_trainer / pi_vllm from the loss's own forward pass.

TRL 1.16 computes the trainer's log-probs of the sampled tokens for these weights in a separate
no-grad forward over the whole rollout batch (`old_per_token_logps`), then runs the loss forward
over the same tokens again. When a rollout batch is trained on within one optimizer step
(`num_iterations` 1 and the accumulation window covering the batch: evalctl's default shape),
nothing changes the weights between the two passes, so the first pass's log-probs are the loss
forward's, detached; TRL itself uses exactly that (`per_token_logps.detach()`) when it has no vLLM
to correct for. Deriving the weights there saves one forward pass per step (about a third of a
CPU step on the demo). This module computes them as TRL's `_generate_and_score_completions` does
(same modes, clipping, NaN handling and metrics); `EndpointGRPOTrainer` decides when it may.
"""

from __future__ import annotations

import math

import torch


def importance_weights(trainer_logps: torch.Tensor, sampling_logps: torch.Tensor, mask: torch.Tensor,
                       mode: str, clip_min: float | None, clip_max: float | None) -> torch.Tensor:
    """exp(logp_trainer - logp_vllm) per token ((B, T)) or per sequence ((B, 1)), truncated to
    [clip_min, clip_max] (`*_truncate`) or zeroed outside it (`*_mask`). A token vLLM gave no
    log-prob for (NaN) weighs 1, as in TRL."""
    diff = torch.nan_to_num((trainer_logps - sampling_logps) * mask, nan=0.0)
    if mode.startswith("sequence_"):
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("_truncate"):
        return torch.clamp(ratio, min=clip_min, max=clip_max)
    if mode.endswith("_mask"):
        lo = -math.inf if clip_min is None else clip_min
        hi = math.inf if clip_max is None else clip_max
        return ratio.masked_fill((ratio < lo) | (ratio > hi), 0.0)
    raise ValueError(f"unknown importance sampling mode {mode!r}")


def mismatch_stats(trainer_logps: torch.Tensor, sampling_logps: torch.Tensor, mask: torch.Tensor,
                   ratio: torch.Tensor, per_sequence: bool) -> dict[str, torch.Tensor]:
    """TRL's `sampling/*` metrics for one batch: |logp_vllm - logp_trainer| over the sampled tokens
    vLLM scored, and the weights' min/mean/max."""
    keep = mask.bool()
    delta = torch.abs(trainer_logps - sampling_logps)[keep]
    delta = delta[~torch.isnan(delta)]
    flat = ratio.flatten() if per_sequence else ratio[keep]
    zero = torch.tensor(0.0, device=trainer_logps.device)

    def of(t: torch.Tensor, fn) -> torch.Tensor:
        return fn(t) if t.numel() else zero

    return {"sampling/sampling_logp_difference/mean": of(delta, torch.mean),
            "sampling/sampling_logp_difference/max": of(delta, torch.max),
            "sampling/importance_sampling_ratio/min": of(flat, torch.min),
            "sampling/importance_sampling_ratio/mean": of(flat, torch.mean),
            "sampling/importance_sampling_ratio/max": of(flat, torch.max)}
