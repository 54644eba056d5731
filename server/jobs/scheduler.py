"""The gateway side of fine-tuning jobs: an asyncio task on `app.state.jobs`.

Each tick it validates new jobs' files (validating_files -> queued | failed), starts a
worker process for queued jobs while fewer than `max_concurrent_jobs` run, and
finishes jobs whose worker exited: on success it hot-loads the adapter under the
job's `fine_tuned_model` before the job reads `succeeded`, so a succeeded job's model
always answers. Workers are started from the event-loop thread on purpose: their
parent-death signal is tied to the thread that forked them.

Restart: jobs found `running` are resumed from their last checkpoint (queued again
with `resume_from`) or failed with a clear error; adapters of succeeded jobs are
loaded again so their models stay listed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainers.errors import DataError

from ..adapters import AdapterManager
from ..engine import log_tail
from ..routing import ModelRouter
from ..settings import ServeSettings
from .files import inspect_file
from .store import Store, new_id

log = logging.getLogger("evalctl.jobs")
INTERRUPTED = 75


class Scheduler:
    def __init__(self, settings: ServeSettings, adapters: AdapterManager, router: ModelRouter,
                 poll: float = 0.5, stop_grace: float = 20.0):
        self.root = settings.jobs_path()
        self.store = Store(self.root / "jobs.sqlite")
        self.files_dir = self.root / "files"
        self.settings = settings
        self.adapters = adapters
        self.router = router
        self.poll = poll
        self.stop_grace = stop_grace
        self.workers: dict[str, subprocess.Popen] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    # -- lifetime -----------------------------------------------------------------
    async def start(self) -> None:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        for job in self.store.jobs_with_status("running"):
            if job["adapter_path"] and Path(job["adapter_path"]).is_dir():
                await self._succeed(job)  # trained, but the gateway stopped before loading it
        self._recover()
        await self._reload_adapters()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; running workers checkpoint (SIGTERM) and are resumed after a restart."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job_id, proc in self.workers.items():
            self.store.add_event(job_id, "The server is stopping: the job is checkpointed and resumes when it "
                                 "restarts", level="warn")
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for proc in self.workers.values():
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.workers.clear()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # one bad job must not stop the queue
                log.exception("jobs scheduler tick failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def tick(self) -> None:
        for job in self.store.jobs_with_status("validating_files"):
            await asyncio.to_thread(self._validate, job)
        for job_id, proc in list(self.workers.items()):
            if proc.poll() is not None:
                del self.workers[job_id]
                await self._finish(job_id, proc.returncode)
        limit = self.settings.max_concurrent_jobs
        for job in self.store.jobs_with_status("queued")[:max(0, limit - len(self.workers))]:
            self._launch(job)

    # -- steps of a job ---------------------------------------------------------------
    def _validate(self, job: dict) -> None:
        spec, job_dir = job["spec"], self.job_dir(job["id"])
        job_dir.mkdir(parents=True, exist_ok=True)
        for param, name in (("training_file", "train.jsonl"), ("validation_file", "valid.jsonl")):
            file_id = spec.get(param)
            if file_id is None:
                continue
            self.store.add_event(job["id"], f"Validating {param.replace('_', ' ')}: {file_id}")
            f = self.store.get_file(file_id)
            try:
                if f is None or not Path(f["path"]).is_file():
                    raise DataError(f"{param} {file_id} was deleted before the job started")
                inspect_file(Path(f["path"]), f["filename"])
                shutil.copyfile(f["path"], job_dir / name)  # the job keeps its data if the file is deleted
            except DataError as e:
                self._fail(job["id"], "invalid_file", str(e), param, only_from=("validating_files",))
                return
        if self.store.update_job(job["id"], status="queued", only_from=("validating_files",)):
            self.store.add_event(job["id"], "Files validated, moving job to queued state")

    def _launch(self, job: dict) -> None:
        if job["spec"].get("python_limits") and not self.settings.python_graders:
            # created while python graders were allowed; this server (restarted without the flag) refuses them
            self._fail(job["id"], "python_graders_disabled", "the job's grader runs Python, and this server now "
                       "runs without --python-graders", "method.reinforcement.grader", only_from=("queued",))
            return
        job_dir = self.job_dir(job["id"])
        cmd = [sys.executable, "-m", "server.jobs.worker", str(self.store.path), job["id"],
               "--threads", str(self.settings.job_cpu_threads)]
        with open(job_dir / "worker.log", "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=self._worker_env())
        if not self.store.update_job(job["id"], status="running", pid=proc.pid, error=None,
                                     started_at=int(time.time()), only_from=("queued",)):
            _signal_group(proc, signal.SIGKILL)  # cancelled between the read and now
            proc.wait()
            return
        self.workers[job["id"]] = proc
        self.store.add_event(job["id"], "Fine-tuning job started")
        log.info("job %s started (worker pid %d)", job["id"], proc.pid)

    def _worker_env(self) -> dict:
        """Where a reinforcement worker samples and grades: this gateway (the key in the environment,
        not on the command line anyone can read)."""
        s = self.settings
        host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
        env = {**os.environ, "JOB_GATEWAY_URL": f"http://{host}:{s.port}"}
        key = s.admin_key or s.api_key
        if key:
            env["JOB_GATEWAY_KEY"] = key
        return env

    async def _finish(self, job_id: str, code: int) -> None:
        job = self.store.get_job(job_id)
        if job is None or job["status"] != "running":
            return  # cancelled: the cancel already set the status
        if code == 0 and job["adapter_path"]:
            await self._succeed(job)
        elif code == INTERRUPTED:
            self._requeue_or_fail(job, "the training worker was stopped")
        else:
            err = job["error"] or {"code": "training_failed", "param": None,
                                   "message": f"the training worker exited with code {code}: "
                                   f"{_last_line(self.job_dir(job_id) / 'worker.log')}"}
            self._fail(job_id, err["code"], err["message"], err.get("param"), only_from=("running",))

    async def _succeed(self, job: dict) -> None:
        spec = job["spec"]
        name = spec["fine_tuned_model"]
        try:
            await self.adapters.load(name, job["adapter_path"], base=spec["base"], aliases=self.router.aliases)
        except Exception as e:
            message = getattr(e, "message", None) or repr(e)
            self._fail(job["id"], "adapter_load_failed", f"training finished but loading the adapter failed: "
                       f"{message}", None, only_from=("running",))
            return
        results = self._results_file(job)
        if self.store.update_job(job["id"], status="succeeded", fine_tuned_model=name, finished_at=int(time.time()),
                                 result_files=[results] if results else [], only_from=("running",)):
            self.store.add_event(job["id"], f"New fine-tuned model created: {name}")
            self.store.add_event(job["id"], "The job has successfully completed")
            log.info("job %s succeeded: %s", job["id"], name)
        else:  # cancelled while the adapter loaded: a cancelled job serves no model
            await self.adapters.unload(name)

    def _results_file(self, job: dict) -> str | None:
        """OpenAI's results file: one CSV row per logged step."""
        rows = self.store.metrics(job["id"])
        if not rows:
            return None
        buf = io.StringIO()
        cols = ["step", "epoch", "train_loss", "valid_loss", "learning_rate"]
        if job["spec"].get("method_type") == "reinforcement":
            cols = ["step", "epoch", "train_reward_mean", "valid_reward_mean", "learning_rate"]
        w = csv.DictWriter(buf, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        file_id = new_id("file")
        path = self.files_dir / f"{file_id}.csv"
        path.write_text(buf.getvalue())
        self.store.add_file(file_id, "step_metrics.csv", path.stat().st_size, "fine-tune-results", path, None,
                            len(rows))
        return file_id

    def _fail(self, job_id: str, code: str, message: str, param: str | None, only_from: tuple[str, ...]) -> None:
        if self.store.update_job(job_id, status="failed", finished_at=int(time.time()), only_from=only_from,
                                 error={"code": code, "message": message, "param": param}):
            self.store.add_event(job_id, f"The job failed: {message}", level="error")
            log.warning("job %s failed: %s", job_id, message)

    def _requeue_or_fail(self, job: dict, why: str) -> None:
        ckpt = self.store.last_checkpoint(job["id"])
        if ckpt is not None and Path(ckpt["path"]).is_dir():
            self.store.update_job(job["id"], status="queued", resume_from=ckpt["path"], pid=None,
                                  only_from=("running",))
            self.store.add_event(job["id"], f"{why}; the job is queued to resume from its checkpoint at step "
                                 f"{ckpt['step']}", level="warn")
        elif not job["step"]:  # no step trained yet: starting over loses nothing
            self.store.update_job(job["id"], status="queued", pid=None, only_from=("running",))
            self.store.add_event(job["id"], f"{why} before training began; the job is queued to start again",
                                 level="warn")
        else:
            self._fail(job["id"], "job_interrupted", f"{why} after step {job['step']} without a checkpoint to "
                       "resume from; create the job again", None, only_from=("running",))

    # -- restart --------------------------------------------------------------------
    def _recover(self) -> None:
        for job in self.store.jobs_with_status("running"):
            _kill_stale_worker(job)
            self._requeue_or_fail(job, "The server restarted while the job was running")

    async def _reload_adapters(self) -> None:
        for job in self.store.jobs_with_status("succeeded"):
            name = job["spec"]["fine_tuned_model"]
            if name in self.adapters.current or not job["adapter_path"]:
                continue
            try:
                await self.adapters.load(name, job["adapter_path"], base=job["spec"]["base"],
                                         aliases=self.router.aliases)
            except Exception as e:
                log.warning("could not reload %s (job %s): %s", name, job["id"], getattr(e, "message", e))

    # -- cancel -----------------------------------------------------------------------
    async def cancel(self, job_id: str) -> dict | None:
        if self.store.update_job(job_id, status="cancelled", finished_at=int(time.time()),
                                 only_from=("validating_files", "queued", "running")):
            self.store.add_event(job_id, "Fine-tuning job cancelled")
            proc = self.workers.pop(job_id, None)
            if proc is not None:
                _signal_group(proc, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
            self.wake()
        return self.store.get_job(job_id)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _kill_stale_worker(job: dict) -> None:
    """A worker that outlived a crashed gateway must not keep writing to this job."""
    pid = job.get("pid")
    if not pid:
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if b"server.jobs.worker" not in cmdline or job["id"].encode() not in cmdline:
        return  # the pid was reused by another process
    try:
        os.killpg(pid, signal.SIGTERM)  # it may be saving the checkpoint its parent's death asked for
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _last_line(path: Path) -> str:
    lines = [ln for ln in log_tail(path, 40).splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "(no output)"

