"""Real run dirs for the results API and the web page's tests, written the way `evalctl run`
writes them: GSM8K samples scored by the task's own scorers, appended with `ResultsWriter`,
summarized by the runner's `finalize`."""

from __future__ import annotations

from pathlib import Path

from clients.client import Generation
from evaluators.records import build_record, score_texts
from evaluators.registry import TASKS
from evaluators.results import RESULTS, ResultsWriter
from evaluators.runner import RunSpec, finalize, prepare_out_dir
from evaluators.tasks.gsm8k import PROMPT


def write_run(out: Path, model: str, guesses: list[int | None], *, finish: bool = True,
              error_at: int | None = None) -> Path:
    """Question i asks i + 3; guesses[i] is the model's answer (None: no answer tags at all)."""
    task = TASKS.get("gsm8k")
    spec = RunSpec(task="gsm8k", model=model, endpoint="http://127.0.0.1:1", sampling=dict(task.sampling))
    prepare_out_dir(out, spec)
    with ResultsWriter(out / RESULTS) as writer:
        for i, guess in enumerate(guesses):
            sample = {"id": f"q{i}", "category": "small" if i < 2 else "large",
                      "prompt": PROMPT.format(question=f"Ann has {i} apples and buys 3 more. How many apples now?"),
                      "answer": f"{i} + 3 = {i + 3}\n#### {i + 3}"}
            text = f" {i} + 3 = {guess} </think> <answer> {guess} </answer>" if guess is not None else " I am not sure"
            per, score_error = score_texts(task, sample, [text])
            gen = Generation(sample["prompt"], [text], ["stop"], prompt_tokens=60, completion_tokens=14, latency=0.05,
                             error="engine timed out" if i == error_at else None)
            writer.write(build_record(task, sample, gen, per, score_error, None))
    if finish:
        finalize(out, task, spec)
    return out
