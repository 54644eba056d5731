"""`evalctl train sft|dpo|rs|grpo`, `evalctl sample`, `evalctl distill`, `evalctl lora svd-init|merge`.

Options come from the settings models in config.py. torch, transformers, peft and TRL are
imported inside the commands, so `evalctl` itself starts fast and the gateway stays light.
Expected failures (bad data, unknown task, no CUDA for 4-bit, endpoint refusals) are one
`Error: ...` line and exit 1.
"""

from __future__ import annotations

import functools
import json
import logging

import click
from pydantic import BaseModel, ValidationError

from clients.cli_options import field_options

from .config import (DistillSettings, DPOSettings, GRPOSettings, MergeSettings, RSSettings, SampleSettings,
                     SFTSettings, SvdInitSettings)


def _fields(model: type[BaseModel], *skip: str) -> list[str]:
    """Field names for the options, required ones first (inherited fields would lead otherwise)."""
    names = [n for n in model.model_fields if n not in skip]
    return sorted(names, key=lambda n: not model.model_fields[n].is_required())


def build(model: type[BaseModel], values: dict) -> BaseModel:
    """Settings from CLI values (unset options fall back to the model's defaults)."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None and k in model.model_fields})
    except ValidationError as e:
        err = e.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else ""
        msg = f"{flag} is required" if err["type"] == "missing" else f"{flag}: {err['msg']}"
        raise click.ClickException(msg) from None


def endpoint_options(fn):
    """--base-url/--api-key/--admin-key, as in `evalctl run`, with the same environment variables."""
    fn = click.option("--concurrency", type=click.IntRange(min=1), help="Parallel requests [default: sample: "
                      "what fills the engine (the max_num_seqs evalctl's gateway reports, else 128); "
                      "train, distill: 16].")(fn)
    fn = click.option("--admin-key", envvar="EVALCTL_ADMIN_KEY", default=None,
                      help="Admin key for loading adapters (env EVALCTL_ADMIN_KEY; default: the API key).")(fn)
    fn = click.option("--api-key", envvar="EVALCTL_API_KEY", default=None, help="Bearer key (env EVALCTL_API_KEY).")(fn)
    return click.option("--base-url", envvar="EVALCTL_BASE_URL", default="http://127.0.0.1:8000", show_default=True,
                        help="The evalctl endpoint (env EVALCTL_BASE_URL).")(fn)


def _endpoint(values: dict, fill: bool = False):
    """`fill`: no --concurrency means what fills the engine (EvalClient with None), else 16."""
    from .endpoint import Endpoint

    concurrency = values.pop("concurrency") or (None if fill else 16)
    return Endpoint(values.pop("base_url"), values.pop("api_key"), values.pop("admin_key"), concurrency)


def guarded(fn):
    """Expected failures become one line; HTTP request logs are kept out of progress output."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import EXPECTED

        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            for name in ("httpx", "httpx2", "httpcore", "openai"):
                logging.getLogger(name).setLevel(logging.WARNING)
        try:
            return fn(*args, **kwargs)
        except EXPECTED as e:
            raise click.ClickException(str(e).splitlines()[0] if str(e) else type(e).__name__) from None

    return wrapper


def _echo(obj: dict) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _push(endpoint, cfg, adapter) -> None:
    if cfg.push:
        from .endpoint import push_adapter_sync

        version = push_adapter_sync(endpoint, cfg.push, adapter, cfg.base_name)
        click.echo(f"pushed {adapter} as {cfg.push!r} (version {version})")


def _preflight(cfg) -> None:
    """Checks that need no model: fail in a second, not after loading one."""
    from .modeling import check_4bit, report_targets

    if cfg.load_in_4bit:
        check_4bit()
    report_targets(cfg.report_to)
    if cfg.init is not None and not (cfg.init / "adapter_config.json").is_file():
        raise click.ClickException(f"--init {cfg.init}: no adapter_config.json there")


@click.group()
def train() -> None:
    """Train LoRA adapters locally; generations come from (and adapters go back to) the endpoint."""


@train.command("sft")
@field_options(SFTSettings, _fields(SFTSettings))
@endpoint_options
@guarded
def train_sft(**values) -> None:
    """Supervised fine-tuning (TRL SFTTrainer, LoRA/QLoRA, completion-only, per-sample weights)."""
    endpoint = _endpoint(values)
    cfg = build(SFTSettings, values)
    _preflight(cfg)
    from .data import load_sft

    rows, fmt = load_sft(cfg.data, cfg.normalize_weights)  # bad data fails before the slow imports
    click.echo(f"{cfg.data}: {len(rows)} {fmt} examples", err=True)
    from .sft import run_sft

    summary = run_sft(cfg, rows, endpoint)
    _push(endpoint, cfg, summary["adapter"])
    _echo(summary)


@train.command("dpo")
@field_options(DPOSettings, _fields(DPOSettings))
@endpoint_options
@guarded
def train_dpo(**values) -> None:
    """Direct preference optimisation on prompt/chosen/rejected (TRL DPOTrainer, LoRA)."""
    endpoint = _endpoint(values)
    cfg = build(DPOSettings, values)
    _preflight(cfg)
    from .data import load_preferences

    rows = load_preferences(cfg.data)
    from .dpo import run_dpo

    summary = run_dpo(cfg, rows)
    _push(endpoint, cfg, summary["adapter"])
    _echo(summary)


@train.command("rs")
@field_options(RSSettings, _fields(RSSettings))
@endpoint_options
@guarded
def train_rs(**values) -> None:
    """Rejection sampling: sample n per prompt, keep the correct ones (weight 1/n_correct), SFT on them."""
    endpoint = _endpoint(values)
    cfg = build(RSSettings, values)
    _preflight(cfg)
    from .rs import run_rs
    from .sampling import read_samples, sample, write_samples
    from .tasks import get_task, load_samples

    if cfg.samples is not None:
        records = read_samples(cfg.samples)
    elif cfg.sample_model is None:
        raise click.ClickException("--sample-model (a served name) is required unless --samples is given")
    else:
        task = get_task(cfg.task)
        records = sample(endpoint, task, cfg.sample_model, load_samples(task, cfg.data, cfg.limit), cfg)
        write_samples(cfg.out / "rs_samples.jsonl", records)
    result = run_rs(cfg, records)
    if result["trained"]:
        _push(endpoint, cfg, result["adapter"])
    _echo(result)


@train.command("grpo")
@field_options(GRPOSettings, _fields(GRPOSettings))
@endpoint_options
@guarded
def train_grpo(**values) -> None:
    """GRPO: each step serves the policy adapter, samples G per prompt from it, scores, updates."""
    endpoint = _endpoint(values)
    cfg = build(GRPOSettings, values)
    _preflight(cfg)
    from .grpo.run import run_grpo

    _echo(run_grpo(cfg, endpoint))


@click.command("sample")
@click.argument("task")
@field_options(SampleSettings, _fields(SampleSettings, "task"))
@endpoint_options
@guarded
def sample_cmd(task: str, **values) -> None:
    """n completions per prompt of TASK from the endpoint, scored by the task's scorers, to jsonl."""
    endpoint = _endpoint(values, fill=True)
    cfg = build(SampleSettings, {**values, "task": task})
    from .sampling import sample, summarize, write_samples
    from .tasks import get_task, load_samples

    t = get_task(cfg.task)
    records = sample(endpoint, t, cfg.model, load_samples(t, cfg.data, cfg.limit), cfg)
    write_samples(cfg.out, records)
    _echo({"out": str(cfg.out), **summarize(records)})


@click.command("distill")
@field_options(DistillSettings, _fields(DistillSettings))
@endpoint_options
@guarded
def distill_cmd(**values) -> None:
    """Teacher CoT via the endpoint, rule + judge filters, stratified split into sft/rl/test jsonl."""
    endpoint = _endpoint(values)
    cfg = build(DistillSettings, values)
    from .distill import run_distill

    _echo(run_distill(cfg, endpoint))


@click.group()
def lora() -> None:
    """LoRA adapter tools."""


@lora.command("svd-init")
@field_options(SvdInitSettings, _fields(SvdInitSettings))
@guarded
def svd_init_cmd(**values) -> None:
    """Initialise a student LoRA from a teacher's ΔW by truncated SVD (use with `train sft --init`)."""
    cfg = build(SvdInitSettings, values)
    from .lora_tools import svd_init

    summary = svd_init(cfg)
    _echo({k: v for k, v in summary.items() if k != "per_module"} | {"out": str(cfg.out)})


@lora.command("merge")
@field_options(MergeSettings, _fields(MergeSettings))
@guarded
def merge_cmd(**values) -> None:
    """Fold an adapter into the base weights (plus tokenizer): a model vLLM serves as a base."""
    cfg = build(MergeSettings, values)
    from .lora_tools import merge

    click.echo(f"merged model written to {merge(cfg)}")


COMMANDS = [train, sample_cmd, distill_cmd, lora]
