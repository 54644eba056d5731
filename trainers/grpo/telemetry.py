"""One metrics.jsonl line per optimizer step, plus a progress line on the console.

TRL's own names are kept as they are (TensorBoard and wandb get them through transformers), and
the short names below are added beside them for the curves, the demo and docs/training.md.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger("evalctl.train.grpo")

ALIASES = {
    "reward_mean": "reward",
    "reward_std": "reward_std",
    "zero_std_groups": "frac_reward_zero_std",
    "kl": "kl",
    "entropy": "entropy",
    "clip_ratio": "clip_ratio/region_mean",
    "logprob_diff": "sampling/sampling_logp_difference/mean",  # mean |logp_vllm - logp_trainer|, sampled tokens
    "logprob_diff_max": "sampling/sampling_logp_difference/max",
    "is_ratio_mean": "sampling/importance_sampling_ratio/mean",
    "completion_length": "completions/mean_length",
}
CURVES = ["reward_mean", "reward_max", "zero_std_groups", "kl", "entropy", "clip_ratio", "logprob_diff",
          "sampled_tokens_per_s", "time_generation", "time_train", "time_step"]


def metrics_row(step: int, logs: dict) -> dict:
    row = {"step": step}
    for short, trl_name in ALIASES.items():
        if trl_name in logs:
            row[short] = logs[trl_name]
    row.update({k: v for k, v in logs.items() if (v is None or isinstance(v, (int, float, str))) and k not in row})
    return row


class MetricsFile(TrainerCallback):
    """Appends each training log to OUT/metrics.jsonl (main process only)."""

    def __init__(self, out: Path):
        self.path = Path(out) / "metrics.jsonl"

    def truncate_after(self, step: int) -> None:
        """A resumed run redoes the steps after its checkpoint: drop their old lines."""
        if self.path.exists():
            keep = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= step]
            self.path.write_text("".join(line + "\n" for line in keep))

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return
        row = metrics_row(state.global_step, logs)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        log.info("step %d/%d: reward %.4f (max %.4f) kl %s |dlogp| %s | sync %.2fs gen %.2fs train %.2fs v%s",
                 state.global_step, state.max_steps, row["reward_mean"], row.get("reward_max", float("nan")),
                 _fmt(row.get("kl")), _fmt(row.get("logprob_diff")), row.get("time_sync", 0.0),
                 row.get("time_generation", 0.0), row.get("time_train", 0.0), row.get("adapter_version"))


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def history(out: Path) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
