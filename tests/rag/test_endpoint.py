"""RAG through the real endpoint (the session `gateway`: vLLM "tiny" LM + "tiny-embed" pooling
embedder, random weights): endpoint embeddings, `rag ask`, `evalctl run --rag`, `rag eval`
with a judge. Random weights make dense similarity meaningless except for identical text,
which is what the dense assertions use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluators.results import read_jsonl
from rag import metrics as M
from rag.prompting import ask_messages, cited_ids
from rag.retrieve import Hit
from rag.store import Store, StoreConfig

from .conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.engine

DOCS = {
    "apples.txt": "Ann has 3 apples and buys 4 more apples. How many apples does Ann have now?",
    "pens.txt": "Bob has 12 pens. He gives 5 pens to Carla. Pens are blue.",
    "law.md": "盗窃公私财物，数额较大的，处三年以下有期徒刑、拘役或者管制。" * 20,  # 2 chunks, each > 512 tokens
}


@pytest.fixture(scope="module")
def rag_env(gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("rag-endpoint")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    db = root / "db"
    common = ["--chroma-path", str(db), "--base-url", gateway.url, "--api-key", gateway.api_key]
    result = run_cli("rag", "ingest", corpus, "--collection", "endpoint-docs", "--embedder", "endpoint:tiny-embed",
                     "--no-progress", *common)
    assert result.exit_code == 0, result.output
    return {"root": root, "corpus": corpus, "db": db, "common": common, "ingest": result.output}


def test_ingest_embeds_through_the_endpoint(rag_env):
    assert "3 new" in rag_env["ingest"] and "endpoint:tiny-embed" in rag_env["ingest"]
    store = Store(StoreConfig(path=rag_env["db"]))
    recs = store.records(store.get("endpoint-docs"), include=("embeddings", "metadatas"))
    vecs = np.asarray(recs["embeddings"])
    assert vecs.shape[1] == 128 and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert len({m["doc_id"] for m in recs["metadatas"]}) == 3 and len(recs["ids"]) > 3  # law.md has chunks
    again = run_cli("rag", "ingest", rag_env["corpus"], "--collection", "endpoint-docs", "--no-progress",
                    *rag_env["common"])
    assert "3 unchanged" in again.output and "0 chunks added" in again.output, again.output


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_identical_text_is_the_nearest_chunk(rag_env, mode):
    result = run_cli("rag", "search", DOCS["pens.txt"], "--collection", "endpoint-docs", "--mode", mode, "--k", "3",
                     "--json", *rag_env["common"])
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert hits[0]["id"] == "pens.txt#0" and len(hits) == 3
    if mode == "dense":
        assert hits[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_ask_answers_through_the_endpoint_with_chunk_ids(rag_env, gateway):
    q = "How many pens does Bob give to Carla?"
    # --max-chars: the tiny model's window is 512 tokens, and a 500-character Chinese chunk is ~1500
    result = run_cli("rag", "ask", q, "--collection", "endpoint-docs", "--model", "tiny", "--k", "2",
                     "--max-tokens", "16", "--max-chars", "60", "--json", *rag_env["common"])
    assert result.exit_code == 0, result.output
    ans = json.loads(result.output)
    assert ans["question"] == q and ans["finish_reason"] in ("length", "stop")
    assert ans["mode"] == "hybrid" and len(ans["retrieved"]) == 2
    assert ans["retrieved"][0]["id"] == "pens.txt#0"  # BM25 and dense agree on the word overlap
    # The answer is the model's greedy reply to exactly the retrieved context, and `cited` what it cites.
    hits = [Hit(r["id"], r["doc_id"], r["text"], r["score"]) for r in ans["retrieved"]]
    reply = gateway.openai().chat.completions.create(model="tiny", messages=ask_messages(q, hits, 60),
                                                     temperature=0, max_tokens=16)
    assert ans["answer"] == reply.choices[0].message.content and ans["answer"].strip()
    assert ans["cited"] == cited_ids(ans["answer"], hits)
    text = run_cli("rag", "ask", q, "--collection", "endpoint-docs", "--model", "tiny", "--max-tokens", "8",
                   "--max-chars", "40", *rag_env["common"])
    assert "cited:" in text.output and "[pens.txt#0]" in text.output


def test_ask_errors_are_one_line(rag_env, gateway):
    assert_one_line_error(run_cli("rag", "ask", "q", "--collection", "endpoint-docs", "--model", "nope",
                                  *rag_env["common"]), "model 'nope' is not served")
    down = ["--chroma-path", str(rag_env["db"]), "--base-url", "http://127.0.0.1:9"]
    assert_one_line_error(run_cli("rag", "search", "q", "--collection", "endpoint-docs", "--mode", "dense", *down),
                          "cannot reach http://127.0.0.1:9")


def test_run_with_rag_puts_context_in_prompts_and_records_ids(rag_env, gateway):
    out = rag_env["root"] / "run"
    args = ["run", "gsm8k", "--model", "tiny", "--base-url", gateway.url, "--api-key", gateway.api_key,
            "--limit", "3", "--max-tokens", "8", "--out", str(out), "--no-progress", "--rag", "endpoint-docs",
            "--rag-k", "2", "--rag-mode", "hybrid", "--rag-max-chars", "40", "--chroma-path", str(rag_env["db"])]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    records = read_jsonl(out / "results.jsonl")
    assert len(records) == 3
    for rec in records:
        assert rec["rag"]["collection"] == "endpoint-docs" and rec["rag"]["mode"] == "hybrid"
        assert len(rec["rag"]["ids"]) == 2 and len(rec["rag"]["scores"]) == 2
        assert rec["prompt"].startswith("Context (retrieved passages):\n[" + rec["rag"]["ids"][0] + "]")
        assert rec["completions"] and not rec["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rag"] == {"collection": "endpoint-docs", "k": 2, "mode": "hybrid", "max_chars": 40}
    changed = run_cli(*[a if a != "hybrid" else "bm25" for a in args])  # another --rag-mode, same run dir
    assert_one_line_error(changed, "cannot resume", "rag=")


def write_questions(path: Path) -> Path:
    rows = [{"id": "q1", "question": DOCS["apples.txt"], "relevant": ["apples.txt"]},
            {"id": "q2", "question": "Bob gives pens to Carla", "relevant": ["pens.txt"]},
            {"id": "q3", "question": "盗窃公私财物", "relevant": ["law.md", "apples.txt"]}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_rag_eval_retrieval_and_judged_answers(rag_env):
    questions = write_questions(rag_env["root"] / "questions.jsonl")
    out = rag_env["root"] / "eval"
    args = ["rag", "eval", "--collection", "endpoint-docs", "--questions", questions, "--k", "1,3", "--model", "tiny",
            "--judge", "tiny", "--judge-max-tokens", "32", "--max-tokens", "16", "--answer-k", "2",
            "--max-chars", "20", "--out", out, "--no-progress", *rag_env["common"]]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    assert summary["num_questions"] == 3 and summary["methods"] == ["bm25", "dense", "hybrid"]
    assert m["bm25/recall@1"]["mean"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["bm25/mrr"]["mean"] == pytest.approx(1.0)
    # BM25 returns only documents sharing a term: q3's second gold document never comes back
    assert m["bm25/recall@3"]["mean"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["hybrid/recall@3"]["mean"] == 1.0  # dense ranks every chunk: all 3 documents are in the top 3
    recs = {r["id"]: r for r in read_jsonl(out / "results.jsonl")}
    assert recs["q1"]["retrieval"]["dense"]["ids"][0] == "apples.txt#0"  # identical text: cosine 1
    for rec in recs.values():
        assert rec["answer"]["error"] is None and isinstance(rec["answer"]["text"], str)
        assert set(rec["judge"]) == {"faithfulness", "context_relevance"}
        # A random-weights judge: each verdict is what its parser makes of the raw reply (kept when
        # unreadable), and the score is the verdict's number or None.
        for name, verdict in rec["judge"].items():
            if verdict.get("parse_error"):
                assert set(verdict) == {"parse_error", "raw"} and rec["scores"][name] is None
                reparsed = (M.parse_faithfulness(verdict["raw"]) if name == "faithfulness"
                            else M.parse_relevance(verdict["raw"], len(rec["answer"]["ids"])))
                assert reparsed == verdict
            else:
                assert rec["scores"][name] == verdict[name] and (verdict[name] is None or 0 <= verdict[name] <= 1)
    parse_failures = sum(1 for r in recs.values() for v in r["judge"].values() if v.get("parse_error"))
    assert summary["judge_parse_failures"] == parse_failures
    assert m["faithfulness"]["n"] + sum(1 for r in recs.values() if r["scores"]["faithfulness"] is None) == 3
    assert "faithfulness" in result.output and "bm25" in result.output
    rerun = run_cli(*args)  # resume: nothing new to do, nothing lost
    assert rerun.exit_code == 0 and len(read_jsonl(out / "results.jsonl")) == 3
