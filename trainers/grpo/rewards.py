"""The task's scorers and the judge as TRL reward functions.

TRL calls each reward function with the decoded completions and every dataset column; it weighs
and sums them (GRPOConfig.reward_weights) and logs each one's mean as `rewards/NAME/mean`. The
wrappers here also keep the step's values and scoring time for the telemetry (TRL logs neither
the maximum reward nor how long scoring took).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from evaluators.task import Task

from ..endpoint import BackgroundLoop
from ..errors import TrainError

TRL_KWARGS = ("prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")


@dataclass
class StepRewards:
    """Per-function values of the rollouts scored since the last log, and the seconds spent."""
    weights: dict[str, float]
    values: dict[str, list[float | None]] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, name: str, values: list, seconds: float) -> None:
        self.values.setdefault(name, []).extend(values)
        self.seconds += seconds

    def pop(self) -> dict[str, float]:
        """reward_max of the weighted sum (None counts 0, as TRL's nansum) and time_scoring; then reset."""
        cols = [[0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in vals]
                for vals in self.values.values()]
        w = [self.weights[n] for n in self.values]
        totals = [sum(wi * c[i] for wi, c in zip(w, cols)) for i in range(min(map(len, cols)))] if cols else []
        out = {"time_scoring": self.seconds}
        if totals:
            out["reward_max"] = max(totals)
        self.values, self.seconds = {}, 0.0
        return out


def scorer_reward(name: str, fn: Callable, log: StepRewards) -> Callable:
    """A task scorer as a TRL reward function named after it (TRL's log key is __name__)."""
    def reward(completions: list, **columns: Any) -> list[float | None]:
        t0 = time.perf_counter()
        cols = {k: v for k, v in columns.items() if k not in TRL_KWARGS}
        try:
            values = [None if v is None else float(v) for v in fn(completions, **cols)]
        except Exception:  # noqa: BLE001 - a scorer bug must not kill a long run; None = unscored
            values = [None] * len(completions)
        log.record(name, values, time.perf_counter() - t0)
        return values

    reward.__name__ = name
    return reward


def judge_reward(loop: BackgroundLoop, model: str, log: StepRewards, max_tokens: int = 256,
                 constrained: bool = True) -> Callable:
    """The judge's mean rubric score (1-10) mapped to 0-1; an unreadable verdict scores None."""
    from evaluators.judge import judge_completion

    from ..distill import judge_value

    def judge(completions: list, prompts: list, **_: Any) -> list[float | None]:
        t0 = time.perf_counter()

        async def all_verdicts():
            return await asyncio.gather(*(judge_completion(loop.client, model, p, c, None, max_tokens, constrained)
                                          for p, c in zip(prompts, completions)))

        vals = [judge_value(v) for v in loop.run(all_verdicts())]
        values = [None if v is None else (v - 1.0) / 9.0 for v in vals]
        log.record("judge", values, time.perf_counter() - t0)
        return values

    return judge


def reward_functions(task: Task, names_csv: str | None, weights_csv: str | None, judge_model: str | None,
                     judge_weight: float, loop: BackgroundLoop, judge_max_tokens: int = 256,
                     judge_constrained: bool = True) -> tuple[list[Callable], list[float], StepRewards]:
    names = [n.strip() for n in (names_csv or task.primary).split(",") if n.strip()]
    unknown = [n for n in names if n not in task.scorers]
    if unknown:
        raise TrainError(f"--rewards: {', '.join(unknown)} not among {task.name}'s scorers "
                         f"({', '.join(task.scorers)})")
    weights = [float(w) for w in weights_csv.split(",")] if weights_csv else [1.0] * len(names)
    if len(weights) != len(names):
        raise TrainError(f"--reward-weights has {len(weights)} values for {len(names)} rewards")
    if judge_weight > 0 and not judge_model:
        raise TrainError("--judge-weight needs --judge-model")
    log = StepRewards(dict(zip(names, weights)))
    funcs = [scorer_reward(n, task.scorers[n], log) for n in names]
    if judge_model and judge_weight > 0:
        funcs.append(judge_reward(loop, judge_model, log, judge_max_tokens, judge_constrained))
        weights.append(judge_weight)
        log.weights["judge"] = judge_weight
    return funcs, weights, log
