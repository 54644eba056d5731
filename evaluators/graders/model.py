"""score_model: a served model reads the grader's messages (templates filled in) and answers a
score in the grader's range (default [0, 1]).

OpenAI's judge answers with structured output; here the judge's reply is constrained by vLLM's
structured outputs to `{"result": <number>}`, and a system instruction (merged into the grader's
own first system/developer message, if any) says so and gives the range, so even a weak judge
yields a parseable number. The score is clipped to the range. Sampling defaults to temperature 0
so that the same sample gets the same score from /graders/run and from a job.
"""

from __future__ import annotations

import json
import re

from .template import render
from .types import ScoreModelGrader

RESULT_REGEX = r'\{"result": -?[0-9]{1,4}(\.[0-9]{1,4})?\}'
_RESULT = re.compile(r'"result"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?)')
DEFAULT_MAX_TOKENS = 32


def instruction(lo: float, hi: float) -> str:
    return (f"Grade the response. Reply with only a JSON object {{\"result\": <score>}} where <score> is a "
            f"number from {lo:g} (worst) to {hi:g} (best).")


def _content(content, item: dict, sample: dict) -> str:
    parts = content if isinstance(content, list) else [content]
    texts = [p if isinstance(p, str) else p.text for p in parts]
    return "\n".join(render(t, item, sample) for t in texts)


def judge_messages(grader: ScoreModelGrader, item: dict, sample: dict) -> list[dict]:
    """The chat sent to the judge; a TemplateError propagates (invalid_variable_error)."""
    lo, hi = grader.bounds
    msgs = [{"role": "system" if m.role == "developer" else m.role, "content": _content(m.content, item, sample)}
            for m in grader.input]
    if msgs[0]["role"] == "system":
        msgs[0]["content"] = f"{msgs[0]['content']}\n\n{instruction(lo, hi)}"
    else:
        msgs.insert(0, {"role": "system", "content": instruction(lo, hi)})
    return msgs


def judge_params(grader: ScoreModelGrader) -> dict:
    sp = grader.sampling_params
    params = {"temperature": 0.0, "max_tokens": DEFAULT_MAX_TOKENS, "structured_outputs": {"regex": RESULT_REGEX}}
    if sp is not None:
        if sp.temperature is not None:
            params["temperature"] = sp.temperature
        if sp.top_p is not None:
            params["top_p"] = sp.top_p
        if sp.seed is not None:
            params["seed"] = sp.seed
        if sp.max_completions_tokens is not None:
            params["max_tokens"] = sp.max_completions_tokens
    return params


def parse_score(text: str, lo: float, hi: float) -> float | None:
    """The judge's number clipped to [lo, hi]; None when the reply holds none."""
    try:
        value = json.loads(text).get("result")
    except (ValueError, AttributeError):
        m = _RESULT.search(text or "")
        value = float(m.group(1)) if m else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return min(max(float(value), lo), hi)
