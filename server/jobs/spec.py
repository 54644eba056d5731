"""A create-job request resolved into the stored job spec: the served base model and its
weights path, the checked files, and every "auto" hyperparameter made concrete.

Defaults: n_epochs auto = 3 (OpenAI's usual), batch_size auto = min(4, records),
learning rate = the trainer's default (SFT 2e-4, DPO 5e-5, GRPO 1e-5) x learning_rate_multiplier
(auto = 1), DPO beta auto = 0.1, LoRA rank = min(16, the engine's max_lora_rank).
Reinforcement jobs map OpenAI's hyperparameters onto GRPO in `rft_spec.py`.
"""

from __future__ import annotations

from ..errors import BadRequest
from ..protocol import CreateJobRequest
from ..routing import ModelRouter
from ..settings import ServeSettings
from .files import check_for_method
from .rft_spec import resolve_reinforcement
from .store import Store

BASE_LR = {"supervised": 2e-4, "dpo": 5e-5, "reinforcement": 1e-5}
DEFAULT_CHECKPOINT_STEPS = 50


def _method(req: CreateJobRequest) -> tuple[str, dict]:
    """(type, hyperparameters as sent) from `method`, or the deprecated top-level field."""
    if req.method is None:
        return "supervised", req.hyperparameters.model_dump() if req.hyperparameters else {}
    kind = req.method.type
    if req.hyperparameters is not None:
        raise BadRequest("give hyperparameters inside `method`, not at the top level", param="hyperparameters")
    inner = getattr(req.method, kind)
    if kind == "reinforcement" and inner is None:
        raise BadRequest("a reinforcement job needs `method.reinforcement.grader`", param="method.reinforcement")
    hyper = inner.hyperparameters if inner is not None else None
    return kind, hyper.model_dump() if hyper is not None else {}


def _file(store: Store, file_id: str, param: str, kind: str) -> dict:
    f = store.get_file(file_id)
    if f is None:
        raise BadRequest(f"{param} {file_id!r} does not exist (upload it to /v1/files first)", param=param,
                         code="invalid_file")
    if f["purpose"] != "fine-tune":
        raise BadRequest(f"{param} {file_id!r} has purpose {f['purpose']!r}; upload it with purpose `fine-tune`",
                         param=param, code="invalid_file")
    why = check_for_method(f["format"], kind, param)
    if why:
        raise BadRequest(why, param=param, code="invalid_file")
    return f


def _base(router: ModelRouter, name: str):
    group = router.base.get(router.aliases.get(name, name))
    if group is None:
        if name in router.names():
            raise BadRequest(f"{name!r} is not a base model served here; fine-tune one of "
                             f"{sorted(router.base)}", param="model")
        raise router.not_found(name)
    cfg = group.config
    if not cfg.managed or cfg.runner != "generate" or not cfg.enable_lora:
        raise BadRequest(f"{group.name!r} cannot be fine-tuned here: it needs a local vLLM engine (`model`) "
                         "serving generation with LoRA enabled", param="model")
    return group


def resolve_hyper(kind: str, sent: dict, records: int, max_rank: int) -> dict:
    h = {k: v for k, v in sent.items() if v is not None}
    out = {
        "n_epochs": 3 if h.get("n_epochs", "auto") == "auto" else h["n_epochs"],
        "batch_size": max(1, min(4, records)) if h.get("batch_size", "auto") == "auto" else h["batch_size"],
        "learning_rate_multiplier": 1.0 if h.get("learning_rate_multiplier", "auto") == "auto"
        else float(h["learning_rate_multiplier"]),
    }
    if kind == "dpo":
        out["beta"] = 0.1 if h.get("beta", "auto") == "auto" else float(h["beta"])
    rank = h.get("lora_rank") or min(16, max_rank)
    if rank > max_rank:
        raise BadRequest(f"lora_rank {rank} exceeds the engine's max_lora_rank {max_rank}",
                         param=f"method.{kind}.hyperparameters.lora_rank")
    out.update(lora_rank=rank, lora_alpha=h.get("lora_alpha") or 2.0 * rank, max_steps=h.get("max_steps"),
               max_length=h.get("max_length") or 1024,
               checkpoint_steps=h.get("checkpoint_steps") or DEFAULT_CHECKPOINT_STEPS)
    return out


def resolve(req: CreateJobRequest, router: ModelRouter, store: Store, job_id: str, seed: int,
            settings: ServeSettings | None = None) -> dict:
    if req.integrations:
        raise BadRequest("integrations are not supported; metrics are in the job's events", param="integrations")
    kind, sent = _method(req)
    group = _base(router, req.model)
    train = _file(store, req.training_file, "training_file", kind)
    if req.validation_file is not None:
        _file(store, req.validation_file, "validation_file", kind)
    if kind == "reinforcement":
        hyper, extra = resolve_reinforcement(req.method.reinforcement, sent, train["records"] or 1,
                                             group.config.max_lora_rank, router, settings)
    else:
        hyper, extra = resolve_hyper(kind, sent, train["records"] or 1, group.config.max_lora_rank), {}
    suffix = req.suffix or ""
    return {**extra,
        "model": req.model, "base": group.name, "base_path": group.config.model, "method_type": kind,
        "training_file": req.training_file, "validation_file": req.validation_file, "hyperparameters": hyper,
        "learning_rate": BASE_LR[kind] * hyper["learning_rate_multiplier"], "suffix": req.suffix, "seed": seed,
        "metadata": req.metadata, "fine_tuned_model": f"ft:{group.name}:{suffix}:{job_id}",
    }
