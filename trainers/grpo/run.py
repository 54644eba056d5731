"""`evalctl train grpo`: our settings onto TRL's GRPOConfig, the endpoint seam, and the outputs.

One "step" is one rollout batch: prompts_per_step prompts x G completions (all processes
together), sampled from the version just pushed, then `minibatches` optimizer steps over it per
`ppo_epochs` pass. Checkpoints, resume (step, optimizer, scheduler, RNG, data order) and
multi-process training are TRL's / transformers'; outputs: OUT/adapter, OUT/metrics.jsonl,
TensorBoard under OUT/runs, OUT/grpo_curves.png, OUT/train_summary.json.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from transformers.trainer_utils import get_last_checkpoint

from ..config import GRPOSettings
from ..endpoint import BackgroundLoop, Endpoint, push_adapter
from ..errors import TrainError
from ..in_loop_eval import EvalCallback, InLoopEval
from ..modeling import load_policy, report_targets
from ..report import plot_curves
from ..tasks import get_task, load_samples
from .rewards import reward_functions
from .rollout import EndpointRollout, rollout_params
from .sync import WeightSync, save_adapter
from .telemetry import CURVES, MetricsFile, history
from .trainer import EndpointGRPOTrainer

log = logging.getLogger("evalctl.train.grpo")


def batch_shape(cfg: GRPOSettings, world: int) -> dict[str, int]:
    """TRL's batch arguments for one rollout batch of prompts_per_step x G over `world` processes."""
    total = cfg.prompts_per_step * cfg.num_generations
    if total % world:
        raise TrainError(f"--prompts-per-step x --num-generations = {total} completions do not split over "
                         f"{world} processes")
    local = total // world
    micro = min(cfg.micro_batch_size, local)
    if local % micro:
        raise TrainError(f"--micro-batch-size {micro} does not divide the {local} completions per process")
    per_gen = local // micro
    if per_gen % cfg.minibatches:
        raise TrainError(f"--minibatches {cfg.minibatches} does not divide the {per_gen} micro-batches "
                         f"per process (--micro-batch-size {micro})")
    return {"per_device_train_batch_size": micro, "steps_per_generation": per_gen,
            "gradient_accumulation_steps": per_gen // cfg.minibatches}


def grpo_config(cfg: GRPOSettings, params: dict, weights: list[float], world: int):
    from trl import GRPOConfig

    cuda = torch.cuda.is_available()
    return GRPOConfig(
        output_dir=str(cfg.out), report_to=report_targets(cfg.report_to),
        max_steps=cfg.steps * cfg.minibatches * cfg.ppo_epochs, learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=cfg.max_grad_norm, seed=cfg.seed,
        logging_steps=1, save_strategy="steps", save_steps=cfg.save_every * cfg.minibatches * cfg.ppo_epochs,
        save_total_limit=cfg.keep_checkpoints, use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        disable_tqdm=True, disable_dropout=True, remove_unused_columns=False, dataloader_num_workers=0,
        num_generations=cfg.num_generations, max_completion_length=params["max_tokens"],
        temperature=cfg.temperature, top_p=cfg.top_p, beta=cfg.beta, epsilon=cfg.clip_eps,
        num_iterations=cfg.ppo_epochs, loss_type=cfg.loss_type, scale_rewards="group" if cfg.scale_rewards else "none",
        reward_weights=weights, log_completions=False,
        vllm_importance_sampling_mode="token_truncate" if cfg.importance_sampling == "none" else cfg.importance_sampling,
        vllm_importance_sampling_clip_max=cfg.importance_cap,
        **batch_shape(cfg, world))


def train_dataset(samples: list[dict], prompts_per_step: int):
    from datasets import Dataset

    if len(samples) < prompts_per_step:
        raise TrainError(f"{len(samples)} training prompts are fewer than --prompts-per-step {prompts_per_step}")
    try:
        return Dataset.from_list(samples)
    except (TypeError, ValueError) as e:  # mixed column types across records (Arrow wants one per column)
        raise TrainError(f"training data: columns of mixed types cannot form a dataset ({e})") from None


def build(cfg: GRPOSettings, endpoint: Endpoint, loop: BackgroundLoop):
    task = get_task(cfg.task)
    samples = load_samples(task, cfg.data)
    params = rollout_params(task, cfg.temperature, cfg.top_p, cfg.max_tokens)
    funcs, weights, rewards_log = reward_functions(task, cfg.rewards, cfg.reward_weights, cfg.judge_model,
                                                   cfg.judge_weight, loop, cfg.judge_max_tokens,
                                                   cfg.judge_constrained)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    args = grpo_config(cfg, params, weights, world)
    if cfg.cpu_threads and not torch.cuda.is_available():
        torch.set_num_threads(cfg.cpu_threads)
    model, tok = load_policy(cfg.model, cfg, seed=cfg.seed)
    if cfg.async_rollouts and world > 1:
        raise TrainError("--async-rollouts runs in one process: each accelerate process would need its own "
                         "slice of the next batch")
    if cfg.async_rollouts and cfg.importance_sampling == "none":
        log.warning("--async-rollouts with --importance-sampling none: rollouts one update old are not corrected")
    rollout = EndpointRollout(loop, None, params, cfg.seed, tok.eos_token_id, prefetch=cfg.async_rollouts)
    work = Path(cfg.out) / "policy"
    trainer = EndpointGRPOTrainer(
        model=model, reward_funcs=funcs, args=args, train_dataset=train_dataset(samples, cfg.prompts_per_step),
        processing_class=tok, rollout=rollout, rewards_log=rewards_log,
        sync_factory=lambda t: WeightSync(t, loop, cfg.name, work, cfg.base_name),
        correct_mismatch=cfg.importance_sampling != "none")
    return trainer, tok


def in_loop_eval(cfg: GRPOSettings, endpoint: Endpoint, trainer) -> InLoopEval | None:
    if not cfg.eval_every:
        return None
    ev = InLoopEval(cfg.eval_task or cfg.task, cfg.eval_data if cfg.eval_task else cfg.eval_data or cfg.data,
                    cfg.eval_limit, cfg.eval_every, cfg.eval_max_tokens or cfg.max_tokens, endpoint, cfg.name,
                    Path(cfg.out))

    def push():
        version = trainer.weight_sync.sync_weights()
        trainer.mark_synced()  # the next rollout samples from this version without a second push
        return version, trainer.weight_sync.work_dir

    trainer.add_callback(EvalCallback(ev, push, trainer))
    return ev


def resume_point(cfg: GRPOSettings) -> str | None:
    if not cfg.resume:
        return None
    ckpt = get_last_checkpoint(str(cfg.out)) if Path(cfg.out).is_dir() else None
    if ckpt is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0", cfg.out)
    return ckpt


def run_grpo(cfg: GRPOSettings, endpoint: Endpoint) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    loop = BackgroundLoop(endpoint)
    try:
        trainer, tok = build(cfg, endpoint, loop)
        metrics = MetricsFile(out)
        trainer.add_callback(metrics)
        ev = in_loop_eval(cfg, endpoint, trainer)
        ckpt = resume_point(cfg)
        done = int(Path(ckpt).name.split("-")[-1]) if ckpt else 0
        if trainer.is_world_process_zero():
            metrics.truncate_after(done)
            if ev:
                ev.forget_after(done)
            (out / "grpo_config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
        try:
            trainer.train(resume_from_checkpoint=ckpt)
        finally:
            trainer.rollout.wait_pending()  # no request in flight when the loop closes
        if not trainer.is_world_process_zero():
            return {}
        model = trainer.accelerator.unwrap_model(trainer.model)
        save_adapter(model, out / "adapter")
        tok.save_pretrained(str(out / "adapter"))
        final = loop.run(push_adapter(loop.client, cfg.push or cfg.name, out / "adapter", cfg.base_name))
        best = ev.push_best(cfg.base_name) if ev else None
    finally:
        loop.close()
    return summarize(cfg, out, final, best)


def summarize(cfg: GRPOSettings, out: Path, final: int, best: dict | None) -> dict:
    rows = history(out)
    png = plot_curves(rows, CURVES, out / "grpo_curves.png", f"evalctl train grpo ({cfg.task})")
    rewards = [r["reward_mean"] for r in rows if "reward_mean" in r]
    steps = [r["time_step"] for r in rows if "time_step" in r]
    summary = {"steps": len(rows), "first_reward": rewards[0] if rewards else None,
               "last_reward": rewards[-1] if rewards else None,
               "mean_step_seconds": sum(steps) / len(steps) if steps else None,
               "adapter": str(out / "adapter"), "served_as": cfg.push or cfg.name, "final_version": final,
               "best": best, "curves": str(png) if png else None}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
