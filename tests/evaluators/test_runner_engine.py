"""`evalctl run | score | compare` on GSM8K against the real gateway + vLLM engine
(the session `gateway` fixture, random-weights "tiny" model). Kept small: a few
samples, 32 new tokens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalctl.cli import main
from evaluators import cli as eval_cli
from evaluators.results import read_jsonl
from evaluators.scorers.gsm8k import r1_zero_answer_reward, r1_zero_format_reward
from evaluators.task import Task

pytestmark = pytest.mark.engine

RECORD_KEYS = {"id", "prompt", "completions", "extracted", "gold", "scores", "judge", "latency", "prompt_tokens",
               "completion_tokens", "error"}


def run_args(gateway, out: Path, *extra: str) -> list[str]:
    return ["run", "gsm8k", "--model", "tiny", "--base-url", gateway.url, "--api-key", gateway.api_key,
            "--max-tokens", "32", "--out", str(out), "--no-progress", *extra]


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def gsm8k_run(gateway, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "gsm8k-tiny"
    invoke(*run_args(gateway, out, "--limit", "8", "--concurrency", "4"))
    return out


def test_run_writes_required_fields(gsm8k_run):
    summary = json.loads((gsm8k_run / "summary.json").read_text())
    for key in ("num_examples", "format_rate", "accuracy", "avg_reward", "results_path", "num_scored", "num_failed",
                "git_commit", "data_sha256", "sampling", "timings", "metrics"):
        assert key in summary, key
    assert summary["num_examples"] == 8 and summary["num_failed"] == 0 and summary["model"] == "tiny"
    assert summary["sampling"]["max_tokens"] == 32
    assert summary["metrics"]["accuracy"]["n"] == 8
    assert Path(summary["results_path"]) == (gsm8k_run / "results.jsonl").resolve()
    records = read_jsonl(gsm8k_run / "results.jsonl", allow_truncated_tail=False)
    assert len(records) == 8 and len({r["id"] for r in records}) == 8
    for r in records:
        assert RECORD_KEYS <= set(r) and r["error"] is None
        assert len(r["completions"]) == 1 and r["completion_tokens"] > 0 and r["gold"]
    # Every score is the scorer's verdict on the saved completion, and the summary their mean.
    texts, golds = [r["completions"][0] for r in records], [r["gold"]["answer"] for r in records]
    answer, fmt = r1_zero_answer_reward(texts, answer=golds), r1_zero_format_reward(texts)
    assert [r["scores"]["answer_reward"] for r in records] == answer
    assert [r["scores"]["format_reward"] for r in records] == fmt
    assert summary["accuracy"] == pytest.approx(sum(answer) / 8) and summary["format_rate"] == pytest.approx(sum(fmt) / 8)


def test_rerun_same_out_is_free_and_changes_nothing(gateway, gsm8k_run):
    before = (gsm8k_run / "results.jsonl").read_text()
    invoke(*run_args(gateway, gsm8k_run, "--limit", "8", "--concurrency", "4"))
    assert (gsm8k_run / "results.jsonl").read_text() == before
    assert json.loads((gsm8k_run / "summary.json").read_text())["timings"]["new_samples"] == 0


def test_score_regrades_identically(gsm8k_run, tmp_path):
    invoke("score", "gsm8k", "--input", str(gsm8k_run / "results.jsonl"), "--out", str(tmp_path / "s"))
    scores = lambda d: {r["id"]: r["scores"] for r in read_jsonl(d / "results.jsonl")}  # noqa: E731
    assert scores(tmp_path / "s") == scores(gsm8k_run)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (gsm8k_run, tmp_path / "s"))
    assert {k: a[k] for k in ("accuracy", "format_rate", "avg_reward", "num_examples")} == \
        {k: b[k] for k in ("accuracy", "format_rate", "avg_reward", "num_examples")}


def test_kill_and_resume(gateway, tmp_path):
    out, total = tmp_path / "r", 24
    cmd = [sys.executable, "-m", "evalctl.cli", *run_args(gateway, out, "--limit", str(total), "--concurrency", "1")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    written = results.read_text().count("\n")
    assert 3 <= written < total, "the run finished before it could be killed"
    invoke(*run_args(gateway, out, "--limit", str(total), "--concurrency", "1"))
    ids = [r["id"] for r in read_jsonl(results, allow_truncated_tail=False)]
    assert len(ids) == total and len(set(ids)) == total  # every sample exactly once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_examples"] == total and summary["timings"]["resumed_samples"] >= 3


def _count(completions, answer, **_):
    return [float(a in c) for c, a in zip(completions, answer)]


SHORT = Task(name="short", description="short prompts (judge test)", scorers={"has_answer": _count},
             load=lambda path: [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"Ann has {i} pens and buys 2 "
                                 "more. How many pens?"}], "answer": str(i + 2)} for i in range(3)])


def test_judge_with_random_weights_records_parse_failures(gateway, tmp_path, monkeypatch):
    # A task with short chat prompts, so the judge prompt fits the tiny engine's 512-token context.
    monkeypatch.setattr(eval_cli, "get_task", lambda name: SHORT)
    out = tmp_path / "j"
    invoke("run", "short", "--model", "tiny", "--base-url", gateway.url, "--api-key", gateway.api_key,
           "--max-tokens", "16", "--out", str(out), "--no-progress", "--judge", "tiny", "--judge-max-tokens", "24")
    summary = json.loads((out / "summary.json").read_text())
    records = read_jsonl(out / "results.jsonl")
    verdicts = [v for r in records for v in r["judge"]]
    assert len(verdicts) == 3 and summary["judge"] == "tiny"
    assert summary["judge_errors"] == 0, verdicts  # the judge answered; it is its answer that is unreadable
    assert all(set(v) == {"parse_error", "raw"} and v["parse_error"] is True for v in verdicts), verdicts
    assert summary["judge_parse_failures"] == 3
    assert summary["judge_pass"] is None and summary["metrics"]["judge_pass"]["n"] == 0  # not a silent 0
    assert all(r["scores"]["judge_logic_clarity"] is None and r["scores"]["has_answer"] is not None for r in records)


def test_compare_two_runs_writes_png(gateway, gsm8k_run, tmp_path):
    other = tmp_path / "hot"
    invoke(*run_args(gateway, other, "--limit", "8", "--concurrency", "4", "--temperature", "1.0", "--seed", "1"))
    png = tmp_path / "cmp.png"
    result = invoke("compare", str(gsm8k_run), str(other), "--out", str(png), "--resamples", "1000")
    assert png.read_bytes()[:4] == b"\x89PNG" and "accuracy" in result.output
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["runs"][1]["metrics"]["accuracy"]["n_pairs"] == 8


def test_resume_refuses_when_the_name_serves_other_weights(gateway, tmp_path):
    """An adapter pushed again under its name is other weights: resuming its old run dir would
    report the old adapter's results (and replay its cached responses) as the new one's."""
    name, out = "resume-check", tmp_path / "run"

    def push(which: str) -> None:
        with gateway.admin() as admin:
            r = admin.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(gateway.adapters[which])})
            assert r.status_code == 200, r.text

    def run(dest: Path):
        args = run_args(gateway, dest, "--limit", "2", "--concurrency", "2")
        args[args.index("--model") + 1] = name
        return CliRunner().invoke(main, args)

    push("A")
    try:
        assert run(out).exit_code == 0
        served = json.loads((out / "config.json").read_text())["served"][name]
        assert served["root"] == str(gateway.adapters["A"]) and served["version"] >= 1
        assert run(out).exit_code == 0  # same weights: resumes
        push("B")
        refused = run(out)
        assert refused.exit_code == 1 and "Traceback" not in refused.output
        assert f"version {served['version']} " in refused.output and "now serves version" in refused.output
        assert str(gateway.adapters["B"]) in refused.output and "use another --out" in refused.output
        fresh = run(tmp_path / "new")
        assert fresh.exit_code == 0, fresh.output
        assert json.loads((tmp_path / "new" / "summary.json").read_text())["served"][name]["version"] > served["version"]
    finally:
        with gateway.admin() as admin:
            admin.post("/v1/unload_lora_adapter", json={"lora_name": name})
