"""Read-only evaluation results for the web page: the run dirs under the `results_dir` setting,
one run's summary and samples, and `evalctl compare` over chosen runs. User key required.

Everything is read through the evaluators' own modules (results.jsonl parsing, dedupe,
compare), so the page shows exactly what `evalctl compare` prints."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from evaluators.compare import CompareError, compare_runs
from evaluators.results import CONFIG, RESULTS, SUMMARY, ResultsError, dedupe, read_jsonl

from ..auth import require_user
from ..errors import BadRequest, RunNotFound, RunUnreadable
from ..protocol import RunInfo, RunList, SampleList

router = APIRouter(prefix="/v1/evalctl", dependencies=[Depends(require_user)])

MAX_DEPTH = 3  # runs/<group>/<run>: deep enough for `demo` layouts, shallow enough to scan on every request


def _root(request: Request) -> Path:
    return Path(request.app.state.settings.results_dir).resolve()


def _is_run(path: Path) -> bool:
    # config.json alone is no run: model and checkpoint dirs have one too; a run writes results.jsonl at once
    return (path / SUMMARY).is_file() or ((path / CONFIG).is_file() and (path / RESULTS).is_file())


def find_runs(root: Path) -> list[Path]:
    """Every run dir (summary.json, or config.json + results.jsonl) below `root`, in path order.
    A run dir is not searched further; hidden dirs (caches, .git) are skipped."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        if depth and _is_run(here):
            found.append(here)
            dirnames.clear()
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < MAX_DEPTH else []
    return sorted(found)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunUnreadable(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise RunUnreadable(f"{path}: expected a JSON object")
    return data


def _records(run: Path) -> list[dict]:
    if not (run / RESULTS).exists():
        return []
    try:
        return dedupe(read_jsonl(run / RESULTS))
    except ResultsError as e:
        raise RunUnreadable(str(e)) from None


def run_info(root: Path, run: Path) -> RunInfo:
    rid = run.relative_to(root).as_posix()
    try:
        if (run / SUMMARY).is_file():
            s = _read_json(run / SUMMARY)
            metrics = {k: v for k, v in (s.get("metrics") or {}).items() if isinstance(v, dict)}
            return RunInfo(id=rid, task=s.get("task"), model=s.get("model"), primary=s.get("primary"),
                           num_examples=s.get("num_examples") or 0, num_failed=s.get("num_failed"),
                           complete=True, metrics=metrics, updated_at=s.get("updated_at"))
        cfg = _read_json(run / CONFIG)  # a run still writing: count what is there so far
        return RunInfo(id=rid, task=cfg.get("task"), model=cfg.get("model"), num_examples=len(_records(run)),
                       complete=False, updated_at=cfg.get("created_at"))
    except ValidationError as e:  # a field of the wrong type, e.g. in a hand-edited summary
        raise RunUnreadable(f"{run}: {e.errors()[0]['loc'][0]} has an unexpected value") from None


def run_dir(root: Path, run_id: str) -> Path:
    """The run dir for an id from the list; anything outside the results dir is simply not found."""
    parts = Path(run_id).parts
    path = (root / run_id).resolve()
    hidden_or_up = any(p.startswith(".") for p in parts)  # also refuses `..`
    if not run_id or Path(run_id).is_absolute() or hidden_or_up or not path.is_relative_to(root) \
            or path == root or not _is_run(path):
        raise RunNotFound(f"no run {run_id!r} in {root}; GET /v1/evalctl/runs lists them", param="run_id")
    return path


def _listing(root: Path) -> RunList:
    data = []
    for run in find_runs(root) if root.is_dir() else []:
        try:
            data.append(run_info(root, run))
        except RunUnreadable:
            continue  # one broken dir must not hide the others; its own URL reports why
    return RunList(data=data, results_dir=str(root))


@router.get("/runs", response_model=RunList)
async def list_runs(request: Request) -> RunList:
    return await run_in_threadpool(_listing, _root(request))


def _summary(root: Path, run_id: str) -> dict:
    run = run_dir(root, run_id)
    body = _read_json(run / SUMMARY) if (run / SUMMARY).is_file() else {"config": _read_json(run / CONFIG)}
    return {"id": run_id, "object": "evalctl.run.summary", "complete": (run / SUMMARY).is_file(), **body}


def _matches(rec: dict, q: str) -> bool:
    text = json.dumps([rec.get("id"), rec.get("prompt"), rec.get("completions"), rec.get("gold")],
                      ensure_ascii=False, default=str)
    return q.lower() in text.lower()


def _samples(root: Path, run_id: str, offset: int, limit: int, q: str | None, errors: bool) -> SampleList:
    records = _records(run_dir(root, run_id))
    if errors:
        records = [r for r in records if r.get("error")]
    if q:
        records = [r for r in records if _matches(r, q)]
    return SampleList(data=records[offset:offset + limit], total=len(records), offset=offset, limit=limit)


@router.get("/runs/{run_id:path}/samples", response_model=SampleList)
async def list_samples(request: Request, run_id: str, offset: int = Query(0, ge=0),
                       limit: int = Query(50, ge=1, le=1000), q: str | None = Query(None, max_length=200),
                       errors: bool = Query(False, description="Only samples that recorded an error.")):
    return await run_in_threadpool(_samples, _root(request), run_id, offset, limit, q, errors)


@router.get("/runs/{run_id:path}")
async def get_run(request: Request, run_id: str) -> dict:
    return await run_in_threadpool(_summary, _root(request), run_id)


def _compare(root: Path, ids: list[str], metrics: list[str] | None, resamples: int) -> dict:
    dirs = [run_dir(root, i) for i in ids]
    for i, d in zip(ids, dirs):  # checked here so that compare's own errors below are about metrics
        if not (d / SUMMARY).is_file():
            raise BadRequest(f"run {i!r} is not finished (no {SUMMARY}); compare finished runs", param="runs")
        _read_json(d / SUMMARY)
        _records(d)
    try:
        result = compare_runs(dirs, metrics, resamples=resamples)
    except CompareError as e:
        raise BadRequest(str(e), param="metrics") from None
    for row, rid in zip(result["runs"], ids):
        row["id"] = rid
    return {"object": "evalctl.compare", **result}


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@router.get("/compare")
async def compare(request: Request, runs: str = Query(..., description="Run ids, comma-separated; the first is "
                                                                         "the baseline."),
                  metrics: str | None = Query(None, description="Metric names, comma-separated (default: all)."),
                  resamples: int = Query(10_000, ge=100, le=100_000)) -> dict:
    ids = _csv(runs)
    if not ids:
        raise BadRequest("runs: give at least one run id", param="runs")
    return await run_in_threadpool(_compare, _root(request), ids, _csv(metrics) or None, resamples)
