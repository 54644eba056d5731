"""`evalctl demo --fast` end to end: pretrain a small model, serve it, evaluate base,
SFT (hot-swapped), GRPO from the SFT adapter (hot-swapped), compare. Real vLLM, real training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_demo_task_is_gsm8k_shaped(tmp_path):
    """The synthetic data goes through the stock gsm8k task: its SFT completions score 1, the
    pretraining text carries no answer tags, and test questions are held out of train/sft."""
    from evalctl.demo_task import pretrain_text, problems, write_data
    from evaluators.tasks import gsm8k

    files = write_data(tmp_path, n_test=20, n_train=50, n_sft=50)
    test = gsm8k.load(files["test"])
    assert len(test) == 20 and all(s["prompt"].endswith("Assistant: <think>") for s in test)
    sft = [json.loads(line) for line in files["sft"].read_text().splitlines()]
    train = [json.loads(line)["question"] for line in files["train"].read_text().splitlines()]
    gold = [json.loads(line)["answer"] for line in files["test"].read_text().splitlines()]
    assert all(g.split("#### ")[-1].isdigit() for g in gold)
    questions = {s["prompt"] for s in test}
    assert not questions & {r["prompt"] for r in sft}
    assert not questions & {gsm8k.PROMPT.format(question=q) for q in train}
    completions = [r["completion"] for r in sft]
    answers = [r["completion"].split("<answer> ")[1].split(" ")[0] for r in sft]
    assert gsm8k.TASK.scorers["reward"](completions, answer=[f"#### {a}" for a in answers]) == [1.0] * 50
    for p in problems(50, 0):  # a dialog opens <think> as the prompt does, and never writes the answer tags
        assert "<think>" not in pretrain_text(p) and "Assistant: <think> " in pretrain_text(p, True)
        assert not {"</think>", "<answer>"} & set(pretrain_text(p, True).split())


@pytest.mark.timeout(900)
def test_demo_fast_runs_every_stage(tmp_path):
    workdir = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "evalctl.cli", "demo", "--fast", "--workdir", str(workdir)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((workdir / "demo_summary.json").read_text())
    assert list(summary["timings"]) == [
        "build: data + pretrained model", "serve: vLLM + gateway", "eval: base", "train: SFT (+ hot-swap as 'sft')",
        "eval: sft", "train: GRPO from sft (+ hot-swap as 'grpo')", "eval: grpo"]
    for stage in ("base", "sft", "grpo"):
        run = json.loads((workdir / "runs" / stage / "summary.json").read_text())
        assert run["model"] == stage and run["num_failed"] == 0 and run["num_examples"] == summary["size"]["n_test"]
    for path in ("data/test.jsonl", "data/sft.jsonl", "model-fast/model.safetensors", "demo.png", "demo.json",
                 "runs/sft-train/adapter/adapter_config.json", "runs/grpo-train/adapter/adapter_config.json",
                 "runs/grpo-train/metrics.jsonl"):
        assert (workdir / path).is_file(), path
    rows = [json.loads(line) for line in (workdir / "runs/grpo-train/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, summary["size"]["grpo_steps"] + 1))
    versions = [r["adapter_version"] for r in rows]
    assert versions == list(range(versions[0], versions[0] + len(rows)))  # a fresh policy version per step
    assert all(0.0 <= r["reward_mean"] <= 1.0 and r["time_generation"] > 0 for r in rows)
    assert [(s["before"], s["after"]) for s in summary["stages"]] == [("base", "sft"), ("sft", "grpo")]
    assert all(0 < s["p_one_sided"] <= 1 and s["n_pairs"] == summary["size"]["n_test"] for s in summary["stages"])
    fmt = {k: v["format_rate"]["mean"] for k, v in summary["metrics"].items()}
    assert fmt["sft"] > fmt["base"] + 0.5, fmt  # SFT teaches the r1_zero format the base never saw
    assert "format_rate" in proc.stdout and "vs sft" in proc.stdout and "one-sided paired bootstrap" in proc.stdout


def test_cached_model_is_rebuilt_for_another_held_out_set(tmp_path):
    """A model pretrained with other questions held out may have seen the new test set."""
    from evalctl.demo_pretrain import pretrain

    out = tmp_path / "model"
    pretrain(out, steps=2, exclude={"What is 1 + 1?"})
    first = (out / "pretrain.json").read_text()
    pretrain(out, steps=2, exclude={"What is 1 + 1?"})
    assert (out / "pretrain.json").read_text() == first  # reused
    pretrain(out, steps=2, exclude={"What is 2 + 2?"})
    assert json.loads((out / "pretrain.json").read_text())["held_out"] != json.loads(first)["held_out"]
    pretrain(out, steps=3, exclude={"What is 2 + 2?"})
    assert json.loads((out / "pretrain.json").read_text())["steps"] == 3
