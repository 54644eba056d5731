"""The root cause of a failed engine start, read from real vLLM 0.32 (CPU) logs.

The fixtures are the logs of three real failed starts: a KV cache larger than memory
(the cause is in a worker process, 150 lines above the end), a config.json vLLM cannot
read (an APIServer ERROR line), and an unknown CLI argument (argparse, no logging yet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.engine_log import failure_summary, root_cause

LOGS = Path(__file__).parent / "fixtures" / "engine_logs"


@pytest.mark.parametrize("name, cause", [
    ("kv_cache_too_big.log", "ValueError: Available memory on node 0 (12.99/19.96 GiB) on kv cache allocation is "
                             "less than requested memory for kv (100000.0 GiB)."),
    ("bad_config.log", "Error parsing config for /tmp/fail14/empty: Unrecognized model in /tmp/fail14/empty. "
                       "Should have a `model_type` key in its config.json."),
    ("bad_argument.log", "api_server.py: error: unrecognized arguments: --bogus-flag"),
])
def test_root_cause_of_real_failures(name, cause):
    summary = failure_summary(LOGS / name)
    assert summary.startswith(cause), summary
    assert "\n" not in summary and "See root cause above" not in summary


def test_the_log_ends_far_from_the_cause():
    """What the old error quoted (the last 25 lines) does not contain the cause."""
    tail = (LOGS / "kv_cache_too_big.log").read_text().splitlines()[-25:]
    assert not any("Available memory" in line for line in tail)
    assert any("See root cause above" in line for line in tail)


def test_first_failing_process_wins():
    lines = [
        "(APIServer pid=1) INFO 12-01 08:51:59 [api.py:1] starting",
        "(EngineCore pid=2) ERROR 12-01 08:52:31 [core.py:1] EngineCore failed to start.",
        "(Worker pid=3) ERROR 12-01 08:52:31 [w.py:1] Traceback (most recent call last):",
        "(Worker pid=3) ERROR 12-01 08:52:31 [w.py:1] OSError: later, elsewhere",
        "(EngineCore pid=2) ERROR 12-01 08:52:31 [core.py:1] Traceback (most recent call last):",
        "(EngineCore pid=2) ERROR 12-01 08:52:31 [core.py:1]   File \"core.py\", line 1, in run",
        "(EngineCore pid=2) ERROR 12-01 08:52:31 [core.py:1]     raise RuntimeError(...)",
        "(EngineCore pid=2) ERROR 12-01 08:52:31 [core.py:1] RuntimeError: out of shared memory",
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
    ]
    assert root_cause(lines) == "RuntimeError: out of shared memory"


def test_plain_traceback_and_error_line_without_one():
    crash = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>',
             "ModuleNotFoundError: No module named 'vllm._C'"]
    assert root_cause(crash) == "ModuleNotFoundError: No module named 'vllm._C'"
    assert root_cause(["(EngineCore pid=2) ERROR 12-01 08:52:31 [core.py:1] NUMA node 3 is not allowed",
                       "(APIServer pid=1) INFO 12-01 08:52:32 [api.py:1] shutting down"]) == "NUMA node 3 is not allowed"


def test_no_error_in_the_log(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("(APIServer pid=1) INFO 12-01 08:51:59 [api.py:1] loading weights\n\n")
    assert failure_summary(log) == "no error in the log; its last line: (APIServer pid=1) INFO 12-01 08:51:59 " \
                                   "[api.py:1] loading weights"
    assert failure_summary(tmp_path / "missing.log").startswith("no log")
