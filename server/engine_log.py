"""Why an engine failed to start, read from its log.

vLLM's log of a failed start ends with the API server's "Engine core initialization
failed. See root cause above": the cause is further up, in the first process that logged
an ERROR (a worker or the engine core), as the last line of its first traceback. Lines of
vLLM's child processes are prefixed `(EngineCore pid=N) ERROR 12-01 08:52:31 [core.py:1510]`;
output from before logging is set up (argparse, an import error) is not."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

_PREFIX = re.compile(r"^\((?P<proc>[^)]*?)(?: pid=\d+)?\)\s+(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
                     r"\S+ \S+ \[[^\]]*\] ?(?P<msg>.*)$")
_CLI_ERROR = re.compile(r"^\S+: error: ")  # argparse: "api_server.py: error: argument --dtype: ..."
MAX_CAUSE_CHARS = 600
_MAX_LINES = 20_000  # a start-up log is a few hundred lines; a runaway one is read from its end


def _entries(lines: list[str]):
    for line in lines:
        line = line.rstrip("\n")
        m = _PREFIX.match(line)
        if m:
            yield m["proc"], m["level"], m["msg"]
        else:
            yield None, None, line


def root_cause(lines: list[str]) -> str | None:
    """The exception message (or ERROR line) of the first process that failed, else None."""
    culprit: str | None = None  # the process that logged the first ERROR
    first_error: str | None = None
    in_traceback: set[str | None] = set()
    for proc, level, msg in _entries(lines):
        if culprit is not None and proc != culprit:
            continue
        failing = level in ("ERROR", "CRITICAL") or level is None  # unprefixed: raw stderr
        if msg.startswith("Traceback (most recent call last)") and failing:
            in_traceback.add(proc)
        elif proc in in_traceback and failing:
            if msg.strip() and msg[:1] not in (" ", "\t"):
                return msg.strip()[:MAX_CAUSE_CHARS]  # the line after the frames: "ValueError: ..."
        elif level is None and culprit is None and _CLI_ERROR.match(msg):
            return msg.strip()[:MAX_CAUSE_CHARS]
        elif level in ("ERROR", "CRITICAL") and culprit is None:
            culprit, first_error = proc, msg.strip()
    return first_error[:MAX_CAUSE_CHARS] if first_error else None


def failure_summary(path: Path) -> str:
    """One line: the root cause from the log at `path`, else its last non-empty line."""
    try:
        with open(path, errors="replace") as f:
            lines = list(deque(f, maxlen=_MAX_LINES))
    except OSError as e:
        return f"no log ({e.strerror})"
    cause = root_cause(lines)
    if cause:
        return cause
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), None)
    return f"no error in the log; its last line: {last[:MAX_CAUSE_CHARS]}" if last else "the log is empty"
