"""Python graders in a child process with time and memory limits.

The child is a fresh interpreter (`python -I`: no user site, no PYTHONPATH, no cwd on sys.path)
in an empty temporary directory with an empty environment. Before the grader's source runs it
gets RLIMIT_AS (memory), RLIMIT_CPU and RLIMIT_FSIZE (no file bigger than 1 MiB); each
`grade(sample, item)` call has a wall-clock alarm, and the whole batch a wall-clock timeout. One child grades a
whole batch (a rollout step's completions), so the interpreter starts once per batch, not per sample.
The grader can still open sockets: these limits keep a slow or greedy grader from hurting the
server, they are not a jail for hostile code, which is why python graders need an explicit flag.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass

_CHILD = r"""
import json, math, resource, signal, sys
cfg = json.loads(sys.stdin.readline())
mem = cfg["memory_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
cpu = int(cfg["cpu_seconds"]) + 1
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
class Timeout(Exception):
    pass
def alarm(*_):
    raise Timeout()
signal.signal(signal.SIGALRM, alarm)
out = []
try:
    ns = {"__name__": "grader"}
    exec(compile(cfg["source"], "<grader>", "exec"), ns)
    grade = ns["grade"]
except BaseException as e:
    print(json.dumps({"fatal": f"{type(e).__name__}: {e}"}))
    sys.exit(0)
for case in cfg["cases"]:
    signal.setitimer(signal.ITIMER_REAL, cfg["timeout"])
    try:
        v = float(grade(case["sample"], case["item"]))
        out.append({"score": v} if math.isfinite(v) else {"error": "grade() returned a non-finite number"})
    except Timeout:
        out.append({"error": f"grade() ran past {cfg['timeout']} s"})
    except MemoryError:
        out.append({"error": "grade() ran out of memory (limit %d MiB)" % (mem >> 20)})
    except BaseException as e:
        out.append({"error": f"{type(e).__name__}: {e}"})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
print(json.dumps({"results": out}))
"""


@dataclass(frozen=True)
class PythonLimits:
    timeout: float = 10.0  # seconds per grade() call
    memory_mb: int = 512


def run_python(source: str, cases: list[dict], limits: PythonLimits) -> list[tuple[float | None, str | None]]:
    """(score, error) per case {"sample", "item"}; a crashed or killed child fails every case."""
    cfg = {"source": source, "cases": cases, "timeout": limits.timeout, "memory_bytes": limits.memory_mb << 20,
           "cpu_seconds": limits.timeout * max(1, len(cases)) + 2}
    wall = limits.timeout * max(1, len(cases)) + 10
    with tempfile.TemporaryDirectory(prefix="evalctl-grader-") as cwd:
        try:
            proc = subprocess.run([sys.executable, "-I", "-c", _CHILD], input=json.dumps(cfg) + "\n",
                                  capture_output=True, text=True, timeout=wall, cwd=cwd, env={})
        except subprocess.TimeoutExpired:
            return [(None, f"the grader process ran past {wall:.0f} s and was killed")] * len(cases)
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    try:
        reply = json.loads(last[0])
    except ValueError:
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        if proc.returncode < 0:
            why = f"killed by signal {-proc.returncode} (CPU or memory limit): {why}"
        return [(None, f"the grader process failed: {why}")] * len(cases)
    if "fatal" in reply:
        return [(None, f"loading the grader failed: {reply['fatal']}")] * len(cases)
    return [(r.get("score"), r.get("error")) for r in reply["results"]]
