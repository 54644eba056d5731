"""Trainers against the real server (vLLM CPU engine + gateway, tiny model): every generation
comes from the endpoint, every adapter goes back into it."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from trainers.tasks import contains_reward  # noqa: E402

from .conftest import endpoint_args, read_jsonl, run_cli, write_jsonl  # noqa: E402

pytestmark = pytest.mark.engine


def greedy(gateway, model: str, prompt: str) -> str:
    return gateway.openai().completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0).choices[0].text


def unload(gateway, *names: str) -> None:
    with gateway.admin() as admin:
        for name in names:
            admin.post("/v1/unload_lora_adapter", json={"lora_name": name})


def test_sft_lowers_loss_and_the_pushed_adapter_changes_greedy_output(gateway, small_sft_file, tmp_path):
    out = tmp_path / "sft"
    try:
        result = run_cli("train", "sft", "--model", gateway.model_dir, "--data", small_sft_file, "--out", out,
                         "--max-steps", 15, "--learning-rate", 5e-3, "--lora-r", 8, "--push", "sft-test",
                         *endpoint_args(gateway))
        assert "pushed" in result.output and "'sft-test' (version 1)" in result.output
        summary = json.loads((out / "train_summary.json").read_text())
        assert summary["last_loss"] < 0.7 * summary["first_loss"]
        assert (out / "sft_curves.png").is_file() and list((out / "runs").rglob("events.out.tfevents*"))
        prompt = "User: 3 + 4 ="
        assert greedy(gateway, "sft-test", prompt) != greedy(gateway, "tiny", prompt)
    finally:
        unload(gateway, "sft-test")


def test_rejection_sampling_keeps_exactly_the_correct_samples(gateway, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", [
        {"id": "often", "prompt": "User: Ann has 3 apples\nAssistant:", "target": "1"},
        {"id": "rare", "prompt": "User: Bob has 5 pens\nAssistant:", "target": "Hugo"},
        {"id": "never", "prompt": "Carla", "target": "no completion has this"},
    ])
    out = tmp_path / "rs"
    run_cli("train", "rs", "--task", "toy-contains", "--data", data, "--model", gateway.model_dir,
            "--sample-model", "tiny", "--out", out, "--n", 8, "--max-steps", 2, "--lora-r", 8,
            "--report-to", "none", *endpoint_args(gateway))
    samples = read_jsonl(out / "rs_samples.jsonl")
    assert [len(s["completions"]) for s in samples] == [8, 8, 8]
    want = []
    for s in samples:
        ok = [t for t, r in zip(s["completions"], contains_reward(s["completions"], target=s["gold"]["target"])) if r]
        want += [(s["id"], t, 1 / len(ok)) for t in ok]
    kept = read_jsonl(out / "rs_kept.jsonl")
    assert [(k["id"], k["completion"], k["weight"]) for k in kept] == want
    stats = json.loads((out / "rs_stats.json").read_text())
    assert stats["samples"] == 24 and stats["correct"] == stats["kept"] == len(want)
    assert stats["pass_rate"] == pytest.approx(len(want) / 24)
    assert "never" in stats["unsolved_ids"] and stats["prompts_without_correct"] == len(stats["unsolved_ids"])
    if want:
        assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_sample_writes_scored_completions(gateway, tmp_path):
    out = tmp_path / "s.jsonl"
    result = run_cli("sample", "toy-contains", "--model", "tiny", "--n", 4, "--limit", 3, "--out", out,
                     *endpoint_args(gateway))
    assert '"prompts": 3' in result.output and '"completions": 12' in result.output
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(len(r["completions"]) == 4 for r in rows)
    for r in rows:
        assert r["rewards"] == contains_reward(r["completions"], target=r["gold"]["target"])


def test_distill_through_the_endpoint(gateway, tmp_path):
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"question": f"What is {i} + 1?", "answer": str(i + 1),
                                                "category": "add" if i % 2 else "other"} for i in range(4)])
    out = tmp_path / "d"
    run_cli("distill", "--teacher", "tiny", "--data", raw, "--out", out, "--no-judge", "--max-tokens", 16,
            *endpoint_args(gateway))
    stats = json.loads((out / "filter_stats.json").read_text())
    assert stats["questions"] == 4 and stats["judge"] is False
    assert stats["kept"] + sum(stats["dropped"].values()) == 4
    sizes = {f: len(read_jsonl(out / f"{f}.jsonl")) for f in ("sft", "rl", "test")}
    assert sizes == {f: stats["split"][f] for f in ("sft", "rl", "test")}
    assert len(read_jsonl(out / "teacher_raw.jsonl")) == 4
