"""Run `evalctl serve` as a child process and wait until it answers: used by the demo,
the benchmarks and the test suite, so they all exercise the real command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.engine import free_port
from server.engine_log import failure_summary


class ServerStartError(RuntimeError):
    """`evalctl serve` exited or never became healthy; the message is one line."""


def serve_failure(log_path: Path) -> str:
    """Why `evalctl serve` failed: its own one-line `Error: ...` (which quotes the engine's
    root cause and names the engine log), else the root cause found in its output."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    return errors[-1][len("Error: "):] if errors else failure_summary(log_path)


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float) -> bool:
    """Poll `url`/health until it answers 200 (True), `proc` exits or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


class ServerProcess:
    def __init__(self, args: list[str], log_path: Path, port: int | None = None, env: dict | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.args = [sys.executable, "-m", "evalctl.cli", "serve", "--port", str(self.port), *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 900.0) -> "ServerProcess":
        if self.proc is not None and self.proc.poll() is None:
            return self  # already up: `with ServerProcess(...).start()` must not start (and leak) a second one
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.args, stdout=logf, stderr=subprocess.STDOUT, env=self.env,
                                         stdin=subprocess.DEVNULL)
        if wait_healthy(self.proc, self.url, timeout):
            return self
        if self.proc.poll() is not None:
            raise ServerStartError(f"evalctl serve exited with code {self.proc.returncode}: "
                                   f"{serve_failure(self.log_path)} (serve log: {self.log_path})")
        self.stop()
        raise ServerStartError(f"evalctl serve not healthy after {timeout:.0f}s: {serve_failure(self.log_path)} "
                               f"(serve log: {self.log_path})")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
