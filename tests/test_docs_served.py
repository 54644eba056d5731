"""The docs' examples that need the endpoint work against the real server, as written: curl,
the OpenAI SDK, the shared client, `evalctl run`, training with a push, and a fine-tuning job.
Blocks are found by their `<!-- test: NAME -->` tag (tests/docs_blocks.py); the ones that need no
server are run by tests/test_docs.py."""

from __future__ import annotations

import json
import re

from tests.docs_blocks import run_block


def run(tag: str, gateway, cwd, *, timeout: float = 120, **env) -> str:
    """A tagged block against the session server: its URL, its keys in the environment the docs name."""
    env = {"EVALCTL_API_KEY": gateway.api_key, "EVALCTL_ADMIN_KEY": gateway.admin_key,
           "EVALCTL_BASE_URL": gateway.url, **env}
    return run_block(tag, cwd, url=gateway.url, timeout=timeout, **env)


def unload(gateway, name: str) -> None:
    """The session server is shared: leave it with the adapters it had."""
    with gateway.admin() as admin:
        assert admin.post("/v1/unload_lora_adapter", json={"lora_name": name}).status_code == 200
        assert name not in [a["name"] for a in admin.get("/v1/adapters").json()["data"]]


def test_readme_curl_chat(gateway, tmp_path):
    body = json.loads(run("curl-chat", gateway, tmp_path))
    assert body["model"] == "tiny" and body["usage"]["completion_tokens"] == 16


def test_serving_curl_stream_is_seeded_server_sent_events(gateway, tmp_path):
    texts = []
    for _ in range(2):
        lines = [ln for ln in run("curl-stream", gateway, tmp_path).splitlines() if ln.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and len(lines) >= 2
        chunks = [json.loads(ln[len("data: "):]) for ln in lines[:-1]]
        texts.append("".join(c["choices"][0]["text"] for c in chunks if c["choices"]))
    assert texts[0] == texts[1] and texts[0]  # seed 1 at temperature 1: the same sample twice


def test_serving_sdk_chat(gateway, tmp_path):
    run("sdk-chat", gateway, tmp_path)  # the SDK raised on no error: the reply printed


def test_serving_curl_adapter(gateway, tmp_path):
    out = run("curl-adapter", gateway, tmp_path, ADAPTER_DIR=str(gateway.adapters["B"]))
    assert "Success" in out
    names = [a["name"] for a in json.loads(out[out.index('{"object"'):])["data"]]
    assert "sft" in names
    unload(gateway, "sft")


def test_serving_curl_health_models_metrics_and_an_error(gateway, tmp_path):
    gateway.openai().completions.create(model="tiny", prompt="1 +", max_tokens=2)  # something to count
    out = run("curl-health", gateway, tmp_path)
    decoder = json.JSONDecoder()
    health, end = decoder.raw_decode(out)
    models, end = decoder.raw_decode(out, end)
    metrics, error = out[end:out.index('{"error"')], json.loads(out[out.index('{"error"'):])
    assert health["status"] == "ok"
    assert "tiny" in [m["id"] for m in models["data"]]
    assert re.search(r'^evalctl_requests_total\{.*model="tiny"', metrics, re.M)
    assert error["error"]["code"] == "model_not_found" and "tiny" in error["error"]["message"]


def test_serving_shared_client(gateway, tmp_path):
    lines = run("shared-client", gateway, tmp_path).splitlines()
    assert len(lines) == 2 and all(line.endswith(" None") for line in lines)  # no generation failed
    assert (tmp_path / "runs" / "cache.sqlite").exists()


def test_jobs_and_ui_curl_runs(gateway, tmp_path):
    from tests.server.rundirs import write_run

    write_run(gateway.results_dir / "readme-run", "sft", [3, 4, 5], error_at=1)
    out = run("curl-runs", gateway, tmp_path, RUN="readme-run")
    decoder = json.JSONDecoder()
    listing, end = decoder.raw_decode(out)
    page, _ = decoder.raw_decode(out[end:].lstrip())
    assert "readme-run" in [r["id"] for r in listing["data"]]
    assert [r["id"] for r in page["data"]] == ["q1"] and page["total"] == 1


def test_evaluating_run_and_compare(gateway, tmp_path):
    out = run("eval-run", gateway, tmp_path, timeout=300)
    for name in ("tiny-greedy", "tiny-sampled"):
        summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
        assert summary["num_examples"] == 8 and summary["num_failed"] == 0
    assert (tmp_path / "runs" / "compare.png").exists() and (tmp_path / "runs" / "compare.json").exists()
    assert "accuracy" in out


def test_training_sft_pushes_and_is_evaluated(gateway, tmp_path):
    rows = [{"prompt": f"User: {a} + {b} =", "completion": f" <answer> {a + b} </answer>"}
            for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]]
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # One torch thread: training shares 2 cores with the vLLM engine (see tests/trainers/conftest.py).
    out = run("train-sft", gateway, tmp_path, timeout=600, BASE=str(gateway.model_dir), OMP_NUM_THREADS="1")
    try:
        assert "pushed" in out and "'sft'" in out
        assert (tmp_path / "runs" / "sft" / "adapter" / "adapter_config.json").exists()
        summary = json.loads((tmp_path / "runs" / "sft-eval" / "summary.json").read_text())
        assert summary["model"] == "sft" and summary["num_examples"] == 4 and summary["num_failed"] == 0
    finally:
        unload(gateway, "sft")


def test_jobs_and_ui_sdk_fine_tune(gateway, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"{n} has {i} pens. How many pens?"},
                          {"role": "assistant", "content": f"<answer> {i} </answer>"}]}
            for i, n in enumerate(["Ann", "Bob", "Carla", "Dev", "Emma", "Farid"])]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run("sdk-fine-tune", gateway, tmp_path, timeout=600)
    m = re.search(r"^succeeded (ft:tiny:pens:ftjob-\S+) None$", out, re.M)
    assert m, out[-2000:]
    assert "The job has successfully completed" in out
    unload(gateway, m.group(1))
