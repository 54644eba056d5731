"""`evalctl run | score | ls | compare`: thin click layers over the runner, rescoring and compare.

Every expected failure (unknown task or model, endpoint down, bad file, resume
mismatch) is one `Error: ...` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .results import ResultsError
from .task import Task


class EvalError(click.ClickException):
    """One line, exit code 1."""


class UnknownTaskError(click.ClickException):
    exit_code = 2  # a usage error, like click's own for a bad option


def quiet_http_logs() -> None:
    """One INFO line per request would bury the progress bar; `evalctl -v` keeps them."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpx2", "httpcore", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)


def get_task(name: str) -> Task:
    from .registry import TASKS, UnknownName

    try:
        return TASKS.get(name)
    except UnknownName as e:
        raise UnknownTaskError(str(e).splitlines()[0] if str(e) else f"unknown task {name!r}") from None


def load_samples(task: Task, data: Path | None, limit: int | None) -> list[dict]:
    from .runner import RunError, with_ids

    try:
        samples = task.load(data)
    except (OSError, ValueError, KeyError, TypeError) as e:
        where = data or "its default data"
        raise EvalError(f"cannot load {task.name} from {where}: {type(e).__name__}: {str(e).splitlines()[0]}") \
            from None
    try:
        samples = with_ids(list(samples))
    except RunError as e:
        raise EvalError(str(e)) from None
    return samples[:limit] if limit is not None else samples


def _print_summary(summary: dict, out: Path) -> None:
    table = Table(title=f"{summary['task']} / {summary.get('model') or 'saved completions'}", title_justify="left")
    for col in ("metric", "mean", "± stderr", "n"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, m in summary["metrics"].items():
        mean = "-" if m["mean"] is None else f"{m['mean']:.4f}"
        table.add_row(name, mean, "-" if m["stderr"] is None else f"{m['stderr']:.4f}", str(m["n"]))
    console = Console(stderr=False)
    console.print(table)
    extra = f", judge parse failures {summary['judge_parse_failures']}" if "judge_parse_failures" in summary else ""
    console.print(f"{summary['num_examples']} examples, {summary['num_scored']} scored, "
                  f"{summary['num_failed']} failed{extra}; results in {out}", highlight=False)


@click.command()
@click.argument("task_name", metavar="TASK")
@click.option("--model", required=True, help="Model name as the endpoint serves it (see /v1/models).")
@click.option("--base-url", envvar="EVALCTL_BASE_URL", default="http://127.0.0.1:8000", show_default=True,
              help="OpenAI-compatible endpoint (env EVALCTL_BASE_URL).")
@click.option("--api-key", envvar="EVALCTL_API_KEY", default=None, help="Bearer key (env EVALCTL_API_KEY).")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N samples.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Prompts in flight [default: what fills the "
              "engine: the max_num_seqs evalctl's gateway reports, else 128].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Plain-text prompts per /v1/completions request "
              "(1: one request each) [default: concurrency / 4, at most 32].")
@click.option("--n", "n", type=click.IntRange(min=1), default=1, show_default=True, help="Completions per prompt.")
@click.option("--temperature", type=float, help="Overrides the task's default.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Overrides the task's default.")
@click.option("--seed", type=int, help="Sampling seed sent with each request.")
@click.option("--judge", help="Also grade each completion with this model (served by the same endpoint).")
@click.option("--judge-max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--judge-constrained", is_flag=True, help="Decode the judge's verdict under its JSON shape (vLLM "
              "structured outputs): a small judge then never loses a verdict to an unreadable reply.")
@click.option("--out", type=click.Path(path_type=Path), help="Run dir (default runs/TASK-MODEL-TIME); "
              "an existing one is resumed.")
@click.option("--data", type=click.Path(path_type=Path), help="Data file instead of the task's default.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Per-request timeout (s).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--rag", "rag_collection", help="Put passages retrieved from this collection (evalctl rag ingest) "
              "in front of each prompt.")
@click.option("--rag-k", type=click.IntRange(min=1), default=3, show_default=True, help="Passages per prompt.")
@click.option("--rag-mode", type=click.Choice(["bm25", "dense", "hybrid"]),
              help="Retrieval [default: hybrid with dense vectors, else bm25].")
@click.option("--rag-max-chars", type=click.IntRange(min=1), help="Cut each passage to this many characters.")
@click.option("--rerank", help="Rerank --rag's passages with endpoint:MODEL, a cross-encoder or pooling model the "
              "endpoint serves (its /v1/rerank): 4x --rag-k are retrieved, the best --rag-k kept.")
@click.option("--chroma-path", envvar="EVALCTL_CHROMA_PATH", type=click.Path(path_type=Path),
              default=Path(".cache/rag/chroma"), show_default=True, help="Chroma store for --rag.")
@click.option("--chroma-url", envvar="EVALCTL_CHROMA_URL", help="Chroma server for --rag (wins over --chroma-path).")
def run(task_name, model, base_url, api_key, limit, concurrency, batch_size, n, temperature, max_tokens, seed, judge,
        judge_max_tokens, judge_constrained, out, data, timeout, no_progress, rag_collection, rag_k, rag_mode,
        rag_max_chars, rerank, chroma_path, chroma_url) -> None:
    """Evaluate MODEL on TASK through an OpenAI-compatible endpoint."""
    from . import runner

    quiet_http_logs()
    if rerank and not rag_collection:
        raise EvalError("--rerank reorders the passages --rag retrieves: give --rag COLLECTION too")
    task = get_task(task_name)
    samples = load_samples(task, data, limit)
    params = runner.sampling_params(task, temperature=temperature, max_tokens=max_tokens, seed=seed)
    data_path, data_sha = runner.data_provenance(runner.data_files(task, data))
    spec = runner.RunSpec(task=task.name, model=model, endpoint=base_url, sampling=params, n=n, judge=judge,
                          judge_max_tokens=judge_max_tokens, judge_constrained=judge_constrained, limit=limit,
                          data_path=data_path, data_sha256=data_sha,
                          extra={"samples_sha256": runner.samples_sha256(samples)})
    out = out or runner.default_out_dir(task.name, model)
    contexts = None
    try:
        runner.preflight(spec, api_key)
        if rag_collection:
            rag = RagOptions(rag_collection, rag_k, rag_mode, rag_max_chars, rerank, chroma_path, chroma_url)
            contexts = _rag_contexts(spec, samples, rag, api_key, not no_progress)
        summary = asyncio.run(runner.run_async(task, spec, samples, out, api_key=api_key, concurrency=concurrency,
                                               batch_size=batch_size,
                                               timeout=timeout, progress=not no_progress, contexts=contexts))
    except (runner.RunError, ResultsError) as e:
        raise EvalError(str(e)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; rerun with --out {out} to resume", err=True)
        sys.exit(130)
    _print_summary(summary, out)


@dataclass
class RagOptions:
    collection: str
    k: int
    mode: str | None
    max_chars: int | None
    rerank: str | None
    chroma_path: Path
    chroma_url: str | None


def _rag_contexts(spec, samples, opts: RagOptions, api_key, progress):
    """Retrieve for every sample up front (rag.augment); sets spec.rag so a resume must match it."""
    from rag.augment import RagSpec, retrieve_contexts
    from rag.embed import EndpointConfig
    from rag.errors import RagError
    from rag.rerank import make_reranker
    from rag.retrieve import Retriever
    from rag.store import Store, StoreConfig

    rs = RagSpec(opts.collection, opts.k, opts.mode, opts.max_chars, opts.rerank)
    try:
        endpoint = EndpointConfig(spec.endpoint, api_key)
        reranker = make_reranker(opts.rerank, endpoint)
        retriever = Retriever(Store(StoreConfig(path=opts.chroma_path, url=opts.chroma_url)), opts.collection,
                              endpoint=endpoint)
        rs.mode = opts.mode or retriever.default_mode()
        spec.rag = rs.as_dict()
        return retrieve_contexts(retriever, rs, samples, progress, reranker)
    except RagError as e:
        raise EvalError(str(e)) from None


@click.command()
@click.argument("task_name", metavar="TASK")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="JSONL with `completion`/`completions` and the task's gold columns, or a results.jsonl.")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write results.jsonl and summary.json.")
def score(task_name, input_path, out) -> None:
    """Re-score saved completions with TASK's scorers (no endpoint needed)."""
    from . import runner

    task = get_task(task_name)
    out = out or runner.default_out_dir(task.name, "rescore")
    try:
        summary = runner.rescore(task, input_path, out)
    except (runner.RunError, ResultsError) as e:
        raise EvalError(str(e)) from None
    _print_summary(summary, out)


@click.command(name="ls")
def ls() -> None:
    """List the tasks `run` and `score` accept."""
    from .registry import TASKS

    names = list(TASKS.names())
    width = max((len(n) for n in names), default=0)
    for name in names:
        desc = (TASKS.get(name).description or "").strip().splitlines()
        click.echo(f"{name:<{width}}  {desc[0] if desc else ''}")


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("compare.png"), show_default=True,
              help="Bar chart; compare.json is written beside it.")
@click.option("--metrics", multiple=True, help="Metrics to compare (repeatable or comma-separated; default all).")
@click.option("--resamples", type=click.IntRange(1000, 100_000), default=10_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def compare(run_dirs, out, metrics, resamples, seed) -> None:
    """Compare runs: means ± stderr and a paired-bootstrap p-value against the first run."""
    from . import compare as cmp

    names = [m.strip() for spec in metrics for m in spec.split(",") if m.strip()]
    try:
        result = cmp.compare_runs(list(run_dirs), names or None, resamples=resamples, seed=seed)
    except cmp.CompareError as e:
        raise EvalError(str(e)) from None
    Console().print(cmp.render_table(result))
    png = cmp.write_outputs(result, out)
    click.echo(f"wrote {png} and {png.with_suffix('.json')}")


COMMANDS = (run, score, ls, compare)
