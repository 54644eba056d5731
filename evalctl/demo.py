"""`evalctl demo`: the README's main job, fully offline, on a small model built here.

Base -> SFT -> GRPO on a synthetic GSM8K-format arithmetic task, through the same
commands a GPU user runs: `evalctl serve` (a child process), `evalctl run gsm8k`,
`evalctl train sft --push`, `evalctl train grpo --init --push` and `evalctl compare`
(invoked in-process through their click commands). The demo only orchestrates.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from .demo_pretrain import pretrain
from .demo_task import problems, write_data
from .process import ServerProcess

METRICS = ["format_rate", "accuracy", "avg_reward"]
LORA_RANK = 16  # the server's --max-lora-rank must be at least the adapters' rank


@dataclass(frozen=True)
class DemoSize:
    pretrain_steps: int
    n_test: int
    n_train: int
    n_sft: int
    sft_steps: int
    grpo_steps: int
    grpo_prompts: int
    grpo_generations: int


# Pretraining (cached) teaches one-digit arithmetic: 1000 steps reach 0.70 greedy accuracy on
# plain text (250 steps: 0.12, near chance, which left SFT and GRPO nothing but noise to move).
# SFT sees 120 written demonstrations once (15 steps of 8): it teaches most of the format, and
# the model computes the result in its <think> part (74% right), but it writes another number
# inside <answer> most of the time (greedy accuracy 0.06). GRPO on the rule reward then has
# correctness to win: tying the answer to the computation. Measured on 400 held-out questions,
# 60 GRPO steps: lr 1e-3 0.058 -> 0.170 (p = 0.0001); lr 3e-4 0.040 -> 0.120 (from an SFT run
# before SFT was seeded). (On an earlier model, SFT for 150 steps over 1024 demonstrations reached
# what its arithmetic allowed, and 30-40 GRPO steps gained nothing, with TRL's trainer or ours.)
FULL = DemoSize(pretrain_steps=1000, n_test=400, n_train=1024, n_sft=120, sft_steps=15, grpo_steps=60,
                grpo_prompts=16, grpo_generations=8)
FAST = DemoSize(pretrain_steps=100, n_test=64, n_train=128, n_sft=512, sft_steps=80, grpo_steps=4,
                grpo_prompts=4, grpo_generations=8)
GRPO_LR = 1e-3  # measured: +0.11 in 60 steps against +0.08 at 3e-4 (see above)


def _invoke(command, args: list[str]) -> None:
    """Run a click command in-process exactly as the CLI would (errors propagate)."""
    command.main([str(a) for a in args], standalone_mode=False)


class Demo:
    def __init__(self, workdir: Path, size: DemoSize, fast: bool, console: Console):
        self.workdir, self.size, self.console = Path(workdir), size, console
        self.model_dir = self.workdir / ("model-fast" if fast else "model")
        self.runs = self.workdir / "runs"
        self.url = ""
        self.timings: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def stage(self, name: str, fn, *args):
        self.console.rule(f"[bold]{name}")
        t = time.perf_counter()
        out = fn(*args)
        self.timings[name] = round(time.perf_counter() - t, 1)
        self.console.print(f"{name}: {self.timings[name]:.1f}s (total {time.perf_counter() - self.t0:.0f}s)")
        return out

    def build(self) -> dict[str, Path]:
        s = self.size
        data = write_data(self.workdir / "data", s.n_test, s.n_train, s.n_sft)
        held_out = {p["question"] for p in problems(s.n_test, seed=1)}  # the test set, as write_data draws it
        marker = self.model_dir / "pretrain.json"
        before = marker.read_text() if marker.exists() else None
        pretrain(self.model_dir, steps=s.pretrain_steps, exclude=held_out)
        info = json.loads(marker.read_text())
        cached = before == marker.read_text()
        self.console.print(f"model {self.model_dir} ({'cached' if cached else 'built'}: {info['steps']} steps, "
                           f"final loss {info['final_loss']:.3f})")
        return data

    def evaluate(self, model: str, data: Path) -> Path:
        from evaluators.cli import run

        out = self.runs / model
        _invoke(run, ["gsm8k", "--model", model, "--base-url", self.url, "--data", data, "--out", out,
                      "--max-tokens", 32, "--concurrency", 16, "--no-progress"])
        return out

    def train_sft(self, data: Path) -> Path:
        from trainers.cli import train

        out = self.runs / "sft-train"
        _invoke(train, ["sft", "--model", self.model_dir, "--data", data, "--out", out, "--lora-r", LORA_RANK,
                        "--lora-alpha", 2 * LORA_RANK, "--learning-rate", 3e-3, "--max-steps", self.size.sft_steps,
                        "--batch-size", 8, "--max-length", 256, "--report-to", "none", "--push", "sft",
                        "--base-url", self.url])
        return out / "adapter"

    def train_grpo(self, data: Path, init: Path) -> Path:
        from trainers.cli import train

        # --beta 0: no KL anchor; the reward alone decides (the demo's budget is 60 steps).
        s, out = self.size, self.runs / "grpo-train"
        _invoke(train, ["grpo", "--model", self.model_dir, "--task", "gsm8k", "--data", data, "--out", out,
                        "--init", init, "--name", "grpo", "--steps", s.grpo_steps, "--prompts-per-step",
                        s.grpo_prompts, "--num-generations", s.grpo_generations, "--learning-rate", GRPO_LR,
                        "--max-tokens", 32, "--beta", 0, "--cpu-threads", 2, "--micro-batch-size", 64,
                        "--rewards", "reward,format_reward", "--reward-weights", "1,0",  # format: logged only
                        "--report-to", "none",
                        "--save-every", 1000, "--base-url", self.url])
        return out / "adapter"

    def compare(self) -> tuple[dict, list[dict]]:
        """`evalctl compare` against base and against SFT, and each stage's one-sided test on accuracy."""
        from evaluators import compare as cmp

        result = cmp.compare_runs([self.runs / m for m in ("base", "sft", "grpo")], METRICS)
        self.console.print(cmp.render_table(result))
        self.console.print(cmp.render_table(cmp.compare_runs([self.runs / m for m in ("sft", "grpo")], METRICS)))
        png = cmp.write_outputs(result, self.workdir / "demo.png")
        self.console.print(f"chart: {png}; table: {png.with_suffix('.json')}")
        stages = [cmp.improvement(self.runs / a, self.runs / b, "accuracy") for a, b in (("base", "sft"), ("sft", "grpo"))]
        for st in stages:
            verdict = "better" if st["p_one_sided"] is not None and st["p_one_sided"] < 0.05 else "not shown better"
            self.console.print(f"{st['before']} -> {st['after']}: accuracy {st['delta']:+.3f} over {st['n_pairs']} "
                               f"questions, one-sided paired bootstrap p={st['p_one_sided']:.4f} ({verdict})")
        return result, stages

    def serve(self, port: int) -> ServerProcess:
        args = ["--model", self.model_dir, "--name", "base", "--dtype", "float32", "--max-model-len", 512,
                "--max-lora-rank", LORA_RANK, "--max-loras", 4, "--log-dir", self.workdir / "logs"]
        env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
        return ServerProcess([str(a) for a in args], self.workdir / "logs" / "serve.log", port=port or None,
                             env=env).start()


def run_demo(workdir: Path, port: int = 0, fast: bool = False) -> dict:
    import torch

    # One torch thread: the vLLM CPU engine shares the cores, and oversubscribing them
    # made training steps many times slower (see `train grpo --cpu-threads`).
    torch.set_num_threads(1)
    console = Console()
    demo = Demo(workdir, FAST if fast else FULL, fast, console)
    data = demo.stage("build: data + pretrained model", demo.build)
    shutil.rmtree(demo.runs, ignore_errors=True)  # runs resume by default; a new demo must not reuse old ones
    server = demo.stage("serve: vLLM + gateway", demo.serve, port)
    demo.url = server.url
    try:
        demo.stage("eval: base", demo.evaluate, "base", data["test"])
        sft = demo.stage("train: SFT (+ hot-swap as 'sft')", demo.train_sft, data["sft"])
        demo.stage("eval: sft", demo.evaluate, "sft", data["test"])
        demo.stage("train: GRPO from sft (+ hot-swap as 'grpo')", demo.train_grpo, data["train"], sft)
        demo.stage("eval: grpo", demo.evaluate, "grpo", data["test"])
    finally:
        server.stop()
    result, stages = demo.compare()
    total = round(time.perf_counter() - demo.t0, 1)
    summary = {"fast": fast, "size": asdict(demo.size), "timings": demo.timings, "total_seconds": total,
               "metrics": {r["label"]: {m: r["metrics"][m] for m in METRICS} for r in result["runs"]},
               "stages": stages,
               "runs": {m: str(demo.runs / m) for m in ("base", "sft", "grpo")}}
    (demo.workdir / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    console.print(f"done in {total:.0f}s; run dirs under {demo.runs}; summary {demo.workdir / 'demo_summary.json'}")
    return summary
