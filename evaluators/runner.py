"""Run a Task against an OpenAI-compatible endpoint and write the run directory.

Every sample is generated through the shared `EvalClient` (bounded concurrency,
retries, SQLite cache under the run dir), scored, optionally judged, and appended
to results.jsonl the moment it completes, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from clients.client import EvalClient, Generation

from . import judge as judging
from .records import Scoring, build_record, read_saved, score_texts
from .results import (CONFIG, RESULTS, SUMMARY, ResultsWriter, check_resumable, completed_ids, git_commit,
                      read_jsonl, repair_tail, sha256_path, summarize, write_json)
from .task import Sample, Task

# Settings that change what a results line means: a resume must not mix two of them in one file.
RESUME_KEYS = ("task", "model", "n", "sampling", "judge", "rag")


class RunError(RuntimeError):
    """A run that cannot start; the message is one line meant for the user."""


@dataclass
class RunSpec:
    task: str
    model: str
    endpoint: str
    sampling: dict[str, Any]
    n: int = 1
    judge: str | None = None
    judge_max_tokens: int = 512
    judge_constrained: bool = False  # decode verdicts under judge.VERDICT_REGEX (vLLM structured outputs)
    data_path: str | list[str] | None = None
    data_sha256: str | None = None
    limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rag: dict[str, Any] | None = None  # `--rag`: collection, k, mode; each record keeps its retrieved ids
    served: dict[str, Any] | None = None  # what the endpoint served under model/judge at the start (served_identity)


def sampling_params(task: Task, **overrides) -> dict[str, Any]:
    """The task's sampling defaults with every flag the user set (None = not set) on top."""
    params = dict(task.sampling)
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params


def default_out_dir(task: str, model: str, root: Path = Path("runs")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{task}-{model}")
    return root / f"{safe}-{stamp}"


def samples_sha256(samples: list[Sample]) -> str:
    """A fingerprint of what was evaluated, for when the data came from a task's default location."""
    canonical = json.dumps(samples, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def data_files(task: Task, data: Path | None) -> list[Path]:
    """The files a run reads: --data, or the task module's DEFAULT_DATA / DEFAULT_PARTS under the data root."""
    if data is not None:
        return [Path(data).resolve()]
    from .data import resolve

    module = sys.modules.get(getattr(task.load, "__module__", ""), None)
    parts = getattr(module, "DEFAULT_DATA", None) or getattr(module, "DEFAULT_PARTS", None) or []
    try:
        return [resolve(None, p).resolve() for p in ([parts] if isinstance(parts, str) else parts)]
    except FileNotFoundError:
        return []


def data_provenance(files: list[Path]) -> tuple[str | list[str] | None, str | None]:
    """(path or paths, sha256): one file's own hash, or a hash over the files' hashes in order."""
    if not files:
        return None, None
    if len(files) == 1:
        return str(files[0]), sha256_path(files[0])
    combined = hashlib.sha256("".join(sha256_path(f) or "-" for f in files).encode()).hexdigest()
    return [str(f) for f in files], combined


def with_ids(samples: list[Sample]) -> list[Sample]:
    """Ids are what resume and compare pair on: give index ids where missing, refuse duplicates."""
    out = [s if s.get("id") is not None else {**s, "id": str(i)} for i, s in enumerate(samples)]
    ids = [str(s["id"]) for s in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise RunError(f"the data has duplicate sample id {dup!r}; ids must be unique to resume and compare")
    return out


# -- run directory ------------------------------------------------------------------
def prepare_out_dir(out: Path, spec: RunSpec) -> list[dict]:
    """Create the run dir, or check a resumed one matches `spec`; returns the records already there."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_path, results_path = out / CONFIG, out / RESULTS
    check_resumable(cfg_path, asdict(spec), RESUME_KEYS, RunError)
    if not cfg_path.exists() and results_path.exists() and results_path.stat().st_size:
        raise RunError(f"{out} has {RESULTS} but no {CONFIG}; it is not an evalctl run dir, use another --out")
    check_same_weights(out, spec)
    repair_tail(results_path)
    records = read_jsonl(results_path) if results_path.exists() else []
    write_json(cfg_path, {**asdict(spec), "created_at": _now()})
    return records


def check_same_weights(out: Path, spec: RunSpec) -> None:
    """Refuse to resume when a name now serves other weights (an adapter pushed again under it):
    the results already there, and the cached responses, came from the old ones."""
    cfg_path = out / CONFIG
    if spec.served is None or not cfg_path.exists():
        return
    old = (json.loads(cfg_path.read_text()).get("served") or {})
    for name, was in old.items():
        now = spec.served.get(name)
        if was and now and was != now:
            raise RunError(f"cannot resume {out}: its results came from {name!r} {describe_served(was)}, and the "
                           f"endpoint now serves {describe_served(now)} under that name; use another --out "
                           "(or remove this one) to evaluate what is served now")


def describe_served(ident: dict) -> str:
    if ident.get("version") is not None:
        return f"version {ident['version']} (loaded from {ident.get('root')} at {ident.get('loaded_at')})"
    return f"from {ident.get('root')}"


async def served_identity(client: EvalClient, names: list[str]) -> dict[str, dict]:
    """What each name is served from now, from the endpoint's model cards: the path and, for an
    evalctl adapter, its version and load time (a server restarted and pushed to again may
    count versions from 1 anew). Names the endpoint does not describe are left out."""
    import openai

    try:
        cards = {m["id"]: m for m in await client.models()}
    except openai.OpenAIError:  # an endpoint without /models: nothing to compare a resume against
        return {}
    out: dict[str, dict] = {}
    for name in names:
        card = cards.get(name)
        if card is None or not card.get("root"):
            continue
        version = card.get("version")
        out[name] = {"root": card["root"], "version": version,
                     "loaded_at": dt.datetime.fromtimestamp(card["created"], dt.timezone.utc).isoformat()
                     if version is not None and card.get("created") else None}
    return out


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# -- endpoint checks ------------------------------------------------------------------
async def check_models(client: EvalClient, wanted: list[str]) -> None:
    """Fail fast, in one line, on an endpoint that is down or does not serve a model."""
    import openai

    try:
        served = [m["id"] for m in await client.models()]
    except openai.APIConnectionError:
        raise RunError(f"cannot reach {client.base_url} (is the server running? set --base-url)") from None
    except openai.AuthenticationError:
        raise RunError(f"{client.base_url} rejected the API key (set --api-key or EVALCTL_API_KEY)") from None
    except openai.OpenAIError as e:
        raise RunError(f"{client.base_url}/models failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    for name in wanted:
        if name not in served:
            close = difflib.get_close_matches(name, served, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; served: {', '.join(served) or 'none'}"
            raise RunError(f"model {name!r} is not served by {client.base_url}{hint}")


# -- one sample -----------------------------------------------------------------------
async def run_sample(client: EvalClient, task: Task, spec: RunSpec, sample: Sample, scoring: Scoring,
                     gate: asyncio.Semaphore, context: dict | None = None) -> dict:
    if context is not None:  # `--rag`: the prompt with retrieved passages in front (rag.augment)
        sample = {**sample, "prompt": context["prompt"]}
    async with gate:  # the client caps requests too; this keeps queueing out of the recorded latency
        gen = await client.generate(spec.model, sample["prompt"], n=spec.n, **spec.sampling)
    return await finish_sample(client, task, spec, sample, gen, scoring, context)


async def finish_sample(client: EvalClient, task: Task, spec: RunSpec, sample: Sample, gen, scoring: Scoring,
                        context: dict | None = None) -> dict:
    """Score (and judge) one sample's generation into its results.jsonl record."""
    per, score_error = await scoring.score(task, sample, gen.texts)
    verdicts = None
    if spec.judge and not gen.error:
        gold = {k: v for k, v in sample.items() if k not in ("id", "prompt", "category")}
        verdicts = list(await asyncio.gather(*(
            judging.judge_completion(client, spec.judge, sample["prompt"], t, gold, spec.judge_max_tokens,
                                     spec.judge_constrained)
            for t in gen.texts)))
    record = build_record(task, sample, gen, per, score_error, verdicts)
    if context is not None:
        record["rag"] = context["record"]
    return record


MAX_BATCH = 32


def auto_batch_size(concurrency: int) -> int:
    """Prompts per request: about four requests fill `concurrency` sequences (so a new batch is
    queued while one finishes), at most MAX_BATCH prompts each. At 256 GSM8K prompts on 2 CPU
    cores, one request per prompt spent ~2 s of client, gateway and vLLM API-server CPU beside the
    engine (benchmarks/eval_limit.py)."""
    return max(1, min(MAX_BATCH, concurrency // 4))


def effective_batch_size(samples: list[Sample], contexts: dict[str, dict] | None, concurrency: int,
                         batch_size: int | None) -> int:
    contexts = contexts or {}
    if not all(isinstance(contexts.get(str(s["id"]), s)["prompt"], str) for s in samples):
        return 1  # chat prompts: one request each
    return batch_size if batch_size is not None else auto_batch_size(concurrency)


async def evaluate(client: EvalClient, task: Task, spec: RunSpec, samples: list[Sample], out: Path,
                   done: set[str], concurrency: int, progress: bool = True,
                   contexts: dict[str, dict] | None = None, batch_size: int | None = None) -> int:
    """Generate, score and append every sample not in `done`; returns how many were written.
    Plain-text prompts go `batch_size` to a /v1/completions request (None: auto_batch_size)."""
    todo = [s for s in samples if str(s["id"]) not in done]
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), desc=f"{spec.task} {spec.model}",
               unit="sample", disable=not progress, dynamic_ncols=True)
    counts = {"written": 0, "failed": 0}
    contexts = contexts or {}
    size = effective_batch_size(todo, contexts, concurrency, batch_size)
    # The gate counts requests: `concurrency` sequences in flight whatever the batch size.
    gate = asyncio.Semaphore(max(1, -(-concurrency // size)))
    scoring = Scoring()
    with ResultsWriter(out / RESULTS) as writer:
        def write(record: dict) -> None:
            writer.write(record)  # the event loop runs one callback at a time: lines never interleave
            counts["written"] += 1
            if record["error"]:
                counts["failed"] += 1
                bar.set_postfix(failed=counts["failed"], refresh=False)
            bar.update()

        async def one(sample: Sample) -> None:
            write(await run_sample(client, task, spec, sample, scoring, gate, contexts.get(str(sample["id"]))))

        async def batch(samples: list[Sample]) -> None:
            ctx = [contexts.get(str(s["id"])) for s in samples]
            shown = [{**s, "prompt": c["prompt"]} if c is not None else s for s, c in zip(samples, ctx)]
            async with gate:
                gens = await client.generate_batch(spec.model, [s["prompt"] for s in shown], n=spec.n,
                                                   **spec.sampling)
            records = await asyncio.gather(*(finish_sample(client, task, spec, s, g, scoring, c)
                                             for s, g, c in zip(shown, gens, ctx)))
            for r in records:
                write(r)

        try:
            if size > 1:
                await asyncio.gather(*(batch(todo[i:i + size]) for i in range(0, len(todo), size)))
            else:
                await asyncio.gather(*(one(s) for s in todo))
        finally:
            bar.close()
            scoring.close()
    return counts["written"]


# -- summary ---------------------------------------------------------------------------
def finalize(out: Path, task: Task, spec: RunSpec, timings: dict | None = None) -> dict:
    """Recompute summary.json from results.jsonl (the file is the source of truth)."""
    records = read_jsonl(out / RESULTS) if (out / RESULTS).exists() else []
    stats = summarize(records, task.summary_names, spec.n)
    if task.corpus is not None:
        stats.update(task.corpus(records))
    lat = [r["latency"] for r in records if r.get("latency") is not None and not r.get("cached")]
    summary = {
        "task": spec.task, "model": spec.model, "endpoint": spec.endpoint, "judge": spec.judge,
        "sampling": spec.sampling, "n": spec.n, "primary": task.summary_names.get(task.primary, task.primary),
        "data_path": spec.data_path, "data_sha256": spec.data_sha256, "git_commit": git_commit(),
        **{k: v for k, v in spec.extra.items() if v is not None},
        **({"rag": spec.rag} if spec.rag else {}),
        **({"served": spec.served} if spec.served else {}),
        **stats,
        "tokens": {"prompt": sum(r.get("prompt_tokens") or 0 for r in records),
                   "completion": sum(r.get("completion_tokens") or 0 for r in records)},
        "latency_mean_s": sum(lat) / len(lat) if lat else None,
        "timings": timings or {},
        "results_path": str((out / RESULTS).resolve()),
        "updated_at": _now(),
    }
    write_json(out / SUMMARY, summary)
    return summary


async def run_async(task: Task, spec: RunSpec, samples: list[Sample], out: Path, *, api_key: str | None,
                    concurrency: int | None, timeout: float = 600.0, progress: bool = True,
                    contexts: dict[str, dict] | None = None, batch_size: int | None = None) -> dict:
    """`concurrency` None: what fills the engine (EvalClient.engine_concurrency)."""
    async with EvalClient(spec.endpoint, api_key, max_retries=1, backoff=0.2, timeout=15) as probe:
        spec = replace(spec, served=await served_identity(probe, [spec.model] + ([spec.judge] if spec.judge else [])))
    done = completed_ids(prepare_out_dir(out, spec))
    t0 = time.perf_counter()
    async with EvalClient(spec.endpoint, api_key, concurrency=concurrency, timeout=timeout,
                          cache_path=out / "cache.sqlite") as client:
        concurrency = await client.resolve_concurrency(spec.model)
        written = await evaluate(client, task, spec, samples, out, done, concurrency, progress, contexts, batch_size)
    wall = time.perf_counter() - t0
    timings = {"wall_s": round(wall, 3), "samples_per_s": round(written / wall, 3) if wall > 0 else None,
               "concurrency": concurrency,
               "batch_size": effective_batch_size(samples, contexts, concurrency, batch_size),
               "new_samples": written, "resumed_samples": len(done & {str(s["id"]) for s in samples})}
    return finalize(out, task, spec, timings)


def preflight(spec: RunSpec, api_key: str | None) -> None:
    """Check the endpoint is up and serves the model (and judge) before touching the run dir."""
    async def go():
        # One quick retry only: an unreachable endpoint should fail in seconds, not after backoff.
        async with EvalClient(spec.endpoint, api_key, max_retries=1, backoff=0.2, timeout=15) as client:
            await check_models(client, [spec.model] + ([spec.judge] if spec.judge else []))
    asyncio.run(go())


# -- rescoring saved completions ------------------------------------------------------
def rescore(task: Task, input_path: Path, out: Path) -> dict:
    """Score saved completions again (no endpoint) into a fresh run dir; judge verdicts are kept as saved."""
    saved = read_saved(input_path)
    if (out / RESULTS).exists():
        raise RunError(f"{out / RESULTS} already exists; give `score` a new --out")
    src = Path(input_path) if Path(input_path).is_file() else Path(input_path) / RESULTS
    prev = json.loads((src.parent / SUMMARY).read_text()) if src.name == RESULTS and \
        (src.parent / SUMMARY).exists() else {}
    spec = RunSpec(task=task.name, model=prev.get("model"), endpoint=prev.get("endpoint"),
                   sampling=prev.get("sampling", {}), n=max(len(s["texts"]) for s in saved) or 1,
                   judge=prev.get("judge"), data_path=str(src.resolve()), data_sha256=sha256_path(src),
                   extra={"rescored_from": str(src.resolve())})
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG, {**asdict(spec), "created_at": _now()})
    t0 = time.perf_counter()
    with ResultsWriter(out / RESULTS) as writer:
        for item in saved:
            rec, sample, texts = item["record"], item["sample"], item["texts"]
            per, score_error = score_texts(task, sample, texts)
            gen = Generation(sample["prompt"], texts, rec.get("finish_reasons") or [None] * len(texts),
                             rec.get("prompt_tokens") or 0, rec.get("completion_tokens") or 0,
                             rec.get("latency") or 0.0, cached=bool(rec.get("cached")),
                             error=rec.get("error") if not texts else None)
            writer.write(build_record(task, sample, gen, per, score_error, rec.get("judge")))
    wall = time.perf_counter() - t0
    return finalize(out, task, spec, {"wall_s": round(wall, 3), "new_samples": len(saved),
                                      "samples_per_s": round(len(saved) / wall, 3) if wall > 0 else None})
