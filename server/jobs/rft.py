"""A reinforcement fine-tuning job in the worker: `evalctl train grpo`'s machinery (TRL's
GRPOTrainer, rollouts sampled through this gateway from the adapter version just pushed) with the
job's grader as the only reward function.

The worker reaches the gateway at JOB_GATEWAY_URL with JOB_GATEWAY_KEY (set by the scheduler; the
key stays out of the process list). Every `eval_interval` steps and at the last, the weights are
pushed, the validation prompts are sampled from them and graded; the step's metrics event carries
train_reward_mean (and each multi sub-grader's mean) and valid_reward_mean, and TRL saves a
resumable checkpoint at the same steps (its adapter files at the top: loadable as a LoRA). The
best-graded version is kept in OUT/best-adapter and becomes the job's fine-tuned model.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import httpx

from evaluators.graders import PythonLimits, grade_batch, parse_grader
from trainers.errors import TrainError
from trainers.in_loop_eval import BestVersion

from ..graders import http_context
from .files import load_prompts
from .store import Store

INTERRUPTED = 75
KEEP_CHECKPOINTS = 3
log = logging.getLogger("evalctl.jobs.rft")


def text_of(completion) -> str:
    if isinstance(completion, list):  # chat completions arrive as assistant messages
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return "" if completion is None else str(completion)


def chat_prompt(row: dict) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]


def settings_for(spec: dict, job_dir: Path, policy: str):
    from trainers.config import GRPOSettings

    h = spec["hyperparameters"]
    return GRPOSettings(model=spec["base_path"], task="reinforcement", out=job_dir / "out", name=policy,
                        steps=h["max_steps"], prompts_per_step=h["batch_size"], num_generations=h["num_generations"],
                        learning_rate=spec["learning_rate"], beta=h["beta"], loss_type=h["loss_type"],
                        micro_batch_size=h["micro_batch_size"], temperature=h["temperature"],
                        max_tokens=h["max_tokens"], save_every=h["eval_interval"], keep_checkpoints=KEEP_CHECKPOINTS,
                        seed=spec["seed"], report_to="none", lora_r=h["lora_rank"], lora_alpha=h["lora_alpha"],
                        base_name=spec["base"])


def grader_reward(grader, ctx, loop, rewards_log, state: dict):
    """The grader as a TRL reward function; `state` keeps the step's sub-grader means for the events."""

    def grader_fn(completions: list, item_json: list | None = None, **_) -> list[float]:
        t0 = time.perf_counter()
        cases = [(text_of(c), json.loads(j)) for c, j in zip(completions, item_json or [])]
        outs = loop.run(grade_batch(grader, cases, ctx))
        values = [o.score for o in outs]
        rewards_log.record("grader", values, time.perf_counter() - t0)
        for name in outs[0].sub if outs else []:
            state[f"train_{name}_mean"] = sum(o.sub[name] for o in outs) / len(outs)
        state["train_grader_error_rate"] = sum(bool(o.errors) for o in outs) / max(1, len(outs))
        return values

    grader_fn.__name__ = "grader"
    return grader_fn


class Evaluator:
    """Samples the validation prompts from the served policy and grades them; keeps the best version."""

    def __init__(self, loop, policy: str, grader, ctx, rows: list[dict], h: dict, out: Path):
        self.loop, self.policy, self.grader, self.ctx, self.rows = loop, policy, grader, ctx, rows
        self.samples, self.max_tokens, self.temperature = h["eval_samples"], h["max_tokens"], h["temperature"]
        self.every, self.out = h["eval_interval"], out
        self.kept = BestVersion(out, "valid_reward_mean")

    @property
    def best_path(self) -> Path:
        return self.kept.path

    def best(self) -> dict | None:
        return self.kept.get()

    def forget_after(self, step: int) -> None:
        self.kept.forget_after(step)

    def run(self, step: int, adapter_dir: Path) -> dict[str, float]:
        params = {"max_tokens": self.max_tokens, "temperature": 0.0 if self.samples == 1 else self.temperature}
        gens = self.loop.run(self.loop.client.generate_many(self.policy, [chat_prompt(r) for r in self.rows],
                                                            n=self.samples, cache=False, progress=False, **params))
        failed = next((g.error for g in gens if g.error), None)
        if failed:
            raise TrainError(f"sampling the validation prompts failed: {failed}")
        cases = [(t, row) for g, row in zip(gens, self.rows) for t in g.texts]
        outs = self.loop.run(grade_batch(self.grader, cases, self.ctx))
        if not outs:
            raise TrainError("the validation prompts gave no completions to grade")
        metrics = {"valid_reward_mean": sum(o.score for o in outs) / len(outs)}
        for name in outs[0].sub:
            metrics[f"valid_{name}_mean"] = sum(o.sub[name] for o in outs) / len(outs)
        self.kept.offer({"step": step, **metrics}, adapter_dir, ties_win=True)  # ties: the later version
        return metrics


def make_callback(store: Store, job_id: str, trainer, evaluator: Evaluator | None, reward_state: dict):
    from transformers import TrainerCallback

    class RFTCallback(TrainerCallback):
        """Events with the reward curve, evaluations, checkpoint rows and stop requests."""

        def __init__(self):
            self.training = self.stop = False
            self.parent = os.getppid()
            self.pending: dict = {}  # this step's eval metrics, joined to its metrics event
            self.last: dict = {}

        def on_train_begin(self, args, state, control, **kw):
            self.training = True
            store.update_job(job_id, total_steps=state.max_steps, step=state.global_step)
            store.add_event(job_id, f"Training started: {state.max_steps} GRPO steps" +
                            (f", resuming at step {state.global_step}" if state.global_step else ""))

        def on_step_end(self, args, state, control, **kw):
            if os.getppid() != self.parent:
                self.stop = True
            if self.stop:
                control.should_save, control.should_training_stop = True, True
                return
            step = state.global_step
            if evaluator is not None and (step % evaluator.every == 0 or step == state.max_steps):
                trainer.weight_sync.sync_weights()
                trainer.mark_synced()  # the next rollout samples from this version without a second push
                self.pending = evaluator.run(step, trainer.weight_sync.work_dir)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "reward" not in logs:
                return
            step = state.global_step
            data = {"step": step, "total_steps": state.max_steps, "epoch": logs.get("epoch"),
                    "train_reward_mean": logs["reward"], "reward_std": logs.get("reward_std"),
                    "loss": logs.get("loss"), "kl": logs.get("kl"), "learning_rate": logs.get("learning_rate"),
                    "completion_length": logs.get("completions/mean_length"), **reward_state, **self.pending}
            self.last = {k: v for k, v in data.items() if k.startswith(("train_", "valid_")) and v is not None}
            msg = f"Step {step}/{state.max_steps}: train reward={logs['reward']:.4f}"
            if "valid_reward_mean" in self.pending:
                msg += f", valid reward={self.pending['valid_reward_mean']:.4f}"
            store.add_event(job_id, msg, data={k: v for k, v in data.items() if v is not None})
            store.update_job(job_id, step=step)
            self.pending = {}

        def on_save(self, args, state, control, **kw):
            out = Path(args.output_dir)
            store.add_checkpoint(job_id, state.global_step, {"step": state.global_step, **self.last},
                                 out / f"checkpoint-{state.global_step}")
            store.drop_checkpoints(job_id, {str(p) for p in out.glob("checkpoint-*")})
            store.add_event(job_id, f"Checkpoint created at step {state.global_step}")

    return RFTCallback()


def _open_http(url: str, key: str | None):
    async def go() -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=url, headers=headers, timeout=600)

    return go()


def build(cfg, loop, grader, ctx, rows: list[dict], reward_state: dict):
    from transformers import set_seed

    from trainers.grpo.rewards import StepRewards
    from trainers.grpo.rollout import EndpointRollout
    from trainers.grpo.run import grpo_config, train_dataset
    from trainers.grpo.sync import WeightSync
    from trainers.grpo.trainer import EndpointGRPOTrainer
    from trainers.modeling import load_policy

    params = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens,
              "return_token_ids": True}
    rewards_log = StepRewards({"grader": 1.0})
    args = grpo_config(cfg, params, [1.0], world=1)
    set_seed(cfg.seed)  # the fresh LoRA's A matrices are random: the same seed, the same job
    model, tok = load_policy(cfg.model, cfg)
    rollout = EndpointRollout(loop, None, params, cfg.seed, tok.eos_token_id)
    # the item rides along as JSON: Arrow wants one type per column, items differ from row to row
    data = [{"prompt": chat_prompt(r), "item_json": json.dumps(r)} for r in rows]
    trainer = EndpointGRPOTrainer(
        model=model, reward_funcs=[grader_reward(grader, ctx, loop, rewards_log, reward_state)], args=args,
        train_dataset=train_dataset(data, cfg.prompts_per_step), processing_class=tok, rollout=rollout,
        rewards_log=rewards_log, correct_mismatch=True,
        sync_factory=lambda t: WeightSync(t, loop, cfg.name, Path(cfg.out) / "policy", cfg.base_name))
    return trainer, tok


def _unload(loop, name: str) -> None:
    try:  # the policy held one of the engine's LoRA slots while training
        loop.run(loop.client.unload_adapter(name))
    except Exception as e:  # noqa: BLE001 - never loaded, or the gateway is going away
        log.info("could not unload %s: %s", name, e)


def train_rft(store: Store, job: dict, job_dir: Path) -> dict:
    from trainers.endpoint import BackgroundLoop, Endpoint
    from trainers.grpo.sync import save_adapter

    spec, h = job["spec"], job["spec"]["hyperparameters"]
    url, key = os.environ.get("JOB_GATEWAY_URL"), os.environ.get("JOB_GATEWAY_KEY") or None
    if not url:
        raise TrainError("the worker was started without the gateway's address (JOB_GATEWAY_URL)")
    holder: dict = {}

    def on_term(*_):
        if not getattr(holder.get("cb"), "training", False):  # still loading: nothing to checkpoint yet
            raise SystemExit(INTERRUPTED)
        holder["cb"].stop = True

    signal.signal(signal.SIGTERM, on_term)
    policy = f"rft-{job['id']}"
    cfg = settings_for(spec, job_dir, policy)
    grader, rows, valid = parse_grader(spec["grader"]), load_prompts(job_dir / "train.jsonl"), job_dir / "valid.jsonl"
    loop = BackgroundLoop(Endpoint(url, api_key=key, admin_key=key))
    http = loop.run(_open_http(url, key))
    try:
        limits = PythonLimits(**spec["python_limits"]) if spec.get("python_limits") else None
        ctx = http_context(http, spec.get("embed_model"), limits)
        evaluator = Evaluator(loop, policy, grader, ctx, load_prompts(valid), h, Path(cfg.out)) \
            if valid.exists() else None
        reward_state: dict = {}
        trainer, tok = build(cfg, loop, grader, ctx, rows, reward_state)
        holder["cb"] = callback = make_callback(store, job["id"], trainer, evaluator, reward_state)
        trainer.add_callback(callback)
        resume = job["resume_from"] if job.get("resume_from") and Path(job["resume_from"]).is_dir() else None
        if evaluator is not None and resume:
            evaluator.forget_after(int(Path(resume).name.split("-")[-1]))
        try:
            trainer.train(resume_from_checkpoint=resume)
        finally:
            trainer.rollout.wait_pending()
        if callback.stop:
            raise SystemExit(INTERRUPTED)
        final = Path(cfg.out) / "adapter"
        save_adapter(trainer.accelerator.unwrap_model(trainer.model), final)
        tok.save_pretrained(str(final))
        best = evaluator.best() if evaluator is not None else None
        if best is not None:
            store.add_event(job["id"], f"Best checkpoint: step {best['step']} (valid reward "
                            f"{best['valid_reward_mean']:.4f}) becomes the fine-tuned model")
        return {"adapter": str(evaluator.best_path if best else final), "trained_tokens": None}
    finally:
        _unload(loop, policy)
        loop.run(http.aclose())
        loop.close()
