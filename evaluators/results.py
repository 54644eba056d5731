"""A run directory on disk: `results.jsonl` (one line per sample, appended as each
completes), `config.json` (the settings a resume must match) and `summary.json`
(always recomputed from results.jsonl, so it can never disagree with it), and the
provenance a summary records (data hash, git commit). The statistics are in stats.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any, TextIO

from .stats import finite, mean_or_none, mean_stderr, pass_at_k

RESULTS, SUMMARY, CONFIG = "results.jsonl", "summary.json", "config.json"


class ResultsError(ValueError):
    """A results/input file that cannot be used (one line, shown to the user as is)."""


# -- results.jsonl --------------------------------------------------------------
def read_jsonl(path: Path, *, allow_truncated_tail: bool = True) -> list[dict]:
    """Every record of a JSON Lines file. A last line without its newline that does
    not parse is a write cut short by a kill and is ignored; any other bad line is an error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read ({e.__class__.__name__})") from None
    lines = text.split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if allow_truncated_tail and i == len(lines) - 1:  # no newline after it: cut short
                break
            raise ResultsError(f"{path}:{i + 1}: not valid JSON") from None
        if not isinstance(rec, dict):
            raise ResultsError(f"{path}:{i + 1}: expected a JSON object per line")
        records.append(rec)
    return records


def repair_tail(path: Path) -> int:
    """Cut a partial last line off, so that appending starts on a fresh line. Returns bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1  # 0 when there is no complete line at all
    if keep == len(data):
        return 0
    with open(path, "r+b") as f:
        f.truncate(keep)
    return len(data) - keep


def completed_ids(records: list[dict]) -> set[str]:
    """Samples a resumed run skips: those with a result. A sample whose request failed (engine
    down, timeout) is tried again: a rerun after an outage used to keep every failure."""
    return {str(r["id"]) for r in records if "id" in r and not r.get("error")}


class ResultsWriter:
    """Appends one JSON line per sample and flushes it at once: a kill loses at most the line being written."""

    def __init__(self, path: Path):
        self._f: TextIO = open(path, "a", encoding="utf-8")
        try:  # two runs appending to one file would duplicate samples
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._f.close()
            raise ResultsError(f"{path} is being written by another run") from None
        repair_tail(path)

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def dedupe(records: list[dict]) -> list[dict]:
    """One record per id, so a summary never counts a sample twice: its first result, or its first
    failure when no retry succeeded (a resume retries failed samples)."""
    chosen: dict[str, dict] = {}
    for r in records:
        key = str(r.get("id"))
        if key not in chosen or (chosen[key].get("error") and not r.get("error")):
            chosen[key] = r
    return list(chosen.values())


def check_resumable(cfg_path: Path, spec: dict, keys, error: type[Exception] = ResultsError) -> None:
    """Refuse to resume into a run dir written with other settings: one file would mix two meanings."""
    if not cfg_path.exists():
        return
    try:
        old = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise error(f"{cfg_path} is unreadable; use a new --out") from None
    for key in keys:
        if old.get(key) != spec[key]:
            raise error(f"cannot resume {cfg_path.parent}: it was run with {key}={json.dumps(old.get(key))}, "
                        f"not {json.dumps(spec[key])}; use another --out")


def write_json(path: Path, obj: Any) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a summary


# -- provenance -----------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: Path | None) -> str | None:
    """sha256 of a data file, or of a folder's files in name order; None when there is nothing to hash."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()


def git_commit(repo: Path | None = None) -> str | None:
    repo = Path(repo or Path(__file__).resolve().parents[1])
    if not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip() if out.returncode == 0 else ""
    return commit or None


# -- summary ------------------------------------------------------------------------
def _metric_names(records: list[dict], names: dict[str, str]) -> dict[str, str]:
    """per-sample score field -> summary name, in the task's order, then any others seen."""
    fields = list(names)
    for r in records:
        for f in r.get("scores") or {}:
            if f not in fields:
                fields.append(f)
    return {f: names.get(f, f) for f in fields}


def summarize(records: list[dict], summary_names: dict[str, str], n: int = 1) -> dict:
    """Counts, each metric's mean and standard error, judge failures, per-category means."""
    records = dedupe(records)
    failed = [r for r in records if r.get("error")]
    fields = _metric_names(records, summary_names)
    out: dict[str, Any] = {
        "num_examples": len(records),
        "num_scored": sum(1 for r in records if any(v is not None for v in (r.get("scores") or {}).values())),
        "num_failed": len(failed),
    }
    metrics = {}
    for field, name in fields.items():
        mean, se = mean_stderr((r.get("scores") or {}).get(field) for r in records)
        entry = {"field": field, "mean": mean, "stderr": se,
                 "n": len(finite((r.get("scores") or {}).get(field) for r in records))}
        if n > 1 and field in summary_names:
            entry[f"pass@{n}"] = pass_at_k(records, field)
        metrics[name] = entry
        out[name], out[f"{name}_stderr"] = mean, se
    out["metrics"] = metrics
    judged = [j for r in records for j in (r.get("judge") or [])]
    if judged:
        out["judge_parse_failures"] = sum(1 for j in judged if j.get("parse_error"))
        out["judge_errors"] = sum(1 for j in judged if j.get("error"))
    out["by_category"] = by_category(records, fields)
    return out


def by_category(records: list[dict], fields: dict[str, str]) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("category") is not None:
            groups[str(r["category"])].append(r)
    return {cat: {"num_examples": len(rs),
                  **{name: mean_or_none((r.get("scores") or {}).get(f) for r in rs) for f, name in fields.items()}}
            for cat, rs in sorted(groups.items())}
