"""The contract between tasks, the runner and the trainers.

A task is data (loader), a prompt, and scorers. Scorers follow TRL's reward
convention, `f(completions, **columns) -> list[float | None]`, so a trainer can
pass them to GRPO unchanged; `None` means "not applicable / could not score".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Scorer = Callable[..., list[float | None]]
Sample = dict[str, Any]  # {"id", "prompt" (str or chat messages), "category"?, gold columns...}


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable[[Path | None], list[Sample]]  # None: the task's default data under the data root
    scorers: dict[str, Scorer]  # per-sample field name -> scorer
    extract: Callable[[str], str | None] = lambda text: None  # the answer as the results file shows it
    summary_names: dict[str, str] = field(default_factory=dict)  # per-sample field -> summary metric name
    primary: str = "reward"  # the per-sample field `compare` and trainers look at first
    sampling: dict[str, Any] = field(default_factory=dict)  # defaults: temperature, max_tokens, stop, ...
    # corpus-level metrics no per-sample mean gives (legal's charge macro-F1): results records -> {name: value}
    corpus: Callable[[list[dict]], dict[str, float]] | None = None

    def score(self, completion: str, sample: Sample) -> dict[str, float | None]:
        columns = {k: [v] for k, v in sample.items() if k != "prompt"}
        return {name: fn([completion], **columns)[0] for name, fn in self.scorers.items()}
