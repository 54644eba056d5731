"""`--rerank endpoint:MODEL` against the session gateway: BM25 retrieves, the "tiny-embed" pooling
engine reranks through /v1/rerank (vLLM scores a bi-encoder by the cosine of the embeddings).

Its weights are random, so the only ranking it is sure of is identical text first (cosine 1). The
corpus makes BM25 miss that: the gold passage is the question itself, but a one-word passage holding
the question's one rare word outscores it (BM25's length norm), and the other words are in every filler.
"""

from __future__ import annotations

import json

import httpx
import pytest

from evaluators.cli import get_task, load_samples
from evaluators.results import read_jsonl
from rag.augment import query_text
from rag.lexical import BM25

from .conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.engine

QUESTION = "the cat sat on the mat"
DOCS = {"gold.txt": QUESTION, "decoy.txt": "mat",
        **{f"filler-{w}.txt": f"the cat sat on the {w}" for w in ("rug", "sofa", "bed", "chair", "floor", "box")}}


@pytest.fixture(scope="module")
def env(gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("rag-rerank")
    (root / "corpus").mkdir()
    for name, text in DOCS.items():
        (root / "corpus" / name).write_text(text, encoding="utf-8")
    common = ["--chroma-path", str(root / "db"), "--base-url", gateway.url, "--api-key", gateway.api_key]
    result = run_cli("rag", "ingest", root / "corpus", "--collection", "rerank-docs", "--embedder", "none",
                     "--no-progress", *common)
    assert result.exit_code == 0, result.output
    return {"root": root, "common": common}


def rerank_scores(gateway, query: str, texts: list[str]) -> list[float]:
    r = httpx.post(f"{gateway.url}/v1/rerank", json={"model": "tiny-embed", "query": query, "documents": texts},
                   headers={"Authorization": f"Bearer {gateway.api_key}"}, timeout=120)
    assert r.status_code == 200, r.text
    by_index = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
    return [by_index[i] for i in range(len(texts))]


def test_the_corpus_fools_bm25():
    names = list(DOCS)
    top = BM25(list(DOCS.values())).top(QUESTION, 2)
    assert [names[i] for i, _ in top] == ["decoy.txt", "gold.txt"]


def ask(env, *extra: str) -> dict:
    result = run_cli("rag", "ask", QUESTION, "--collection", "rerank-docs", "--model", "tiny", "--k", "1",
                     "--max-tokens", "4", "--json", *extra, *env["common"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_ask_reranks_the_retrieved_chunks(env, gateway):
    plain = ask(env)
    assert [h["id"] for h in plain["retrieved"]] == ["decoy.txt#0"] and plain["rerank"] is None
    reranked = ask(env, "--rerank", "endpoint:tiny-embed")
    assert reranked["rerank"] == "endpoint:tiny-embed" and reranked["mode"] == "bm25"
    assert [h["id"] for h in reranked["retrieved"]] == ["gold.txt#0"]
    assert reranked["retrieved"][0]["score"] == pytest.approx(rerank_scores(gateway, QUESTION, [QUESTION])[0])
    assert reranked["retrieved"][0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_eval_reports_recall_with_and_without_reranking(env):
    questions = env["root"] / "questions.jsonl"
    rows = [{"id": "q1", "question": QUESTION, "relevant": ["gold.txt"]},
            {"id": "q2", "question": "the cat sat on the sofa", "relevant": ["filler-sofa.txt"]}]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = env["root"] / "eval"
    result = run_cli("rag", "eval", "--collection", "rerank-docs", "--questions", questions, "--methods", "bm25",
                     "--k", "1,3", "--rerank", "endpoint:tiny-embed", "--out", out, "--no-progress", *env["common"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    assert summary["rows"] == ["bm25", "bm25+rerank"] and summary["rerank"] == "endpoint:tiny-embed"
    assert m["bm25/recall@1"]["mean"] == 0.5 and m["bm25+rerank/recall@1"]["mean"] == 1.0  # q1 moves up
    assert m["bm25/mrr"]["mean"] == pytest.approx((0.5 + 1) / 2) and m["bm25+rerank/mrr"]["mean"] == 1.0
    assert m["bm25/recall@3"]["mean"] == m["bm25+rerank/recall@3"]["mean"] == 1.0
    recs = {r["id"]: r for r in read_jsonl(out / "results.jsonl")}
    assert recs["q1"]["retrieval"]["bm25"]["ids"][0] == "decoy.txt#0"
    assert recs["q1"]["retrieval"]["bm25+rerank"]["ids"][0] == "gold.txt#0"
    assert "bm25+rerank" in result.output
    other = run_cli("rag", "eval", "--collection", "rerank-docs", "--questions", questions, "--methods", "bm25",
                    "--k", "1,3", "--out", out, "--no-progress", *env["common"])  # same run dir, no reranker
    assert_one_line_error(other, "cannot resume", "rerank=")


def test_run_with_rag_records_the_reranked_passages(env, gateway):
    out = env["root"] / "run"
    result = run_cli("run", "gsm8k", "--model", "tiny", "--base-url", gateway.url, "--api-key", gateway.api_key,
                     "--limit", "2", "--max-tokens", "4", "--out", out, "--no-progress", "--rag", "rerank-docs",
                     "--rag-k", "2", "--rerank", "endpoint:tiny-embed", "--chroma-path", env["root"] / "db")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rag"]["rerank"] == "endpoint:tiny-embed"
    samples = {str(s["id"]): s for s in load_samples(get_task("gsm8k"), None, 2)}
    for rec in read_jsonl(out / "results.jsonl"):
        assert rec["rag"]["rerank"] == "endpoint:tiny-embed" and len(rec["rag"]["ids"]) == 2
        texts = [DOCS[i.removesuffix("#0")] for i in rec["rag"]["ids"]]
        expected = rerank_scores(gateway, query_text(samples[str(rec["id"])]), texts)
        assert rec["rag"]["scores"] == pytest.approx(expected, abs=1e-5)
        assert rec["rag"]["scores"] == sorted(rec["rag"]["scores"], reverse=True)


@pytest.mark.parametrize("spec,fragments", [
    ("endpoint:nope", ("reranking with 'nope' failed", "nope")),
    ("endpoint:tiny", ("reranking with 'tiny' failed", "does not serve")),  # a generate engine: no rerank route
    ("st:cross-encoder", ("bad --rerank",)),
])
def test_a_model_that_cannot_rerank_is_a_one_line_error(env, gateway, spec, fragments):
    result = run_cli("rag", "ask", QUESTION, "--collection", "rerank-docs", "--model", "tiny", "--rerank", spec,
                     *env["common"])
    assert_one_line_error(result, *fragments)
    run = run_cli("run", "gsm8k", "--model", "tiny", "--base-url", gateway.url, "--api-key", gateway.api_key,
                  "--limit", "1", "--out", env["root"] / f"run-{spec.replace(':', '-')}", "--no-progress",
                  "--rag", "rerank-docs", "--rerank", spec, "--chroma-path", env["root"] / "db")
    assert_one_line_error(run, fragments[0])
