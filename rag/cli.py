"""`evalctl rag ingest | ask | search | ls | drop | eval`. Heavy imports (chromadb,
sentence-transformers, scipy) happen inside the commands; every expected failure is
one `Error: ...` line with exit code 1."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

EMBEDDER_HELP = ("endpoint:MODEL (the endpoint's /v1/embeddings), st:MODEL_OR_PATH (local sentence-transformers) "
                 "or none (BM25 only).")


class RagCLIError(click.ClickException):
    """One line, exit code 1."""


def friendly(fn):
    """RagError (and a Ctrl-C) become one line instead of a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import RagError

        try:
            return fn(*args, **kwargs)
        except RagError as e:
            raise RagCLIError(str(e)) from None
    return wrapper


def store_options(fn):
    fn = click.option("--chroma-url", envvar="EVALCTL_CHROMA_URL",
                      help="A running Chroma server (`chroma run`), e.g. http://127.0.0.1:8001 "
                           "(env EVALCTL_CHROMA_URL). Wins over --chroma-path.")(fn)
    fn = click.option("--chroma-path", envvar="EVALCTL_CHROMA_PATH", type=click.Path(path_type=Path),
                      default=Path(".cache/rag/chroma"), show_default=True,
                      help="Embedded persistent Chroma store (env EVALCTL_CHROMA_PATH).")(fn)
    return fn


def endpoint_options(fn):
    fn = click.option("--api-key", envvar="EVALCTL_API_KEY", default=None, help="Bearer key (env EVALCTL_API_KEY).")(fn)
    fn = click.option("--base-url", envvar="EVALCTL_BASE_URL", default="http://127.0.0.1:8000", show_default=True,
                      help="OpenAI-compatible endpoint for generation and endpoint embeddings "
                           "(env EVALCTL_BASE_URL).")(fn)
    return fn


RERANK_HELP = ("Rerank the retrieved chunks with endpoint:MODEL, a cross-encoder or pooling model the endpoint "
               "serves (its /v1/rerank): 4x the chunks are retrieved, the best are kept.")


def rerank_option(fn):
    return click.option("--rerank", help=RERANK_HELP)(fn)


def _reranker(spec, base_url, api_key):
    from .rerank import make_reranker

    return make_reranker(spec, _endpoint(base_url, api_key))


def _store(chroma_path, chroma_url):
    from .store import Store, StoreConfig

    return Store(StoreConfig(path=chroma_path, url=chroma_url))


def _endpoint(base_url, api_key):
    from .embed import EndpointConfig

    return EndpointConfig(base_url=base_url, api_key=api_key)


def _retriever(collection, chroma_path, chroma_url, base_url, api_key, embedder=None):
    from .retrieve import Retriever

    return Retriever(_store(chroma_path, chroma_url), collection, embedder=embedder,
                     endpoint=_endpoint(base_url, api_key))


def _quiet() -> None:
    from evaluators.cli import quiet_http_logs

    quiet_http_logs()


MODE = click.Choice(["bm25", "dense", "hybrid", "lsa"])


@click.group()
def rag() -> None:
    """Retrieval-augmented generation on ChromaDB through the endpoint."""


@rag.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--collection", required=True, help="Collection name (3-512 of [A-Za-z0-9._-]).")
@click.option("--embedder", help=f"{EMBEDDER_HELP} [default: the collection's, else st:BAAI/bge-base-en-v1.5]")
@click.option("--chunk-size", type=click.IntRange(min=1), default=500, show_default=True, help="Characters per chunk.")
@click.option("--chunk-overlap", type=click.IntRange(min=0), default=50, show_default=True,
              help="Characters shared by consecutive chunks.")
@click.option("--id-field", default="id", show_default=True, help="Record id field in JSON/JSONL files.")
@click.option("--text-field", help="Record text field in JSON/JSONL files [default: text, content, body, ...].")
@click.option("--no-progress", is_flag=True)
@store_options
@endpoint_options
@friendly
def ingest(path, collection, embedder, chunk_size, chunk_overlap, id_field, text_field, no_progress, chroma_path,
           chroma_url, base_url, api_key) -> None:
    """Load PATH (file or folder: txt, md, pdf, json, jsonl), chunk, embed and store it. Unchanged
    documents are skipped; changed ones replace their chunks."""
    from .embed import make_embedder
    from .errors import RagError
    from .ingest import ingest as run_ingest
    from .loaders import load_path
    from .store import check_name, embedder_of

    _quiet()
    check_name(collection)
    if chunk_overlap >= chunk_size:
        raise RagError(f"--chunk-overlap ({chunk_overlap}) must be smaller than --chunk-size ({chunk_size})")
    docs = load_path(path, id_field, text_field)
    store = _store(chroma_path, chroma_url)
    if embedder is None and collection in store.names():
        embedder = embedder_of(store.get(collection))
    emb = make_embedder(embedder, _endpoint(base_url, api_key))
    stats = run_ingest(store, collection, docs, emb, size=chunk_size, overlap=chunk_overlap,
                       progress=not no_progress)
    click.echo(f"{collection}: {stats.line()} ({emb.spec}; {store.cfg.describe()})")


@rag.command()
@click.argument("question")
@click.option("--collection", required=True)
@click.option("--model", required=True, help="Model that writes the answer (served by the endpoint).")
@click.option("--k", type=click.IntRange(min=1), default=3, show_default=True, help="Chunks put in the prompt.")
@click.option("--mode", type=MODE, help="Retrieval [default: hybrid with dense vectors, else bm25].")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--max-chars", type=click.IntRange(min=1), help="Cut each passage to this many characters.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer, citations and chunks as JSON.")
@rerank_option
@store_options
@endpoint_options
@friendly
def ask(question, collection, model, k, mode, max_tokens, max_chars, as_json, rerank, chroma_path, chroma_url,
        base_url, api_key) -> None:
    """Answer QUESTION from the collection's best chunks, citing their ids."""
    from .ask import ask as run_ask

    _quiet()
    retriever = _retriever(collection, chroma_path, chroma_url, base_url, api_key)
    ans = run_ask(retriever, question, model, _endpoint(base_url, api_key), k=k, mode=mode, max_tokens=max_tokens,
                  max_chars=max_chars, reranker=_reranker(rerank, base_url, api_key))
    if as_json:
        click.echo(json.dumps(ans.as_dict(), ensure_ascii=False))
        return
    click.echo(ans.text.strip())
    click.echo(f"\ncited: {', '.join(ans.cited) or 'none'}")
    for h in ans.hits:
        click.echo(f"  [{h.id}] {h.score:.4f}  {h.text[:80].replace(chr(10), ' ')}")


@rag.command()
@click.argument("query")
@click.option("--collection", required=True)
@click.option("--k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--mode", type=MODE, help="Retrieval [default: hybrid with dense vectors, else bm25].")
@click.option("--json", "as_json", is_flag=True)
@store_options
@endpoint_options
@friendly
def search(query, collection, k, mode, as_json, chroma_path, chroma_url, base_url, api_key) -> None:
    """Show the best chunks for QUERY (no generation)."""
    _quiet()
    hits = _retriever(collection, chroma_path, chroma_url, base_url, api_key).search(query, k, mode)
    for h in hits:
        if as_json:
            click.echo(json.dumps({"id": h.id, "doc_id": h.doc_id, "score": h.score, "text": h.text},
                                  ensure_ascii=False))
        else:
            click.echo(f"[{h.id}] {h.score:.4f}  {h.text[:100].replace(chr(10), ' ')}")


@rag.command(name="ls")
@store_options
@friendly
def ls_(chroma_path, chroma_url) -> None:
    """List collections: documents, chunks, embedder."""
    from .store import summary

    store = _store(chroma_path, chroma_url)
    names = store.names()
    if not names:
        click.echo(f"no collections in {store.cfg.describe()}")
    for name in names:
        s = summary(store, name)
        click.echo(f"{name}  {s['documents']} documents  {s['chunks']} chunks  {s['embedder']}")


@rag.command()
@click.argument("collection")
@store_options
@friendly
def drop(collection, chroma_path, chroma_url) -> None:
    """Delete a collection and all its chunks."""
    _store(chroma_path, chroma_url).drop(collection)
    click.echo(f"dropped {collection}")


def _csv(value: str, cast=str) -> list:
    try:
        return [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None


@rag.command(name="eval")
@click.option("--collection", required=True)
@click.option("--questions", required=True, type=click.Path(path_type=Path),
              help="JSON/JSONL `{id, question, relevant: [doc ids]}`, or CAIL2018 cases (fact + relevant_articles).")
@click.option("--methods", default="bm25,dense,hybrid", show_default=True,
              help="Retrieval methods to score (bm25, dense, hybrid, lsa); dense/hybrid are skipped "
                   "on a collection without vectors.")
@click.option("--k", "ks", default="1,3,10", show_default=True, help="Cut-offs for recall@k.")
@click.option("--gold-sep", help="Score at the level of the doc-id prefix before SEP [CAIL: '-', i.e. articles].")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N questions.")
@click.option("--model", help="Also answer each question with this model (through the endpoint).")
@click.option("--judge", help="Grade answers with this model: faithfulness and context relevance.")
@click.option("--judge-max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--answer-mode", type=MODE, help="Retrieval for the answers [default: hybrid or bm25].")
@click.option("--answer-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--max-chars", type=click.IntRange(min=1), help="Cut each passage in answer/judge prompts.")
@click.option("--out", type=click.Path(path_type=Path), help="Run dir (results.jsonl, summary.json); resumed.")
@click.option("--no-progress", is_flag=True)
@click.option("--rerank", help=RERANK_HELP + " Each method is scored with and without it; answers use it.")
@store_options
@endpoint_options
@friendly
def eval_(collection, questions, methods, ks, gold_sep, limit, model, judge, judge_max_tokens, answer_mode, answer_k,
          max_tokens, max_chars, out, no_progress, rerank, chroma_path, chroma_url, base_url, api_key) -> None:
    """Retrieval recall@k / MRR per method, and optionally judged answer metrics."""
    from .errors import RagError
    from .evaluate import EvalSpec, load_questions, run_eval

    _quiet()
    if judge and not model:
        raise RagError("--judge grades answers: give --model too")
    names, cuts = _csv(methods), sorted(set(_csv(ks, int)))
    if not names or not cuts or min(cuts) < 1:
        raise RagError("--methods and --k need at least one value (k >= 1)")
    rows, cail = load_questions(questions)
    rows = rows[:limit] if limit else rows
    retriever = _retriever(collection, chroma_path, chroma_url, base_url, api_key)
    if not retriever.dense_available:
        names = [m for m in names if m not in ("dense", "hybrid")] or ["bm25"]
    sep = gold_sep if gold_sep is not None else ("-" if cail else None)
    spec = EvalSpec(collection, str(Path(questions).resolve()), names, cuts, sep or None, model, judge,
                    judge_max_tokens, answer_mode, answer_k, max_tokens, max_chars, rerank,
                    extra={"embedder": retriever.embedder_spec, "limit": limit})
    out = out or Path("runs") / f"rag-eval-{collection}"
    endpoint = _endpoint(base_url, api_key)

    def client():
        from clients.client import EvalClient

        # concurrency None: as many answers in flight as the model's engine runs at once
        return EvalClient(endpoint.base_url, endpoint.api_key, concurrency=None, cache_path=out / "cache.sqlite")

    summary = run_eval(retriever, spec, rows, out, client_factory=client, progress=not no_progress,
                       reranker=_reranker(rerank, base_url, api_key))
    _print_eval(summary, out)


def _print_eval(summary: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rag eval / {summary['collection']} ({summary['num_questions']} questions)",
                  title_justify="left")
    cols = [f"recall@{k}" for k in summary["ks"]] + ["mrr"]
    table.add_column("method")
    for c in cols:
        table.add_column(c, justify="right")
    m = summary["metrics"]
    for method in summary.get("rows") or summary["methods"]:
        table.add_row(method, *[_fmt(m.get(f"{method}/{c}")) for c in cols])
    console = Console(width=max(100, Console().width))  # mean ± stderr cells must not wrap
    console.print(table)
    for name in ("faithfulness", "context_relevance"):
        if name in m:
            console.print(f"{name}: {_fmt(m[name])} (n={m[name]['n']}; judge parse failures "
                          f"{summary['judge_parse_failures']})", highlight=False)
    console.print(f"results in {out}", highlight=False)


def _fmt(entry: dict | None) -> str:
    if not entry or entry.get("mean") is None:
        return "-"
    se = entry.get("stderr")
    return f"{entry['mean']:.4f}" + (f" ± {se:.4f}" if se is not None else "")


COMMANDS = (rag,)
