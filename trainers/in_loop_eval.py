"""Evaluation inside the training loop (`--eval-every N` on `train grpo` and `train sft`).

Every N optimizer steps and at the end, the weights just trained are pushed to the server and
evaluated there by the evaluator runner (greedy), one resumable run dir per evaluated step under
OUT/evals/step-N. The metrics join the training log (metrics.jsonl, TensorBoard, curves); the
best version by the task's primary metric is copied to OUT/best-adapter and, at the end, served
as NAME-best.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from .endpoint import Endpoint, push_adapter_sync
from .tasks import get_task, load_samples

log = logging.getLogger("evalctl.train.eval")


class BestVersion:
    """The best-scoring version so far: its adapter copied to OUT/best-adapter, its record in
    OUT/best.json. Shared by the in-loop eval and reinforcement jobs."""

    def __init__(self, out: Path, key: str):
        self.out, self.key = Path(out), key  # key: the record's field that ranks versions

    @property
    def path(self) -> Path:
        return self.out / "best-adapter"

    def get(self) -> dict | None:
        path = self.out / "best.json"
        return json.loads(path.read_text()) if path.exists() else None

    def offer(self, record: dict, adapter_dir: Path, ties_win: bool = False) -> dict:
        """Keep `record` (with its `step`) and a copy of `adapter_dir` when it beats the best so
        far (or equals it, with `ties_win`); returns the best record after the offer."""
        best, value = self.get(), record[self.key]
        if best is None or value > best[self.key] or (ties_win and value == best[self.key]):
            shutil.rmtree(self.path, ignore_errors=True)
            shutil.copytree(adapter_dir, self.path)
            (self.out / "best.json").write_text(json.dumps(record, indent=2))
            return record
        return best

    def forget_after(self, step: int) -> None:
        """A resumed run trains the steps after `step` again: a best from them no longer describes it."""
        best = self.get()
        if best and best["step"] > step:
            (self.out / "best.json").unlink()
            shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class InLoopEval:
    task_name: str
    data: Path | None
    limit: int | None
    every: int
    max_tokens: int | None
    endpoint: Endpoint
    name: str  # the served name the pushed versions answer under
    out: Path
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.task = get_task(self.task_name)
        self.samples = load_samples(self.task, self.data, self.limit)
        self.metric = self.task.summary_names.get(self.task.primary, self.task.primary)
        self.kept = BestVersion(self.out, "value")

    @property
    def best_path(self) -> Path:
        return self.kept.path

    def best(self) -> dict | None:
        return self.kept.get()

    def forget_after(self, step: int) -> None:
        """A resumed run trains the steps after `step` again: their evals no longer describe it."""
        for d in (self.out / "evals").glob("step-*"):
            if int(d.name.removeprefix("step-")) > step:
                shutil.rmtree(d, ignore_errors=True)
        self.kept.forget_after(step)

    def run(self, step: int, version: int, adapter_dir: Path) -> dict[str, float]:
        from evaluators import runner

        params = runner.sampling_params(self.task, temperature=0.0, max_tokens=self.max_tokens)
        spec = runner.RunSpec(task=self.task.name, model=self.name, endpoint=self.endpoint.base_url,
                              sampling=params, limit=self.limit, extra={"adapter_version": version,
                                                                         "train_step": step})
        run_dir = self.out / "evals" / f"step-{step}"
        summary = asyncio.run(runner.run_async(self.task, spec, self.samples, run_dir, api_key=self.endpoint.api_key,
                                               concurrency=max(self.endpoint.concurrency, 64), progress=False))
        metrics = {f"eval/{k}": v["mean"] for k, v in summary["metrics"].items() if v.get("mean") is not None}
        value = summary.get(self.metric)
        best = self.best()
        if value is not None:
            best = self.kept.offer({"step": step, "version": version, "metric": self.metric, "value": value,
                                    "run": str(run_dir)}, adapter_dir)
        log.info("eval at step %d (v%d): %s %.4f (best %.4f at step %d)", step, version, self.metric,
                 value if value is not None else float("nan"), best["value"] if best else float("nan"),
                 best["step"] if best else -1)
        return metrics

    def push_best(self, base_name: str | None = None) -> dict | None:
        best = self.best()
        if best is None:
            return None
        version = push_adapter_sync(self.endpoint, f"{self.name}-best", self.best_path, base_name)
        return {**best, "served_as": f"{self.name}-best", "served_version": version}


class EvalCallback(TrainerCallback):
    """Runs `InLoopEval` every N steps and at the last; `push` makes the current weights served and
    returns (version, adapter dir). It runs on every process (the push is collective); only the
    main one evaluates."""

    def __init__(self, ev: InLoopEval, push: Callable[[], tuple[int, Path]], trainer):
        self.ev, self.push, self.trainer = ev, push, trainer

    def on_step_end(self, args, state, control, **kw):
        step = state.global_step
        if step % self.ev.every and step != state.max_steps:
            return
        version, adapter_dir = self.push()
        if state.is_world_process_zero:
            self.trainer.extra_logs.update(self.ev.run(step, version, adapter_dir))
