"""`evalctl train sft`: LoRA/QLoRA SFT with TRL's SFTTrainer, plus per-sample loss weights.

A `weight` column scales each sample's summed token loss; the normaliser stays TRL's
(the number of loss tokens in the batch), so all-ones weights give exactly TRL's loss and
a zero weight removes a sample from the gradient without changing anyone else's scale.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from trl import SFTConfig, SFTTrainer

from .config import SFTSettings
from .data import load_sft
from .modeling import load_policy, report_targets
from .report import plot_curves, trainer_history

log = logging.getLogger("evalctl.train.sft")


class WeightedCollator:
    """TRL's collator, plus a `weight` tensor when the examples carry one."""

    def __init__(self, base):
        self.base = base

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.base([{k: v for k, v in e.items() if k != "weight"} for e in examples])
        if "weight" in examples[0]:
            batch["weight"] = torch.tensor([float(e["weight"]) for e in examples], dtype=torch.float32)
        return batch


class WeightedSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss honours a per-sample `weight` column."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_collator = WeightedCollator(self.data_collator)
        self.extra_logs: dict[str, float] = {}  # the in-loop eval's metrics, joined to the step's log

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs.update(self.extra_logs)
            self.extra_logs = {}
        super().log(logs, start_time)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "weight" not in self._signature_columns:  # else remove_unused_columns drops it
            self._signature_columns = [*self._signature_columns, "weight"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop("weight", None)
        if weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        per_sample = -outputs.log_probs.sum(dim=-1)  # log_probs are zero on ignored positions
        n_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = (weights.to(per_sample) * per_sample).sum() / torch.as_tensor(n_tokens).clamp(min=1)
        mode = "train" if self.model.training else "eval"
        valid = outputs.label_mask.sum()
        self._metrics[mode]["mean_token_accuracy"].append((outputs.is_top1.sum() / valid.clamp(min=1)).item())
        self._metrics[mode]["mean_weight"].append(weights.mean().item())
        return (loss, outputs) if return_outputs else loss


def sft_args(cfg: SFTSettings, out: Path, **overrides) -> SFTConfig:
    kwargs = dict(
        output_dir=str(out), report_to=report_targets(cfg.report_to),
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup, seed=cfg.seed, logging_steps=cfg.logging_steps, save_strategy="no",
        max_length=cfg.max_length, completion_only_loss=cfg.completion_only_loss, use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(), disable_tqdm=True,
        dataset_num_proc=None, lr_scheduler_type="linear",
    )
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def build_trainer(cfg: SFTSettings, rows: list[dict], **overrides) -> WeightedSFTTrainer:
    from datasets import Dataset

    model, tok = load_policy(cfg.model, cfg, seed=cfg.seed)
    return WeightedSFTTrainer(model=model, args=sft_args(cfg, Path(cfg.out), **overrides),
                              train_dataset=Dataset.from_list(rows), processing_class=tok)


def save_outputs(trainer, out: Path, kind: str, settings: dict, curves: list[str]) -> dict:
    """The adapter (+ tokenizer), a summary and the loss curves PNG."""
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    trainer.processing_class.save_pretrained(str(adapter))
    history = trainer_history(trainer.state.log_history)
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    png = plot_curves(history, curves, out / f"{kind}_curves.png", f"evalctl train {kind}")
    losses = [h["loss"] for h in history if "loss" in h]
    summary = {"kind": kind, "adapter": str(adapter), "steps": trainer.state.global_step,
               "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
               "curves": str(png) if png else None, "settings": settings}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def in_loop_eval(cfg: SFTSettings, endpoint, trainer):
    """`--eval-every`: push the adapter as trained so far under --push and evaluate it there."""
    from .endpoint import push_adapter_sync
    from .errors import TrainError
    from .in_loop_eval import EvalCallback, InLoopEval

    if not cfg.eval_every:
        return None
    if endpoint is None or not cfg.push:
        raise TrainError("--eval-every needs --push NAME: the evaluated versions are served under that name")
    if cfg.eval_task is None:
        raise TrainError("--eval-every needs --eval-task (the evaluator task to run on the pushed adapter)")
    out = Path(cfg.out)
    ev = InLoopEval(cfg.eval_task, cfg.eval_data, cfg.eval_limit, cfg.eval_every, cfg.eval_max_tokens, endpoint,
                    cfg.push, out)
    work = out / "eval-policy"

    def push():
        trainer.model.save_pretrained(str(work))
        return push_adapter_sync(endpoint, cfg.push, work, cfg.base_name), work

    trainer.add_callback(EvalCallback(ev, push, trainer))
    return ev


def run_sft(cfg: SFTSettings, rows: list[dict] | None = None, endpoint=None) -> dict:
    """Train; `rows` (already normalised examples) skips reading `cfg.data` (rejection sampling)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if rows is None:
        rows, fmt = load_sft(cfg.data, cfg.normalize_weights)
        log.info("%s: %d %s examples", cfg.data, len(rows), fmt)
    trainer = build_trainer(cfg, rows)
    ev = in_loop_eval(cfg, endpoint, trainer)
    trainer.train()
    summary = save_outputs(trainer, out, "sft", cfg.model_dump(mode="json"),
                           ["loss", "mean_token_accuracy", "learning_rate", "grad_norm"])
    if ev is not None:
        summary["best"] = ev.push_best(cfg.base_name)
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
