"""`evalctl train dpo`: LoRA DPO with TRL's DPOTrainer; the reference is the base (adapter disabled)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from trl import DPOConfig, DPOTrainer

from .config import DPOSettings
from .data import load_preferences
from .modeling import load_policy, report_targets
from .sft import save_outputs

log = logging.getLogger("evalctl.train.dpo")
CURVES = ["loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"]


def dpo_args(cfg: DPOSettings, out: Path) -> DPOConfig:
    return DPOConfig(
        output_dir=str(out), report_to=report_targets(cfg.report_to),
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup, seed=cfg.seed, logging_steps=cfg.logging_steps, save_strategy="no",
        max_length=cfg.max_length, beta=cfg.beta, loss_type=[cfg.loss_type], use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(), disable_tqdm=True, dataset_num_proc=None,
    )


def run_dpo(cfg: DPOSettings, rows: list[dict] | None = None) -> dict:
    from datasets import Dataset

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else load_preferences(cfg.data)
    log.info("%s: %d preference pairs", cfg.data, len(rows))
    model, tok = load_policy(cfg.model, cfg, seed=cfg.seed)
    trainer = DPOTrainer(model=model, args=dpo_args(cfg, out), train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    trainer.train()
    return save_outputs(trainer, out, "dpo", cfg.model_dump(mode="json"), CURVES)
