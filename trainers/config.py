"""Trainer settings as pydantic models: one source for names, types, defaults and help,
turned into click options by `clients.cli_options.field_options`.

Nothing here imports torch, so `evalctl --help` stays fast and the CLI import path light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LoraSettings(_Base):
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA alpha (the update is scaled by alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: str = Field(DEFAULT_TARGETS, description="Comma-separated module names LoRA wraps "
                                "(attention + MLP projections), or 'all-linear'.")
    init: Path | None = Field(None, description="Start from this LoRA adapter directory (e.g. `lora svd-init`'s).")
    load_in_4bit: bool = Field(False, description="QLoRA: load the base in 4-bit nf4 (needs CUDA and bitsandbytes).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto: bfloat16 on CUDA, float32 on CPU.")


class OptimSettings(_Base):
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data (ignored when --max-steps > 0).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: use --epochs).")
    batch_size: int = Field(4, ge=1, description="Samples per device batch.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(1024, ge=8, description="Truncate tokenized samples to this length.")
    warmup: float = Field(0.0, ge=0, description="LR warm-up steps, or a fraction of all steps when < 1.")
    seed: int = Field(0, description="Random seed.")
    logging_steps: int = Field(1, ge=1, description="Log every N optimizer steps.")
    report_to: str = Field("tensorboard", description="Comma-separated: tensorboard, wandb (if installed), none.")


class PushSettings(_Base):
    push: str | None = Field(None, description="When done, load the adapter into the server under this name.")
    base_name: str | None = Field(None, description="Served base model the pushed adapter belongs to "
                                  "(only needed when several serve LoRA).")


class InLoopEvalSettings(_Base):
    """Evaluation of the version just pushed, every N steps, by the evaluator runner (greedy)."""
    eval_task: str | None = Field(None, description="Evaluator task run on the pushed adapter during training "
                                  "(default with --eval-every: the training task).")
    eval_data: Path | None = Field(None, description="Data file for --eval-task (default: the task's own).")
    eval_every: int = Field(0, ge=0, description="Evaluate the pushed version every N steps and at the end "
                            "(0: never); the best one is served as NAME-best.")
    eval_limit: int | None = Field(None, ge=1, description="Evaluate only the first K samples of --eval-data.")
    eval_max_tokens: int | None = Field(None, ge=1, description="Completion cap for the in-loop eval "
                                        "(default: the training cap, else the task's).")


class SFTSettings(LoraSettings, OptimSettings, PushSettings, InLoopEvalSettings):
    model: str = Field(description="Base model path or hub id.")
    data: Path = Field(description="Alpaca, ShareGPT, OpenAI messages or prompt/completion file (.json/.jsonl).")
    out: Path = Field(description="Output directory (the adapter lands in OUT/adapter).")
    completion_only_loss: bool = Field(True, description="Train on the completion tokens only.")
    normalize_weights: bool = Field(True, description="Rescale the `weight` column to mean 1 "
                                    "(keeps the learning rate meaningful).")


class DPOSettings(LoraSettings, OptimSettings, PushSettings):
    model: str = Field(description="Base model path or hub id.")
    data: Path = Field(description="prompt/chosen/rejected file (plain text or conversational).")
    out: Path = Field(description="Output directory (the adapter lands in OUT/adapter).")
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate.")
    beta: float = Field(0.1, gt=0, description="DPO beta (strength of the implicit KL to the reference).")
    loss_type: str = Field("sigmoid", description="TRL DPO loss type (sigmoid, ipo, hinge, ...).")


class SamplingSettings(_Base):
    n: int = Field(8, ge=1, description="Completions per prompt.")
    temperature: float = Field(0.8, ge=0, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling p.")
    max_tokens: int | None = Field(None, ge=1, description="Completion length cap (default: the task's).")
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")
    sample_seed: int | None = Field(None, description="vLLM sampling seed (reproducible samples).")


class SampleSettings(SamplingSettings):
    task: str = Field(description="Task name (an evaluator task or a trainers toy task).")
    model: str = Field(description="Served model or adapter name to sample from.")
    data: Path | None = Field(None, description="Task data file (default: the task's own).")
    out: Path = Field(description="Output .jsonl (one line per prompt).")


class RSSettings(SFTSettings, SamplingSettings):
    data: Path | None = Field(None, description="Task data file (default: the task's own).")
    task: str = Field(description="Task whose primary scorer decides what is correct.")
    sample_model: str | None = Field(None, description="Served name to sample from (required unless --samples).")
    samples: Path | None = Field(None, description="Reuse an `evalctl sample` output instead of sampling.")
    threshold: float = Field(1.0, description="A completion is correct when the task's primary score >= this.")


class DistillSettings(_Base):
    teacher: str = Field(description="Served teacher model name.")
    data: Path | None = Field(None, description="Raw questions: .jsonl/.json with question + answer (+ category); "
                              "with --task, that task's data file (default: its own).")
    out: Path = Field(description="Output directory: sft.jsonl, rl.jsonl, test.jsonl, filter_stats.json.")
    task: str | None = Field(None, description="Read the questions through this evaluator task (its prompt text, "
                             "gold answer and category, e.g. finance's question types); its test.jsonl/rl.jsonl "
                             "then load back as that task's --data.")
    judge: bool = Field(True, description="Filter with an LLM judge served by the endpoint.")
    judge_constrained: bool = Field(True, description="Decode the judge's verdict under its JSON shape (vLLM "
                                    "structured outputs): an unreadable verdict would drop a good sample.")
    judge_model: str | None = Field(None, description="Served judge model (default: the teacher).")
    judge_threshold: float = Field(6.0, description="Keep when the judge's mean rubric score (1-10) >= this.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Share of kept samples held out as test "
                                 "(stratified by category).")
    n: int = Field(1, ge=1, description="Teacher samples per question (the first that passes is kept).")
    temperature: float = Field(0.6, ge=0, description="Teacher sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Teacher nucleus sampling p.")
    max_tokens: int = Field(1024, ge=1, description="Teacher completion length cap.")
    limit: int | None = Field(None, ge=1, description="Use only the first N questions.")
    seed: int = Field(0, description="Seed for the split.")


class GRPOSettings(LoraSettings, PushSettings, InLoopEvalSettings):
    model: str = Field(description="Base model path (trained locally; the server must serve the same base).")
    task: str = Field(description="Task: an evaluator task (its scorers) or a toy task (toy-fraction, ...).")
    out: Path = Field(description="Output directory: adapter, checkpoints, metrics, TensorBoard, curves.")
    name: str = Field("grpo", description="Adapter name the policy is served under while training.")
    data: Path | None = Field(None, description="Task data file (default: the task's own).")
    steps: int = Field(50, ge=1, description="Rollout batches (each one pushes, samples, scores, trains).")
    prompts_per_step: int = Field(4, ge=1, description="Prompts per step (all processes together).")
    num_generations: int = Field(8, ge=2, description="Completions per prompt (the group size G).")
    learning_rate: float = Field(1e-5, gt=0, description="AdamW learning rate (constant).")
    beta: float = Field(0.04, ge=0, description="KL coefficient to the reference: the base, or the --init "
                        "adapter as it started.")
    clip_eps: float = Field(0.2, gt=0, description="PPO ratio clip range (TRL's epsilon).")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = Field(
        "grpo", description="TRL's token aggregation: grpo (per-sequence mean), dr_grpo (sum / max_tokens), "
        "dapo (mean over all tokens), bnpo, cispo, sapo.")
    scale_rewards: bool = Field(True, description="Divide advantages by the group's reward std "
                                "(Dr. GRPO: --no-scale-rewards).")
    importance_sampling: Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask", "none"] = \
        Field("token_truncate", description="Correct the update for the engine/trainer mismatch with vLLM's "
              "sampling log-probs (truncated importance weights); none: off.")
    importance_cap: float = Field(2.0, gt=0, description="Upper bound of the importance weights (truncated "
                                  "above, or masked, per --importance-sampling).")
    async_rollouts: bool = Field(False, description="Sample the next step's rollouts while this step trains "
                                 "(one process): they come from the weights one update older, and the "
                                 "importance weights correct for it.")
    ppo_epochs: int = Field(1, ge=1, description="Passes over each rollout batch (TRL's num_iterations).")
    minibatches: int = Field(1, ge=1, description="Optimizer steps per pass over a rollout batch.")
    micro_batch_size: int = Field(16, ge=1, description="Sequences per forward/backward (memory bound).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Rollout nucleus sampling p.")
    max_tokens: int | None = Field(None, ge=1, description="Completion length cap (default: the task's).")
    rewards: str | None = Field(None, description="Comma-separated task scorers to sum (default: the primary).")
    reward_weights: str | None = Field(None, description="Comma-separated weights for --rewards.")
    judge_model: str | None = Field(None, description="Add a judge reward from this served model.")
    judge_weight: float = Field(0.0, ge=0, description="Weight of the judge reward (mean rubric score, 0-1).")
    judge_max_tokens: int = Field(256, ge=1, description="Completion cap for each judge verdict.")
    judge_constrained: bool = Field(True, description="Decode the judge's verdict under its JSON shape (vLLM "
                                    "structured outputs): an unparseable verdict would be a lost reward.")
    save_every: int = Field(10, ge=1, description="Checkpoint every N steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept on disk.")
    resume: bool = Field(False, description="Continue from the newest checkpoint in OUT (step, optimizer, curves).")
    seed: int = Field(0, description="Random seed (prompt order, sampling seeds).")
    report_to: str = Field("tensorboard", description="Comma-separated: tensorboard, wandb (if installed), none.")
    cpu_threads: int = Field(0, ge=0, description="Torch CPU threads when training on CPU (0: torch's default; "
                             "1 is far faster beside a vLLM CPU engine on the same cores).")


class SvdInitSettings(_Base):
    teacher: Path = Field(description="LoRA adapter dir, a .safetensors of deltas, or a fine-tuned model dir "
                          "(with --base).")
    rank: int = Field(ge=1, description="Student LoRA rank.")
    out: Path = Field(description="Output adapter directory.")
    base: Path | None = Field(None, description="Base model dir, to take ΔW = teacher - base from full weights.")
    alpha: float | None = Field(None, gt=0, description="Student lora_alpha (default: 2 * rank).")
    target_modules: str | None = Field(None, description="Comma-separated module names to keep (default: all).")


class MergeSettings(_Base):
    model: str = Field(description="Base model path or hub id.")
    adapter: Path = Field(description="LoRA adapter directory.")
    out: Path = Field(description="Output directory for the merged model (servable by vLLM).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Merged weights dtype; auto: the base's own.")
