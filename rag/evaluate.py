"""`evalctl rag eval`: retrieval quality against gold document ids (recall@k, MRR, per
method), and optionally answers through the endpoint graded by a judge (faithfulness,
context relevance). One results.jsonl line per question, appended as each batch
completes, so a killed run resumes; summary.json is recomputed from the file.

Questions: JSON/JSONL records `{id?, question, relevant: [doc ids], answer?}`, or CAIL2018
cases (`fact` + `relevant_articles`, either layout) whose gold is article numbers; for
those the default `gold_sep` is "-", so a retrieved chunk of "264-0-2" counts as article 264.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from evaluators.results import (
    CONFIG,
    RESULTS,
    SUMMARY,
    ResultsWriter,
    check_resumable,
    completed_ids,
    dedupe,
    git_commit,
    read_jsonl,
    repair_tail,
    sha256_path,
    write_json,
)
from evaluators.stats import mean_stderr

from . import metrics as M
from .errors import RagError
from .prompting import ask_messages, cited_ids, context_block
from .rerank import Reranker
from .retrieve import Retriever

BATCH = 64


@dataclass
class EvalSpec:
    collection: str
    questions: str
    methods: list[str]
    ks: list[int]
    gold_sep: str | None = None
    model: str | None = None  # answers generated with this model (retrieved with answer_method)
    judge: str | None = None
    judge_max_tokens: int = 512
    answer_method: str | None = None
    answer_k: int = 3
    max_tokens: int = 256
    max_chars: int | None = None  # passages cut to this many characters in answer and judge prompts
    rerank: str | None = None  # endpoint:MODEL: each method also scored reranked ("bm25+rerank"), answers reranked
    extra: dict[str, Any] = field(default_factory=dict)


RESUME_KEYS = ("collection", "methods", "ks", "gold_sep", "model", "judge", "answer_method", "answer_k", "max_chars",
               "rerank")


def rows(spec: EvalSpec) -> list[str]:
    """The table's rows: each method, followed by itself reranked when --rerank is given."""
    return [r for m in spec.methods for r in ([m, f"{m}+rerank"] if spec.rerank else [m])]


def _cail_gold(rec: dict) -> list | None:
    meta = rec.get("meta")
    arts = meta.get("relevant_articles") if isinstance(meta, dict) else rec.get("relevant_articles")
    return arts if isinstance(arts, list) and "fact" in rec else None


def load_questions(path: Path) -> tuple[list[dict], bool]:
    """([{id, question, relevant, answer?}], is_cail)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RagError(f"cannot read questions {path}: {e.strerror or e}") from None
    try:
        stripped = text.lstrip()
        if stripped.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise RagError(f"{path}: not JSON or JSON Lines ({e.msg}, line {e.lineno})") from None
    out, cail = [], bool(rows) and all(isinstance(r, dict) and _cail_gold(r) is not None for r in rows)
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise RagError(f"{path}: record {i + 1} is not an object")
        if cail:
            out.append({"id": str(r.get("id", i)), "question": r["fact"],
                        "relevant": [str(a) for a in _cail_gold(r)]})
            continue
        q, rel = r.get("question") or r.get("query"), r.get("relevant", r.get("relevant_ids"))
        if not isinstance(q, str) or not isinstance(rel, list):
            raise RagError(f"{path}: record {i + 1} needs `question` (text) and `relevant` (list of document ids)")
        out.append({"id": str(r.get("id", i)), "question": q, "relevant": [str(x) for x in rel],
                    **({"answer": r["answer"]} if "answer" in r else {})})
    if len({q["id"] for q in out}) != len(out):
        raise RagError(f"{path}: duplicate question ids")
    return out, cail


def prepare_out(out: Path, spec: EvalSpec) -> set[str]:
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / CONFIG
    check_resumable(cfg, asdict(spec), RESUME_KEYS, RagError)
    repair_tail(out / RESULTS)
    write_json(cfg, asdict(spec))
    return completed_ids(read_jsonl(out / RESULTS)) if (out / RESULTS).exists() else set()


def retrieval_record(retriever: Retriever, spec: EvalSpec, batch: list[dict],
                     reranker: Reranker | None = None) -> list[dict]:
    depth = max(spec.ks) * 5  # several chunks may fold into one document (or gold unit)
    records = [{"id": q["id"], "question": q["question"], "relevant": q["relevant"], "retrieval": {}, "scores": {}}
               for q in batch]
    queries = [q["question"] for q in batch]
    for method in spec.methods:
        found = {method: retriever.search_many(queries, depth, method)}
        if reranker:  # the same method's chunks, DEPTH times as many, re-ordered and cut to the same depth
            found[f"{method}+rerank"] = reranker.search_many(retriever, queries, depth, method)
        _score_rows(spec, records, found)
    return records


def _score_rows(spec: EvalSpec, records: list[dict], found: dict[str, list]) -> None:
    for method, hits in found.items():
        for rec, hs in zip(records, hits):
            units = M.ranked_units([h.doc_id for h in hs], spec.gold_sep)
            rec["retrieval"][method] = {"ids": [h.id for h in hs[:max(spec.ks)]], "units": units[:max(spec.ks)]}
            for name, v in M.retrieval_scores(units, set(rec["relevant"]), tuple(spec.ks)).items():
                rec["scores"][f"{method}/{name}"] = v
    return records


async def _answer_one(client, spec: EvalSpec, rec: dict, hits) -> None:
    g = await client.generate(spec.model, ask_messages(rec["question"], hits, spec.max_chars), temperature=0,
                              max_tokens=spec.max_tokens)
    rec["answer"] = {"ids": [h.id for h in hits], "text": g.texts[0] if g.texts else None, "error": g.error,
                     "cited": cited_ids(g.texts[0], hits) if g.texts else []}
    if not spec.judge or g.error:
        return
    judge = functools.partial(client.generate, spec.judge, temperature=0, max_tokens=spec.judge_max_tokens)
    faith, rel = await asyncio.gather(
        judge(M.faithfulness_messages(context_block(hits, spec.max_chars), g.texts[0])),
        judge(M.relevance_messages(rec["question"], [h.text[:spec.max_chars] for h in hits])))
    f = {"error": faith.error} if faith.error else M.parse_faithfulness(faith.texts[0] if faith.texts else "")
    r = {"error": rel.error} if rel.error else M.parse_relevance(rel.texts[0] if rel.texts else "", len(hits))
    rec["judge"] = {"faithfulness": f, "context_relevance": r}
    rec["scores"]["faithfulness"] = f.get("faithfulness")
    rec["scores"]["context_relevance"] = r.get("context_relevance")


async def _answers(factory, spec: EvalSpec, records: list[dict], hits: list) -> None:
    async with factory() as client:
        await asyncio.gather(*(_answer_one(client, spec, r, h) for r, h in zip(records, hits)))


def summarize(records: list[dict], spec: EvalSpec) -> dict:
    records = dedupe(records)
    names = [f"{m}/{n}" for m in rows(spec) for n in [f"recall@{k}" for k in spec.ks] + ["mrr"]]
    if spec.judge:
        names += ["faithfulness", "context_relevance"]
    table = {}
    for name in names:
        vals = [(r.get("scores") or {}).get(name) for r in records]
        mean, se = mean_stderr(vals)
        table[name] = {"mean": mean, "stderr": se, "n": sum(v is not None for v in vals)}
    judged = [j for r in records for j in (r.get("judge") or {}).values()]
    return {"collection": spec.collection, "questions": spec.questions, "num_questions": len(records),
            "methods": spec.methods, "rows": rows(spec), "rerank": spec.rerank, "ks": spec.ks,
            "gold_sep": spec.gold_sep, "model": spec.model, "judge": spec.judge, "metrics": table,
            "judge_parse_failures": sum(1 for j in judged if j.get("parse_error")),
            "judge_errors": sum(1 for j in judged if j.get("error")),
            "answer_errors": sum(1 for r in records if (r.get("answer") or {}).get("error")),
            "git_commit": git_commit(), **spec.extra}


def run_eval(retriever: Retriever, spec: EvalSpec, questions: list[dict], out: Path, *, client_factory=None,
             progress: bool = True, reranker: Reranker | None = None) -> dict:
    """Evaluate the questions not already in `out`; `client_factory()` gives an EvalClient when
    answers are wanted (spec.model)."""
    done = prepare_out(out, spec)
    todo = [q for q in questions if q["id"] not in done]
    bar = tqdm(total=len(questions), initial=len(questions) - len(todo), desc=f"rag eval {spec.collection}",
               unit="q", disable=not progress)
    try:
        with ResultsWriter(out / RESULTS) as writer:
            for i in range(0, len(todo), BATCH):
                records = retrieval_record(retriever, spec, todo[i:i + BATCH], reranker)
                if spec.model:  # retrieval first: an endpoint embedder runs its own event loop
                    method, queries = spec.answer_method or retriever.default_mode(), [r["question"] for r in records]
                    hits = (reranker.search_many(retriever, queries, spec.answer_k, method) if reranker
                            else retriever.search_many(queries, spec.answer_k, method))
                    asyncio.run(_answers(client_factory, spec, records, hits))
                for rec in records:
                    writer.write(rec)
                bar.update(len(records))
    finally:
        bar.close()
    summary = summarize(read_jsonl(out / RESULTS), spec)
    summary["questions_sha256"] = sha256_path(Path(spec.questions))
    write_json(out / SUMMARY, summary)
    return summary
