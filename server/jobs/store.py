"""SQLite persistence for files, fine-tuning jobs, their events and checkpoints.

One database file under `jobs_dir`, in WAL mode so the gateway reads while a worker
writes. Every call opens its own short-lived connection: the store is used from the
event loop, from threads and from worker processes, and sqlite3 connections are not
shared across threads. Rows keep an integer `seq` for ordering and cursors; the
public ids (`file-...`, `ftjob-...`) are what the API shows.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, filename TEXT NOT NULL,
    bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, purpose TEXT NOT NULL, path TEXT NOT NULL,
    format TEXT, records INTEGER);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created_at INTEGER NOT NULL,
    status TEXT NOT NULL, spec TEXT NOT NULL, error TEXT, fine_tuned_model TEXT, started_at INTEGER,
    finished_at INTEGER, trained_tokens INTEGER, result_files TEXT NOT NULL DEFAULT '[]',
    adapter_path TEXT, resume_from TEXT, pid INTEGER, total_steps INTEGER, step INTEGER);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    level TEXT NOT NULL, message TEXT NOT NULL, type TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL, step INTEGER NOT NULL, metrics TEXT NOT NULL, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_job ON checkpoints (job_id, seq);
"""
TERMINAL = ("succeeded", "failed", "cancelled")
_JSON_COLUMNS = ("spec", "error", "result_files", "data", "metrics")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _row(r: sqlite3.Row | None) -> dict | None:
    if r is None:
        return None
    d = dict(r)
    for k in _JSON_COLUMNS:
        if k in d and d[k] is not None:
            d[k] = json.loads(d[k])
    return d


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        c = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        c.row_factory = sqlite3.Row
        c.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        try:
            yield c
        finally:
            c.close()

    def _one(self, sql: str, *args) -> dict | None:
        with self._conn() as c:
            return _row(c.execute(sql, args).fetchone())

    def _all(self, sql: str, *args) -> list[dict]:
        with self._conn() as c:
            return [_row(r) for r in c.execute(sql, args).fetchall()]

    def _exec(self, sql: str, *args) -> int:
        with self._conn() as c:
            return c.execute(sql, args).rowcount

    def _page(self, table: str, where: str, args: tuple, after: str | None, limit: int, desc: bool = True
              ) -> tuple[list[dict], bool]:
        """A cursor page: rows after the row whose id is `after`, and whether more follow."""
        op, order = ("<", "DESC") if desc else (">", "ASC")
        if after is not None:
            anchor = self._one(f"SELECT seq FROM {table} WHERE id = ?", after)
            if anchor is not None:
                where, args = f"{where} AND seq {op} ?", (*args, anchor["seq"])
        rows = self._all(f"SELECT * FROM {table} WHERE {where} ORDER BY seq {order} LIMIT ?", *args, limit + 1)
        return rows[:limit], len(rows) > limit

    # -- files ------------------------------------------------------------------
    def add_file(self, file_id: str, filename: str, size: int, purpose: str, path: Path, fmt: str | None,
                 records: int | None) -> dict:
        with self._conn() as c:
            c.execute("INSERT INTO files (id, filename, bytes, created_at, purpose, path, format, records) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (file_id, filename, size, int(time.time()), purpose, str(path), fmt, records))
        return self.get_file(file_id)

    def get_file(self, file_id: str) -> dict | None:
        return self._one("SELECT * FROM files WHERE id = ?", file_id)

    def list_files(self, after: str | None, limit: int, order: str, purpose: str | None) -> tuple[list[dict], bool]:
        where, args = ("purpose = ?", (purpose,)) if purpose else ("1", ())
        return self._page("files", where, args, after, limit, desc=order != "asc")

    def delete_file(self, file_id: str) -> bool:
        return self._exec("DELETE FROM files WHERE id = ?", file_id) > 0

    # -- jobs -------------------------------------------------------------------
    def add_job(self, job_id: str, spec: dict) -> dict:
        with self._conn() as c:
            c.execute("INSERT INTO jobs (id, created_at, status, spec) VALUES (?, ?, 'validating_files', ?)",
                      (job_id, int(time.time()), json.dumps(spec)))
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", job_id)

    def list_jobs(self, after: str | None, limit: int) -> tuple[list[dict], bool]:
        return self._page("jobs", "1", (), after, limit)

    def jobs_with_status(self, status: str) -> list[dict]:
        return self._all("SELECT * FROM jobs WHERE status = ? ORDER BY seq", status)

    def update_job(self, job_id: str, *, only_from: tuple[str, ...] = (), **fields: Any) -> bool:
        """Set fields; with `only_from`, only while the status is one of those (so a
        cancel is never overwritten by a worker or scheduler finishing late)."""
        values = [json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in fields.items()]
        sql = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?"
        if only_from:
            sql += f" AND status IN ({', '.join('?' * len(only_from))})"
        return self._exec(sql, *values, job_id, *only_from) > 0

    # -- events -----------------------------------------------------------------
    def add_event(self, job_id: str, message: str, level: str = "info", data: dict | None = None) -> None:
        with self._conn() as c:
            c.execute("INSERT INTO events (job_id, created_at, level, message, type, data) VALUES (?, ?, ?, ?, ?, ?)",
                      (job_id, int(time.time()), level, message, "metrics" if data else "message",
                       json.dumps(data) if data else None))

    def list_events(self, job_id: str, after: str | None, limit: int) -> tuple[list[dict], bool]:
        """Newest first, as OpenAI lists them; `after` is an event id (`ftevent-<seq>`)."""
        where, args = "job_id = ?", (job_id,)
        if after is not None and after.removeprefix("ftevent-").isdigit():
            where, args = f"{where} AND seq < ?", (job_id, int(after.removeprefix("ftevent-")))
        rows = self._all(f"SELECT * FROM events WHERE {where} ORDER BY seq DESC LIMIT ?", *args, limit + 1)
        return rows[:limit], len(rows) > limit

    def metrics(self, job_id: str) -> list[dict]:
        rows = self._all("SELECT data FROM events WHERE job_id = ? AND type = 'metrics' ORDER BY seq", job_id)
        return [r["data"] for r in rows]

    # -- checkpoints --------------------------------------------------------------
    def add_checkpoint(self, job_id: str, step: int, metrics: dict, path: Path) -> None:
        with self._conn() as c:
            c.execute("INSERT INTO checkpoints (id, job_id, created_at, step, metrics, path) VALUES (?, ?, ?, ?, ?, ?)",
                      (new_id("ftckpt"), job_id, int(time.time()), step, json.dumps(metrics), str(path)))

    def drop_checkpoints(self, job_id: str, keep_paths: set[str]) -> None:
        for r in self._all("SELECT id, path FROM checkpoints WHERE job_id = ?", job_id):
            if r["path"] not in keep_paths:
                self._exec("DELETE FROM checkpoints WHERE id = ?", r["id"])

    def list_checkpoints(self, job_id: str, after: str | None, limit: int) -> tuple[list[dict], bool]:
        return self._page("checkpoints", "job_id = ?", (job_id,), after, limit)

    def last_checkpoint(self, job_id: str) -> dict | None:
        return self._one("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step DESC, seq DESC LIMIT 1", job_id)
