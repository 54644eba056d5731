"""Retrieval recall on real legal ground truth: BM25 vs dense vs hybrid (RRF).

Corpus: the PRC Criminal Law paragraphs (legal/criminal_law_articles.json, 891 texts keyed
"article-paragraph-item"), ingested into a real Chroma store one paragraph per document.
Queries: CAIL2018 case facts; gold: each case's `relevant_articles` (article numbers), so a
retrieved paragraph counts as its article ("264-0-2" -> 264) and several paragraphs of one
article count once. Reports recall@1/3/10 and MRR per method and question set, and writes JSON.

Methods: `bm25` (CJK bigrams), `lsa` (offline dense baseline: TF-IDF char 1-2-grams + SVD-256
fitted on the corpus; no model download), `dense[EMBEDDER]` for each embedder given, and
`hybrid[...]` (reciprocal-rank fusion of bm25 with that dense ranking). Without a model hub,
the dense embedders here have random weights (the test "tiny" model): near chance by design.

    python benchmarks/rag_recall.py                                   # bm25 + lsa (+ hybrid bm25+lsa)
    python benchmarks/rag_recall.py --serve-tiny /tmp/tiny-model      # + endpoint dense (starts evalctl serve)
    python benchmarks/rag_recall.py --embedder st:/path/to/model      # + a local sentence-transformers model
    python benchmarks/rag_recall.py --base-url URL --embedder endpoint:NAME   # an embedder served elsewhere
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluators.data import data_root
from rag.embed import EndpointConfig, make_embedder
from rag.evaluate import load_questions
from rag.ingest import ingest
from rag.loaders import load_path
from rag.metrics import ranked_units, retrieval_scores
from rag.retrieve import Retriever, rrf
from rag.store import Store, StoreConfig

KS = (1, 3, 10)
DEPTH = 100  # paragraphs per query: enough to fill 10 distinct articles
SETS = {"cail2018_ljp (LawBench 3-4)": "legal/cail2018_ljp.jsonl",
        "cail2018_sample data_test": "legal/cail2018_sample/data_test.json"}


def score(rankings: list[list[str]], questions: list[dict]) -> dict:
    rows = [retrieval_scores(ranked_units(r, "-"), set(q["relevant"]), KS) for r, q in zip(rankings, questions)]
    return {name: sum(row[name] for row in rows) / len(rows) for name in rows[0]}


def rankings(retriever: Retriever, mode: str, queries: list[str]) -> tuple[list[list[str]], float]:
    t0 = time.perf_counter()
    hits = retriever.search_many(queries, DEPTH, mode)
    return [[h.doc_id for h in hs] for hs in hits], time.perf_counter() - t0


def start_tiny(model_dir: Path, log_dir: Path):
    """`evalctl serve` with the tiny model as a pooling embedder (as the test session serves it)."""
    import yaml

    from evalctl.process import ServerProcess

    cfg = {"engines": [{"model": str(model_dir), "name": "tiny-embed", "runner": "pooling", "convert": "embed",
                        "enable_lora": False, "dtype": "float32", "max_model_len": 512,
                        "env": {"VLLM_CPU_KVCACHE_SPACE": "1"}}]}
    (log_dir / "serve.yaml").write_text(yaml.safe_dump(cfg))
    return ServerProcess(["--config", str(log_dir / "serve.yaml"), "--log-dir", str(log_dir)],
                         log_dir / "gateway.log").start(timeout=900)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, help="Data root [default: ../shared/data or EVALCTL_DATA_DIR].")
    ap.add_argument("--embedder", action="append", default=[], help="Dense embedder spec (repeatable).")
    ap.add_argument("--serve-tiny", type=Path, help="Start evalctl serve with this model as `tiny-embed`.")
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--api-key")
    ap.add_argument("--limit", type=int, help="First N cases of each set.")
    ap.add_argument("--out", type=Path, default=Path("runs/rag_recall.json"))
    args = ap.parse_args()

    root = args.data_dir or data_root()
    work = Path(tempfile.mkdtemp(prefix="rag-recall-"))
    server = None
    if args.serve_tiny:
        print("starting evalctl serve (tiny-embed) ...", flush=True)
        server = start_tiny(args.serve_tiny, work)
        args.base_url, args.embedder = server.url, args.embedder + ["endpoint:tiny-embed"]
    try:
        results = run(root, work, args)
    finally:
        if server:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"\nwrote {args.out}")


def run(root: Path, work: Path, args) -> dict:
    store = Store(StoreConfig(path=work / "chroma"))
    docs = load_path(root / "legal" / "criminal_law_articles.json")
    endpoint = EndpointConfig(args.base_url, args.api_key)
    collections: dict[str, str] = {}
    timings = {}
    for i, spec in enumerate(["none", *args.embedder]):
        name = f"law-{i}"
        t0 = time.perf_counter()
        ingest(store, name, docs, make_embedder(spec, endpoint), progress=True)
        timings[f"ingest[{spec}]_s"] = round(time.perf_counter() - t0, 2)
        collections[spec] = name
    lexical = Retriever(store, collections["none"])
    t0 = time.perf_counter()
    _ = lexical.bm25  # BM25 is rebuilt from the chunks stored in Chroma: its build time, for the record
    timings["bm25_build_s"] = round(time.perf_counter() - t0, 3)
    out = {"corpus": str(root / "legal" / "criminal_law_articles.json"), "documents": len(docs),
           "articles": len({d.id.split("-")[0] for d in docs}), "ks": list(KS), "depth": DEPTH, "sets": {},
           "timings": timings}
    for label, rel in SETS.items():
        questions, _ = load_questions(root / rel)
        questions = questions[:args.limit] if args.limit else questions
        queries = [q["question"] for q in questions]
        table, ranks = {}, {}
        for method in ("bm25", "lsa"):
            ranks[method], secs = rankings(lexical, method, queries)
            table[method] = {**score(ranks[method], questions), "queries_per_s": round(len(queries) / secs, 1)}
        for spec in args.embedder:
            dense = Retriever(store, collections[spec], endpoint=endpoint)
            ranks[spec], secs = rankings(dense, "dense", queries)
            table[f"dense[{spec}]"] = {**score(ranks[spec], questions), "queries_per_s": round(len(queries) / secs, 1)}
        for spec in ["lsa", *args.embedder]:
            fused = [[d for d, _ in rrf([a, b])] for a, b in zip(ranks["bm25"], ranks[spec])]
            table[f"hybrid[bm25+{spec}]"] = score(fused, questions)
        chance = {f"recall@{k}": k / out["articles"] for k in KS}
        out["sets"][label] = {"questions": len(questions), "path": str(root / rel), "methods": table,
                              "chance_approx": chance}
        print_table(label, len(questions), table, chance)
    return out


def print_table(label: str, n: int, table: dict, chance: dict) -> None:
    print(f"\n{label}: {n} cases")
    print("| method | recall@1 | recall@3 | recall@10 | MRR | queries/s |\n| --- | --- | --- | --- | --- | --- |")
    for method, m in table.items():
        qps = m.get("queries_per_s", "")
        print(f"| {method} | {m['recall@1']:.3f} | {m['recall@3']:.3f} | {m['recall@10']:.3f} | {m['mrr']:.3f} | "
              f"{qps} |")
    print(f"| chance (uniform over articles) | {chance['recall@1']:.3f} | {chance['recall@3']:.3f} | "
          f"{chance['recall@10']:.3f} | | |")


if __name__ == "__main__":
    main()
