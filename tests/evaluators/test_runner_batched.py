"""Plain-text prompts sent several to a /v1/completions request, against the real gateway +
vLLM engine: the same records as one request per prompt, fewer requests, a bad prompt fails
alone, and each prompt is cached under its own key."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from evaluators import runner
from evaluators.results import read_jsonl
from evaluators.task import Task

pytestmark = pytest.mark.engine
PENS = Task(name="pens", description="test task", load=lambda path: [], scorers={"len": lambda completions, **_:
            [float(len(c)) for c in completions]}, summary_names={}, primary="len",
            sampling={"temperature": 0.0, "max_tokens": 12})


def samples(bad: bool = False) -> list[dict]:
    rows = [{"id": f"s{i}", "prompt": f"{name} has {i} pens and"}
            for i, name in enumerate(["Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Gus", "Hana"])]
    if bad:  # longer than the engine's 512-token context: vLLM refuses the whole request it is in
        rows[2]["prompt"] = "pens " * 700
    return rows


def requests_served(gateway) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    return sum(float(v) for v in re.findall(r'^evalctl_requests_total\{[^}]*endpoint="/v1/completions"[^}]*\} (\S+)',
                                            text, re.M))


def run(gateway, out, batch_size, rows, n=1, **sampling) -> tuple[dict, list[dict], float]:
    spec = runner.RunSpec(task="pens", model="tiny", endpoint=gateway.url, sampling={**PENS.sampling, **sampling},
                          n=n)
    before = requests_served(gateway)
    summary = asyncio.run(runner.run_async(PENS, spec, runner.with_ids(rows), out, api_key=gateway.api_key,
                                           concurrency=8, progress=False, batch_size=batch_size))
    records = {r["id"]: r for r in read_jsonl(out / "results.jsonl")}
    return summary, [records[r["id"]] for r in rows], requests_served(gateway) - before


def test_batched_prompts_give_the_records_of_single_requests(gateway, tmp_path):
    _, singles, single_requests = run(gateway, tmp_path / "one", 1, samples())
    summary, batched, batched_requests = run(gateway, tmp_path / "four", 4, samples())
    assert (single_requests, batched_requests) == (8, 2)
    assert summary["timings"]["batch_size"] == 4
    for one, four in zip(singles, batched):  # greedy: the same text
        assert four["completions"] == one["completions"] and four["error"] is None
        assert (four["prompt_tokens"], four["completion_tokens"]) == (one["prompt_tokens"], one["completion_tokens"])
        assert four["completion_tokens"] > 0


def test_batched_prompts_with_n_samples_each(gateway, tmp_path):
    """n > 1 (sampled: vLLM refuses n > 1 greedy): choices come prompt-major and are split back."""
    _, records, requests = run(gateway, tmp_path / "n2", 4, samples(), n=2, temperature=1.0, seed=3)
    assert requests == 2
    for r in records:
        assert r["error"] is None and len(r["completions"]) == 2 and r["completion_tokens"] > 0


def test_a_prompt_the_engine_refuses_fails_alone_and_prompts_are_cached_singly(gateway, tmp_path):
    _, records, _ = run(gateway, tmp_path / "bad", 4, samples(bad=True))
    assert [r["id"] for r in records if r["error"]] == ["s2"] and "maximum context length" in records[2]["error"]
    assert all(r["completions"] for i, r in enumerate(records) if i != 2)
    # a rerun into a new dir with the same cache, one request per prompt: every good prompt is a hit
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "cache.sqlite").write_bytes((tmp_path / "bad" / "cache.sqlite").read_bytes())
    _, again, requests = run(gateway, tmp_path / "again", 1, samples(bad=True))
    assert requests == 1  # only the refused prompt is asked again
    assert [r["completions"] for r in again] == [r["completions"] for r in records]
