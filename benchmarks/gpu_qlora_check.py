"""GPU check of QLoRA: SFT steps (TRL SFTTrainer through trainers.sft) and GRPO steps (TRL's
GRPOTrainer with the GRPOConfig `evalctl train grpo` builds) on a 4-bit nf4 base, with step times
and peak GPU memory; the same in bf16 LoRA for comparison.

There is no vLLM on the GPU machine, so the GRPO rollouts come from TRL's in-process
`generate` instead of the endpoint; the update after them is the one `evalctl train grpo` runs.

    python benchmarks/gpu_qlora_check.py [--model-dir DIR | --hidden 1024 --layers 8] [--steps 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

GiB = 2**30


def versions() -> str:
    out = []
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets"):
        try:
            out.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            out.append(f"{name} -")
    return ", ".join(out)


def sft_rows(n: int = 64) -> list[dict]:
    return [{"prompt": f"User: {a} + {a + 3} =", "completion": f" <think> {a} + {a + 3} = {2 * a + 3} </think> "
             f"<answer> {2 * a + 3} </answer>"} for a in range(n)]


def sft_check(model_dir: Path, out: Path, four_bit: bool, steps: int, batch: int) -> dict:
    from transformers import TrainerCallback

    from trainers.config import SFTSettings
    from trainers.sft import build_trainer

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], 0.0

        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    cfg = SFTSettings(model=str(model_dir), data=out / "unused", out=out, load_in_4bit=four_bit, batch_size=batch,
                      max_steps=steps, report_to="none", max_length=256)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(cfg, sft_rows())
    timer = Timer()
    trainer.add_callback(timer)
    trainer.train()
    n4 = sum(type(m).__name__ == "Linear4bit" for m in trainer.model.modules())
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {"step_s": timer.times, "peak_gib": torch.cuda.max_memory_allocated() / GiB, "linear4bit": n4,
              "loss": (losses[0], losses[-1]) if losses else None}
    del trainer
    return result


def grpo_check(model_dir: Path, out: Path, four_bit: bool, steps: int, prompts: int, group: int,
               max_tokens: int) -> dict:
    """TRL's GRPOTrainer with evalctl's settings mapping (trainers.grpo.run.grpo_config), rollouts
    from its in-process `generate` (no vLLM here); step times come from TRL's own log."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from trainers.config import GRPOSettings
    from trainers.grpo.rollout import rollout_params
    from trainers.grpo.run import grpo_config
    from trainers.modeling import load_policy
    from trainers.tasks import TOY_TASKS, target_fraction_reward

    cfg = GRPOSettings(model=str(model_dir), task="toy-fraction", out=out, load_in_4bit=four_bit, steps=steps,
                       prompts_per_step=prompts, num_generations=group, learning_rate=1e-3, report_to="none",
                       save_every=10_000)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model, tok = load_policy(model_dir, cfg)
    task = TOY_TASKS["toy-fraction"]
    args = grpo_config(cfg, rollout_params(task, 1.0, 1.0, max_tokens), [1.0], 1)
    trainer = GRPOTrainer(model=model, reward_funcs=[target_fraction_reward], args=args, processing_class=tok,
                          train_dataset=Dataset.from_list(task.load(None)))
    trainer.train()
    rows = [{"step_s": h.get("step_time"), "reward": h["reward"], "kl": h.get("kl", 0.0), "loss": h["loss"],
             "grad_norm": h.get("grad_norm", 0.0), "tokens": h.get("completions/mean_length", 0) * prompts * group}
            for h in trainer.state.log_history if "reward" in h]
    return {"steps": rows, "peak_gib": torch.cuda.max_memory_allocated() / GiB}


def print_results(label: str, sft: dict, grpo: dict) -> None:
    st = ", ".join(f"{t:.3f}" for t in sft["step_s"])
    print(f"[{label}] SFT  step times (s): {st} | peak GPU memory {sft['peak_gib']:.2f} GiB | "
          f"Linear4bit modules {sft['linear4bit']} | loss {sft['loss'][0]:.3f} -> {sft['loss'][1]:.3f}")
    for i, r in enumerate(grpo["steps"]):
        print(f"[{label}] GRPO step {i}: {r['step_s']:.3f}s (TRL, in-process generate, ~{r['tokens']:.0f} tokens) "
              f"| reward {r['reward']:.3f} kl {r['kl']:.4f} loss {r['loss']:.4f} grad_norm {r['grad_norm']:.3f}")
    print(f"[{label}] GRPO peak GPU memory {grpo['peak_gib']:.2f} GiB")


def cli_check(model_dir: Path, work: Path) -> None:
    """`evalctl train sft --load-in-4bit` as a user runs it (in-process, through click)."""
    import json

    from click.testing import CliRunner

    from evalctl.cli import main as evalctl

    data = work / "cli.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(16)))
    t0 = time.perf_counter()
    res = CliRunner().invoke(evalctl, ["train", "sft", "--model", str(model_dir), "--data", str(data), "--out",
                                       str(work / "cli"), "--load-in-4bit", "--max-steps", "2", "--report-to", "none"])
    if res.exit_code != 0:
        print(f"[cli] evalctl train sft --load-in-4bit FAILED ({res.exit_code}): {res.output[-400:]} {res.exception!r}")
        return
    summary = json.loads((work / "cli" / "train_summary.json").read_text())
    print(f"[cli] evalctl train sft --load-in-4bit: {summary['steps']} steps in {time.perf_counter() - t0:.1f}s "
          f"(model load included), loss {summary['first_loss']:.3f} -> {summary['last_loss']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--no-compare", action="store_true", help="Skip the bf16 LoRA comparison.")
    ap.add_argument("--cli", action="store_true", help="Also run `evalctl train sft --load-in-4bit` (2 steps).")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check needs a GPU")
    from evalctl.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="qlora-check-"))
    model_dir = args.model_dir or build_tiny_model(work / f"qwen2-h{args.hidden}-l{args.layers}",
                                                   hidden=args.hidden, layers=args.layers)
    n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(
        str(model_dir)).parameters())
    print(f"GPU {torch.cuda.get_device_name()} | {versions()}")
    print(f"model {model_dir}: random Qwen2, hidden {args.hidden}, {args.layers} layers, {n_params / 1e6:.1f}M params")
    print("GRPO rollouts: generated locally with model.generate (no vLLM on this machine), "
          f"{args.prompts} prompts x {args.generations} completions, up to {args.max_tokens} tokens")
    modes = [("qlora-4bit-nf4", True)] + ([] if args.no_compare else [("lora-bf16", False)])
    for label, four_bit in modes:
        sft = sft_check(model_dir, work / f"sft-{label}", four_bit, args.steps, args.batch)
        grpo = grpo_check(model_dir, work / f"grpo-{label}", four_bit, args.steps, args.prompts,
                          args.generations, args.max_tokens)
        print_results(label, sft, grpo)
    if args.cli:
        cli_check(model_dir, work)


if __name__ == "__main__":
    main()
