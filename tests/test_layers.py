"""The packages' import layers, read from the source (no imports run, no server).

    evalctl (the CLI, demo)          top: nothing below imports it
    server (gateway, jobs)           runs trainers' workers, reads evaluators' run dirs
    rag, trainers                    clients of the endpoint, built on evaluators' tasks and scorers
    evaluators                       tasks, scorers, runner, run files, statistics
    clients                          the shared client and dependency-free helpers: imports none of these

A module imports only packages below its own. The exception is a package's `cli.py`, which wires
commands together (`evalctl run --rag` is in evaluators.cli, `rag` reuses its log setup): it may
import any package but the top-level CLI. Every import counts, the ones inside functions too: a
lazy import is still a dependency. And no module takes another package's private (`_name`) helper:
what two packages share is made public where both may use it (clients.jsontext, clients.cli_options).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK = {"clients": 0, "evaluators": 1, "rag": 2, "trainers": 2, "server": 3, "evalctl": 4}


def _imports(path: Path):
    """(line, imported module, imported names) for every absolute import in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]


def _modules():
    for package in RANK:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path


def test_every_package_is_scanned():
    assert all((ROOT / p / "__init__.py").exists() for p in RANK)
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert found <= set(RANK), f"a new package needs a place in the layers: {sorted(found - set(RANK))}"


def test_modules_import_only_lower_layers():
    wrong = []
    for package, path in _modules():
        is_cli = path.name == "cli.py" and path.parent.name == package
        for line, module, _ in _imports(path):
            target = module.split(".")[0]
            if target not in RANK or target == package:
                continue
            allowed = target != "evalctl" if is_cli else RANK[target] < RANK[package]
            if not allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_no_module_takes_another_packages_private_names():
    wrong = []
    for package, path in _modules():
        for line, module, names in _imports(path):
            target = module.split(".")[0]
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if target in RANK and target != package and private:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: from {module} import {', '.join(private)}")
    assert not wrong, "\n".join(wrong)
