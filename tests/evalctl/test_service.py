"""`evalctl files upload`, `ft create`, `chat` without a gateway: one-line errors, no traceback
(the recipe lora-service runs them against the session gateway in test_recipes.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from evalctl.cli import main

DOWN = ["--base-url", "http://127.0.0.1:9"]


@pytest.mark.parametrize("args", [
    ["files", "upload", "{f}"],
    ["ft", "create", "--model", "tiny", "--training-file", "file-x"],
    ["chat", "tiny", "hello"],
])
def test_gateway_down_is_one_line(tmp_path, args):
    f = tmp_path / "a.jsonl"
    f.write_text('{"prompt": "a", "completion": "b"}\n')
    r = CliRunner().invoke(main, [a.format(f=f) for a in args] + DOWN)
    assert r.exit_code == 1 and r.output.startswith("Error: cannot reach the gateway"), r.output
    assert len(r.output.strip().splitlines()) == 1


def test_upload_missing_file_is_one_line():
    r = CliRunner().invoke(main, ["files", "upload", "/nonexistent.jsonl"])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
