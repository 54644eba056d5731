"""Base model, tokenizer and LoRA wrapping shared by every trainer (torch, transformers, peft)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from .config import LoraSettings
from .errors import TrainError


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_4bit() -> None:
    """QLoRA needs CUDA and bitsandbytes; fail before loading anything when either is missing."""
    if not torch.cuda.is_available():
        raise TrainError("--load-in-4bit needs a CUDA GPU (bitsandbytes 4-bit kernels); none is visible here")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainError("--load-in-4bit needs bitsandbytes: pip install bitsandbytes")


def torch_dtype(name: str, quantized: bool = False) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() or quantized else torch.float32
    return getattr(torch, name)


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:  # batching needs one; the EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def load_base(path: str | Path, opts: LoraSettings):
    """The frozen base model, 4-bit nf4 when asked (after `check_4bit`)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": torch_dtype(opts.dtype, opts.load_in_4bit)}
    if opts.load_in_4bit:
        check_4bit()
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as e:
        raise TrainError(f"cannot load model {path}: {str(e).splitlines()[0]}") from None
    if opts.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def lora_config(opts: LoraSettings):
    from peft import LoraConfig

    targets = opts.target_modules.strip()
    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
                      bias="none", task_type="CAUSAL_LM")


def with_adapter(model, opts: LoraSettings):
    """A trainable PeftModel: a fresh LoRA (B = 0, so it starts as the base) or `--init`'s adapter."""
    from peft import PeftModel, get_peft_model

    if opts.init is not None:
        if not (Path(opts.init) / "adapter_config.json").is_file():
            raise TrainError(f"--init {opts.init}: no adapter_config.json there")
        return PeftModel.from_pretrained(model, str(opts.init), is_trainable=True)
    try:
        return get_peft_model(model, lora_config(opts))
    except ValueError as e:  # e.g. a target module the model does not have
        raise TrainError(f"LoRA: {str(e).splitlines()[0]}") from None


def load_policy(path: str | Path, opts: LoraSettings, seed: int | None = None):
    """(peft model, tokenizer) on the training device. `seed`: set before the adapter is made,
    whose A matrices are random (the trainer seeds only later): the same seed, the same run."""
    if seed is not None:
        from transformers import set_seed

        set_seed(seed)
    tok = load_tokenizer(path)
    model = with_adapter(load_base(path, opts), opts)
    if not opts.load_in_4bit:
        model.to(device())
    return model, tok


def report_targets(report_to: str) -> list[str]:
    """`--report-to` as a list for transformers; wandb only when it is installed."""
    wanted = [r.strip() for r in report_to.split(",") if r.strip() and r.strip() != "none"]
    for name in wanted:
        if name not in ("tensorboard", "wandb"):
            raise TrainError(f"--report-to: unknown target {name!r} (tensorboard, wandb, none)")
        if importlib.util.find_spec(name) is None:
            raise TrainError(f"--report-to {name}: the {name} package is not installed")
    return wanted
