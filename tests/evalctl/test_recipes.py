"""`evalctl recipe`: the runner on a recipe that needs no endpoint (skips, failures, the table), and
every recipe under recipes/ run with --tiny end to end through the session gateway."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalctl.cli import main
from evalctl.recipe_table import finite
from evalctl.recipes import recipe_paths
from tests.conftest import ADMIN_KEY, API_KEY

OFFLINE = """
pipeline: score two saved completions twice
vars:
  input: NONE
stages:
  - name: first
    run: score gsm8k --input ${input} --out ${first.out}
  - name: second
    run: score gsm8k --input ${first.out}/results.jsonl --out ${second.out}
table:
  metrics: [accuracy, format_rate]
  rows:
    - {label: first, run: "${first.out}"}
    - {label: second, run: "${second.out}"}
"""


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def offline_recipe(tmp_path) -> tuple[Path, Path]:
    inp = tmp_path / "old.jsonl"
    inp.write_text('{"id": "a", "completion": " 2 + 3 = 5 </think> <answer> 5 </answer>", "answer": "#### 5"}\n'
                   '{"id": "b", "completion": " 4 + 4 = 9 </think> <answer> 9 </answer>", "answer": "#### 8"}\n')
    path = tmp_path / "offline.yaml"
    path.write_text(OFFLINE)
    return path, inp


def test_ls_lists_every_recipe():
    out = cli("recipe", "ls").output
    for name in recipe_paths():
        assert name in out
    assert {"r1-zero-gsm8k", "fin-r1", "legal-rs"} <= set(recipe_paths())


def test_run_table_and_rerun_skips(tmp_path, offline_recipe):
    path, inp = offline_recipe
    r = cli("recipe", "run", path, "--out", tmp_path / "run", "--set", f"input={inp}")
    assert r.exit_code == 0, r.output
    assert "[1/2] first: ok" in r.output and "[2/2] second: ok" in r.output
    table = json.loads((tmp_path / "run" / "table.json").read_text())
    assert [row["label"] for row in table["rows"]] == ["first", "second"]
    assert table["rows"][0]["metrics"]["accuracy"]["mean"] == 0.5 and finite(table)
    assert (tmp_path / "run" / "table.png").stat().st_size > 1000
    assert "| first | 0.500" in (tmp_path / "run" / "table.md").read_text()
    assert "$ evalctl score gsm8k" in (tmp_path / "run" / "logs" / "first.log").read_text()
    again = cli("recipe", "run", path, "--out", tmp_path / "run", "--set", f"input={inp}")
    assert again.exit_code == 0 and again.output.count("done before, skipped") == 2


def test_failed_stage_is_one_line_naming_its_log(tmp_path, offline_recipe):
    path, _ = offline_recipe
    r = cli("recipe", "run", path, "--out", tmp_path / "run", "--set", "input=/nonexistent.jsonl")
    assert r.exit_code == 1 and "Traceback" not in r.output
    last = r.output.strip().splitlines()[-1]
    log = tmp_path / "run" / "logs" / "first.log"
    assert last.startswith("Error: stage first failed: ") and last.endswith(f"(log: {log})")
    assert "Traceback" in log.read_text() and not (tmp_path / "run" / ".done" / "first.json").exists()


@pytest.mark.parametrize("args,msg", [
    (["recipe", "run", "r1-zero-gsm"], "no recipe 'r1-zero-gsm'; did you mean r1-zero-gsm8k?"),
    (["recipe", "run", "r1-zero-gsm8k", "--set", "nope=1"], "--set nope: recipe r1-zero-gsm8k has no such var"),
    (["recipe", "run", "r1-zero-gsm8k", "--set", "novalue"], "--set expects key=value"),
])
def test_bad_input_is_one_line(args, msg):
    r = cli(*args)
    assert r.exit_code != 0 and msg in r.output and len(r.output.strip().splitlines()) == 1, r.output


# --- every recipe, --tiny, through the session gateway ---------------------------------------------

@pytest.fixture
def one_thread():
    import torch

    # training shares the 2 cores with the engine; one torch thread keeps steps fast (tests/trainers)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def recipe_env(gateway, monkeypatch, one_thread):
    """The session gateway (512-token tiny engine, tiny-alias, tiny-embed) and its keys."""
    monkeypatch.setenv("EVALCTL_API_KEY", gateway.api_key)
    monkeypatch.setenv("EVALCTL_ADMIN_KEY", gateway.admin_key)
    return ["--set", f"base={gateway.model_dir}", "--set", f"base_url={gateway.url}"]


@pytest.fixture
def own_gateway_env(tiny_model, monkeypatch, one_thread):
    """For the recipes whose tiny profile serves the tiny model itself with a 1024-token context
    (their `tiny-gateway` stage: Chinese cases and judge prompts overflow the session engine's 512)."""
    monkeypatch.setenv("EVALCTL_API_KEY", API_KEY)
    monkeypatch.setenv("EVALCTL_ADMIN_KEY", ADMIN_KEY)
    return ["--set", f"base={tiny_model}"]


def run_tiny(name: str, out: Path, sets: list[str]) -> dict:
    r = cli("recipe", "run", name, "--tiny", "--out", out, *sets)
    (out / "run.out").write_text(r.output)
    assert r.exit_code == 0, r.output
    table = json.loads((out / "table.json").read_text())
    assert finite(table), table
    assert (out / "table.md").is_file() and (out / "table.png").is_file()
    return table


def test_r1_zero_gsm8k(tmp_path, recipe_env):
    out = tmp_path / "r1z"
    table = run_tiny("r1-zero-gsm8k", out, recipe_env)
    assert [r["label"] for r in table["rows"]] == ["base", "sft", "sft+grpo", "sft+dpo"]
    for ev in ("eval-base", "eval-sft", "eval-grpo", "eval-dpo"):
        assert json.loads((out / ev / "summary.json").read_text())["num_examples"] == 4
    stats = json.loads((out / "sft" / "rs_stats.json").read_text())
    assert stats["prompts"] == 2 and stats["samples"] == 16
    kept = [json.loads(x) for x in (out / "sft" / "rs_kept.jsonl").read_text().splitlines()]
    assert all(math.isclose(k["weight"], 1 / 8) for k in kept)
    for stage in ("sft", "grpo", "dpo"):
        assert (out / stage / "adapter" / "adapter_config.json").is_file(), stage
    assert len((out / "grpo" / "metrics.jsonl").read_text().splitlines()) == 1
    assert all(table["rows"][i]["metrics"]["format_rate"]["n"] == 4 for i in range(4))


def _summary(out: Path, stage: str) -> dict:
    return json.loads((out / stage / "summary.json").read_text())


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_fin_r1(tmp_path, own_gateway_env):
    out = tmp_path / "fin"
    table = run_tiny("fin-r1", out, own_gateway_env)
    assert [r["label"] for r in table["rows"]] == ["base", "sft", "sft+grpo", "sft+grpo merged"]
    stats = json.loads((out / "distill" / "filter_stats.json").read_text())
    # the judge filter ran on what the rule filter passed, and every verdict was readable
    assert stats["judge"] is True and stats["judge_model"] == "tiny-alias" and stats["rule_pass"] > 0
    assert stats["kept"] == stats["rule_pass"] and "judge_unreadable" not in stats["dropped"]
    assert stats["split"]["test"] == round(stats["kept"] * 0.2) and stats["split"]["test"] >= 1
    test_rows = _rows(out / "distill" / "test.jsonl")
    assert all(r["question"] and r["category"] in {"convfinqa", "tatqa", "cflue", "financeiq"} for r in test_rows)
    for stage in ("eval-base", "eval-sft", "eval-grpo"):
        s = _summary(out, stage)
        assert s["num_examples"] == len(test_rows) and s["judge"] == "tiny-alias" and set(s["by_category"])
        assert s["judge_parse_failures"] == 0 and math.isfinite(s["metrics"]["judge_pass"]["mean"])
    grpo = _rows(out / "grpo" / "metrics.jsonl")
    assert len(grpo) == 1 and math.isfinite(grpo[0]["rewards/judge/mean"])
    # every rollout judged: the total is the weighted sum of the parts' means (an unjudged rollout
    # counts 0 in the total but is left out of the judge's mean)
    expect = 0.3 * grpo[0]["rewards/format_reward/mean"] + 0.7 * grpo[0]["rewards/accuracy/mean"] \
        + 0.5 * grpo[0]["rewards/judge/mean"]
    assert math.isclose(grpo[0]["reward_mean"], expect, rel_tol=1e-4), grpo[0]
    assert (out / "merge" / "model" / "config.json").is_file()
    adapter, merged = table["rows"][2]["metrics"], table["rows"][3]["metrics"]
    assert {m: adapter[m]["mean"] for m in adapter} == {m: merged[m]["mean"] for m in merged}
    by_id = lambda stage: {r["id"]: r["completions"] for r in _rows(out / stage / "results.jsonl")}  # noqa: E731
    assert by_id("eval-merged") == by_id("eval-grpo")  # greedy: the merged weights decode the same tokens


def test_legal_rs(tmp_path, own_gateway_env):
    out = tmp_path / "legal"
    table = run_tiny("legal-rs", out, own_gateway_env)
    assert "[1/5] tiny-gateway: ok" in (out / "run.out").read_text()
    assert [r["label"] for r in table["rows"]] == ["base", "rs-sft"]
    samples = _rows(out / "sample" / "samples.jsonl")
    assert len(samples) == 2 and all(len(s["completions"]) == 8 and s["error"] is None for s in samples)
    assert all("【相关法条】" in s["prompt"][-1]["content"] for s in samples)  # the articles are in the prompt
    stats = json.loads((out / "rs-sft" / "rs_stats.json").read_text())
    kept = _rows(out / "rs-sft" / "rs_kept.jsonl")
    assert stats["kept"] == len(kept) > 0 and all(math.isclose(k["weight"], 1 / 8) for k in kept)
    assert (out / "rs-sft" / "adapter" / "adapter_config.json").is_file()
    for stage in ("eval-base", "eval-rs"):
        s = _summary(out, stage)
        assert "charge_macro_f1" in s and s["num_examples"] == 1 and s["num_failed"] == 0  # the one held-out case


def test_probability_qa(tmp_path, recipe_env):
    out = tmp_path / "prob"
    table = run_tiny("probability-qa", out, recipe_env)
    assert len(table["rows"]) == 8 and all(r["metrics"]["avg_open_reward"]["n"] == 3 for r in table["rows"])
    for r in table["rows"]:
        assert _summary(out, Path(r["run"]).name)["num_failed"] == 0, r["label"]
    ingest = (out / "logs" / "ingest.log").read_text()
    assert "prob-notes" in ingest and (out / "chroma").is_dir()
    for stage in ("rag-base", "rag-sft-random", "rag-sft-svd", "rag-grpo"):
        rag = _summary(out, stage)["rag"]
        assert rag["collection"] == "prob-notes" and rag["k"] == 3, rag
    svd = json.loads((out / "svd-init" / "adapter" / "adapter_config.json").read_text())
    assert svd["r"] == 4 and json.loads((out / "sft-random" / "adapter" / "adapter_config.json").read_text())["r"] == 4
    choice = json.loads((out / "better-sft" / "choice.json").read_text())
    assert choice["picked"]["value"] in {str(out / "sft-svd" / "adapter"), str(out / "sft-random" / "adapter")}
    assert json.loads((out / "grpo" / "grpo_config.json").read_text())["init"] == choice["picked"]["value"]
    assert math.isfinite(_rows(out / "grpo" / "metrics.jsonl")[0]["rewards/open_reward/mean"])


def test_lora_service(tmp_path, recipe_env):
    out = tmp_path / "svc"
    sets = recipe_env[2:]  # only base_url: a service recipe trains nothing locally
    table = run_tiny("lora-service", out, sets)
    uploads = [json.loads((out / s / "outputs.json").read_text()) for s in ("upload-alpaca", "upload-sharegpt")]
    assert [u["filename"] for u in uploads] == ["alpaca.json", "sharegpt.jsonl"]
    job = json.loads((out / "job" / "outputs.json").read_text())
    assert job["status"] == "succeeded" and job["fine_tuned_model"].startswith("ft:")
    assert "succeeded" in (out / "logs" / "job.log").read_text().lower()  # the followed events
    chat = json.loads((out / "chat" / "outputs.json").read_text())
    assert chat["model"] == job["fine_tuned_model"] and chat["completion_tokens"] > 0
    assert _summary(out, "eval-ft")["model"] == job["fine_tuned_model"]
    assert [r["label"] for r in table["rows"]] == ["base", "fine-tuned (job)"]
