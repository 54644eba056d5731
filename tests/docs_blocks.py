"""The documentation's code blocks, for the tests that hold the docs to the code.

A block preceded by `<!-- test: NAME -->` is run as written: by tests/test_docs.py when it needs no
server, by tests/test_docs_served.py against the session server otherwise (URLs of
http://127.0.0.1:8000 point at that server, the keys come from the environment as the docs say).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
DOC_URL = "http://127.0.0.1:8000"
FENCED = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
TAGGED = re.compile(r"<!-- test: ([\w-]+) -->\s*```(\w+)\n(.*?)^```", re.S | re.M)


def code_blocks(lang: str | None = None) -> list[tuple[Path, str]]:
    """(file, code) of every fenced block, or of those in one language."""
    return [(doc, code) for doc in DOCS for kind, code in FENCED.findall(doc.read_text())
            if lang is None or kind == lang]


def tagged_blocks() -> dict[str, tuple[Path, str, str]]:
    """tag -> (file, language, code); a tag names one block in all the docs."""
    found: dict[str, tuple[Path, str, str]] = {}
    for doc in DOCS:
        for tag, lang, code in TAGGED.findall(doc.read_text()):
            assert tag not in found, f"tag {tag} is used twice ({found[tag][0].name}, {doc.name})"
            found[tag] = (doc, lang, code)
    return found


def block(tag: str) -> tuple[str, str]:
    blocks = tagged_blocks()
    assert tag in blocks, f"the docs lost their {tag} example"
    _, lang, code = blocks[tag]
    return lang, code


def run_block(tag: str, cwd: Path, *, url: str | None = None, timeout: float = 120, **env: str) -> str:
    """Run a tagged block in `cwd` (bash -euo pipefail, or python) and return its stdout; fails
    with its stderr. The venv's `evalctl` and `python` come first on PATH, as after `make install`."""
    lang, code = block(tag)
    if url:
        code = code.replace(DOC_URL, url)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = {**os.environ, "PATH": path, **env}
    argv = {"bash": ["bash", "-euo", "pipefail", "-c", code], "python": [sys.executable, "-c", code]}[lang]
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)
    assert out.returncode == 0, f"{tag} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout
