"""`evalctl` CLI: one-line errors and non-zero exits for bad input, no tracebacks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalctl.cli import main
from evalctl.process import ServerProcess, ServerStartError


@pytest.mark.parametrize("args,msg", [
    (["serve"], "nothing to serve"),
    (["serve", "--model", "m", "--adapter", "noequals"], "--adapter expects NAME=PATH"),
    (["serve", "--adapter", "a=b"], "need --model or --upstream"),
    (["serve", "--config", "/nonexistent.yaml"], "not found"),
    (["serve", "--model", "m", "--replicas", "0"], "greater than or equal to 1"),
    (["serve", "--model", "m", "--upstream", "http://x"], "not both"),
])
def test_serve_bad_input(args, msg):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert msg in result.output and "Traceback" not in result.output


def test_serve_help_comes_from_settings_fields():
    out = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--max-lora-rank" in out and "largest adapter rank" in out
    assert "--no-base-via-zero-adapter" in out


def test_engine_start_failure_quotes_the_root_cause_and_keeps_the_log(tmp_path):
    """A model directory vLLM cannot load: one line with the root cause (not the log's end, which
    only says "See root cause above"), exit 1, and the engine log, named in it, still there
    although it was in the server's temporary store (no --log-dir)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result = CliRunner().invoke(main, ["serve", "--model", str(model), "--startup-timeout", "300"])
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "exited with code" in error[0], result.output
    assert "Should have a `model_type` key in its config.json" in error[0]
    log = Path(re.search(r"\(log: (\S+)\)$", error[0])[1])
    assert log.is_file() and "model_type" in log.read_text()
    shutil.rmtree(log.parent.parent)  # the kept store


def test_server_process_failure_is_one_line(tmp_path):
    """What the demo and the tests see when `evalctl serve` fails: the serve error, one line."""
    (tmp_path / "config.json").write_text("{}")
    proc = ServerProcess(["--model", str(tmp_path), "--log-dir", str(tmp_path / "logs")], tmp_path / "serve.log")
    with pytest.raises(ServerStartError) as e:
        proc.start(timeout=300)
    message = str(e.value)
    assert "\n" not in message and "exited with code 1" in message and "model_type" in message, message
    assert f"serve log: {tmp_path / 'serve.log'}" in message and str(tmp_path / "logs") in message
