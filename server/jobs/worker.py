"""One fine-tuning job in its own process: `python -m server.jobs.worker DB JOB_ID [--threads N]`.

It trains with the trainers' TRL SFT/DPO setup (reinforcement jobs: GRPO, in rft.py) and writes progress into the jobs
database: a metrics event per logged step and a row per resumable checkpoint. The
scheduler owns the job's status; the worker only records its result (the adapter
path) or its error. SIGTERM (the gateway stopping, or dying: the worker asks the
kernel for SIGTERM when its parent goes) saves a checkpoint at the next step end
and exits with code 75, so the job resumes from there after a restart.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

from .store import Store

INTERRUPTED = 75  # EX_TEMPFAIL: stopped on request with a checkpoint; resume later
KEEP_CHECKPOINTS = 3
log = logging.getLogger("evalctl.jobs.worker")


def _die_with_parent() -> None:
    try:  # PR_SET_PDEATHSIG: SIGTERM when the gateway goes, even on SIGKILL
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def settings_for(spec: dict, job_dir: Path):
    from trainers.config import DPOSettings, SFTSettings

    h = spec["hyperparameters"]
    common = dict(model=spec["base_path"], data=job_dir / "train.jsonl", out=job_dir / "out",
                  learning_rate=spec["learning_rate"], epochs=h["n_epochs"], max_steps=h["max_steps"] or -1,
                  batch_size=h["batch_size"], lora_r=h["lora_rank"], lora_alpha=h["lora_alpha"],
                  max_length=h["max_length"], seed=spec["seed"], logging_steps=1, report_to="none")
    if spec["method_type"] == "dpo":
        return DPOSettings(**common, beta=h["beta"])
    return SFTSettings(**common)


def make_callback(store: Store, job_id: str, every: int, has_eval: bool):
    from transformers import TrainerCallback

    class JobCallback(TrainerCallback):
        """Events, checkpoints (every N steps, each epoch end, on SIGTERM) and stop requests."""

        def __init__(self):
            self.training = False
            self.stop = False
            self.saved_step = -1
            self.last: dict = {}
            self.parent = os.getppid()

        def on_train_begin(self, args, state, control, **kw):
            self.training = True
            store.update_job(job_id, total_steps=state.max_steps, step=state.global_step)
            store.add_event(job_id, f"Training started: {state.max_steps} steps" +
                            (f", resuming at step {state.global_step}" if state.global_step else ""))

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" in logs:
                self.last["train_loss"] = logs["loss"]
                data = {"step": state.global_step, "total_steps": state.max_steps, "epoch": logs.get("epoch"),
                        "loss": logs["loss"], "train_loss": logs["loss"], "learning_rate": logs.get("learning_rate"),
                        **{k: v for k, v in logs.items() if isinstance(v, (int, float)) and k not in ("loss",)}}
                store.add_event(job_id, f"Step {state.global_step}/{state.max_steps}: training loss={logs['loss']:.4f}",
                                data=data)
                store.update_job(job_id, step=state.global_step)
            elif "eval_loss" in logs:
                self.last["valid_loss"] = logs["eval_loss"]
                store.add_event(job_id, f"Step {state.global_step}: validation loss={logs['eval_loss']:.4f}",
                                data={"step": state.global_step, "total_steps": state.max_steps,
                                      "epoch": logs.get("epoch"), "valid_loss": logs["eval_loss"]})

        def _save(self, state, control):
            if state.global_step != self.saved_step:
                control.should_save = True
                control.should_evaluate = has_eval

        def on_step_end(self, args, state, control, **kw):
            if os.getppid() != self.parent:
                self.stop = True
            if self.stop:
                self._save(state, control)
                control.should_training_stop = True
            elif state.global_step % every == 0:
                self._save(state, control)

        def on_epoch_end(self, args, state, control, **kw):
            self._save(state, control)

        def on_save(self, args, state, control, **kw):
            self.saved_step = state.global_step
            out = Path(args.output_dir)
            path = out / f"checkpoint-{state.global_step}"
            store.add_checkpoint(job_id, state.global_step, {"step": state.global_step, **self.last}, path)
            kept = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
            for old in kept[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
            store.drop_checkpoints(job_id, {str(p) for p in kept[-KEEP_CHECKPOINTS:]})
            store.add_event(job_id, f"Checkpoint created at step {state.global_step}")

    return JobCallback()


def build_trainer(cfg, kind: str, rows: list[dict], eval_rows: list[dict] | None, callback):
    from datasets import Dataset

    from trainers.modeling import load_policy

    model, tok = load_policy(cfg.model, cfg)
    data = dict(train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[callback],
                eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None)
    if kind == "dpo":
        from trl import DPOTrainer

        from trainers.dpo import dpo_args

        return DPOTrainer(model=model, args=dpo_args(cfg, Path(cfg.out)), **data)
    from trainers.sft import WeightedSFTTrainer, sft_args

    return WeightedSFTTrainer(model=model, args=sft_args(cfg, Path(cfg.out)), **data)


def load_rows(kind: str, path: Path) -> list[dict]:
    from trainers.data import load_preferences, load_sft

    return load_preferences(path) if kind == "dpo" else load_sft(path, normalize_weights=True)[0]


def train(store: Store, job: dict, job_dir: Path) -> dict:
    from trainers.dpo import CURVES
    from trainers.sft import save_outputs

    spec, kind = job["spec"], job["spec"]["method_type"]
    if kind == "reinforcement":  # GRPO with the job's grader as the reward: its own loop and events
        from .rft import train_rft

        return train_rft(store, job, job_dir)
    cfg = settings_for(spec, job_dir)
    valid = job_dir / "valid.jsonl"
    callback = make_callback(store, job["id"], spec["hyperparameters"]["checkpoint_steps"], valid.exists())

    def on_term(*_):
        if not callback.training:  # still loading: nothing to checkpoint yet
            raise SystemExit(INTERRUPTED)
        callback.stop = True

    signal.signal(signal.SIGTERM, on_term)
    trainer = build_trainer(cfg, kind, load_rows(kind, cfg.data),
                            load_rows(kind, valid) if valid.exists() else None, callback)
    resume = job["resume_from"] if job["resume_from"] and Path(job["resume_from"]).is_dir() else None
    trainer.train(resume_from_checkpoint=resume)
    if callback.stop:
        raise SystemExit(INTERRUPTED)
    curves = CURVES if kind == "dpo" else ["loss", "mean_token_accuracy", "learning_rate", "grad_norm"]
    summary = save_outputs(trainer, Path(cfg.out), "dpo" if kind == "dpo" else "sft", cfg.model_dump(mode="json"),
                           curves)
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    return {"adapter": summary["adapter"], "trained_tokens": int(tokens[-1]) if tokens else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.jobs.worker")
    p.add_argument("db", type=Path)
    p.add_argument("job_id")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    store = Store(args.db)
    job = store.get_job(args.job_id)
    import torch

    if args.threads and not torch.cuda.is_available():
        torch.set_num_threads(args.threads)  # default threads beside a vLLM CPU engine ran ~10x slower
    from trainers.errors import EXPECTED

    try:
        result = train(store, job, args.db.parent / "jobs" / args.job_id)
    except Exception as e:  # the job's error must say why; the traceback goes to worker.log
        if not isinstance(e, EXPECTED):
            log.exception("training failed")
        first = (str(e).strip().splitlines() or [""])[0]
        message = first if isinstance(e, EXPECTED) else f"{type(e).__name__}: {first}"
        store.update_job(args.job_id, error={"code": "training_failed", "message": message, "param": None})
        return 1
    store.update_job(args.job_id, adapter_path=result["adapter"], trained_tokens=result["trained_tokens"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
