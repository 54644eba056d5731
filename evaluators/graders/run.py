"""Grading: a grader over a batch of (model sample, dataset item) cases, with OpenAI's error flags.

What a grader needs from outside (a served judge, an embedder, permission to run Python) comes in
a `GradeContext`, so this layer never talks to the gateway itself: the server's /graders/run and
the training worker pass their own clients. A case that cannot be graded scores 0 with the flag
that says why (invalid_variable_error, model_grader_parse_error, python_grader_runtime_error, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .formula import evaluate, parse_formula
from .model import judge_messages, judge_params, parse_score
from .sandbox import PythonLimits, run_python
from .template import TemplateError, render, sample_namespace
from .text import cosine, similarity, string_check
from .types import (EvalctlTaskGrader, MultiGrader, PythonGrader, ScoreModelGrader, StringCheckGrader,
                    TextSimilarityGrader)

ERROR_FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
               "model_grader_refusal_error", "model_grader_server_error", "other_error",
               "python_grader_runtime_error", "python_grader_server_error", "sample_parse_error",
               "truncated_observation_error", "unresponsive_reward_error")
ChatFn = Callable[[str, list[dict], dict], Awaitable[tuple[str, int]]]  # (model, messages, params) -> (text, tokens)
EmbedFn = Callable[[list[str]], Awaitable[list[list[float]]]]


@dataclass
class GradeContext:
    chat: ChatFn | None = None  # score_model judges
    embed: EmbedFn | None = None  # text_similarity cosine
    python: PythonLimits | None = None  # None: python graders are refused


@dataclass
class Outcome:
    score: float = 0.0
    errors: dict = field(default_factory=dict)  # flag -> True, plus *_details strings
    sub: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # judge model -> tokens used

    def fail(self, flag: str, details: str | None = None) -> "Outcome":
        self.score = 0.0
        self.errors[flag] = True
        if details is not None:
            key = {"model_grader_server_error": "model_grader_server_error_details",
                   "python_grader_runtime_error": "python_grader_runtime_error_details"}.get(flag, f"{flag}_details")
            self.errors[key] = details
        return self


def error_object(errors: dict) -> dict:
    """OpenAI's metadata.errors: every flag present, false unless raised."""
    out = {f: bool(errors.get(f)) for f in ERROR_FLAGS}
    out["model_grader_server_error_details"] = errors.get("model_grader_server_error_details")
    out["python_grader_runtime_error_details"] = errors.get("python_grader_runtime_error_details")
    out["python_grader_server_error_type"] = errors.get("python_grader_server_error_type")
    return out


def _rendered(cases: list[tuple[str, dict]], *texts: str) -> list[tuple[str, ...] | str]:
    out: list = []
    for text, item in cases:
        sample = sample_namespace(text)
        try:
            out.append(tuple(render(t, item, sample) for t in texts))
        except TemplateError as e:
            out.append(str(e))
    return out


async def _string_check(g: StringCheckGrader, cases, ctx) -> list[Outcome]:
    return [Outcome(score=string_check(g.operation, *r)) if isinstance(r, tuple)
            else Outcome().fail("invalid_variable_error", r) for r in _rendered(cases, g.input, g.reference)]


async def _text_similarity(g: TextSimilarityGrader, cases, ctx) -> list[Outcome]:
    rendered = _rendered(cases, g.input, g.reference)
    ok = [r for r in rendered if isinstance(r, tuple)]
    if g.evaluation_metric == "cosine":
        if ctx.embed is None:
            return [Outcome().fail("other_error", "cosine needs an embedding model") for _ in cases]
        try:
            vecs = await ctx.embed([t for pair in ok for t in pair]) if ok else []
        except Exception as e:  # noqa: BLE001 - the embedder's failure is these samples' error flag
            return [Outcome().fail("other_error", f"embedding failed: {type(e).__name__}: {e}") for _ in cases]
        scores = iter(cosine(vecs[2 * i], vecs[2 * i + 1]) for i in range(len(ok)))
    else:
        scores = iter(_safe(similarity, g.evaluation_metric, *r) for r in ok)
    out = []
    for r in rendered:
        if not isinstance(r, tuple):
            out.append(Outcome().fail("invalid_variable_error", r))
            continue
        score = next(scores)
        out.append(Outcome(score=score) if isinstance(score, float) else Outcome().fail("other_error", score))
    return out


def _safe(fn, *args) -> float | str:
    """The metric's value, or why it failed (a library's edge case must not fail the whole batch)."""
    try:
        return float(fn(*args))
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


async def _one_judgement(g: ScoreModelGrader, text: str, item: dict, ctx: GradeContext) -> Outcome:
    try:
        messages = judge_messages(g, item, sample_namespace(text))
    except TemplateError as e:
        return Outcome().fail("invalid_variable_error", str(e))
    try:
        reply, tokens = await ctx.chat(g.model, messages, judge_params(g))
    except Exception as e:  # noqa: BLE001 - the judge's failure is this sample's error flag, not a crash
        return Outcome().fail("model_grader_server_error", f"{type(e).__name__}: {e}")
    lo, hi = g.bounds
    score = parse_score(reply, lo, hi)
    out = Outcome(tokens={g.model: tokens})
    return out.fail("model_grader_parse_error", f"no score in {reply[:200]!r}") if score is None else \
        Outcome(score=score, tokens={g.model: tokens})


async def _score_model(g: ScoreModelGrader, cases, ctx) -> list[Outcome]:
    if ctx.chat is None:
        return [Outcome().fail("model_grader_server_error", "no judge client") for _ in cases]
    return list(await asyncio.gather(*(_one_judgement(g, t, i, ctx) for t, i in cases)))


async def _python(g: PythonGrader, cases, ctx) -> list[Outcome]:
    if ctx.python is None:
        return [Outcome().fail("python_grader_server_error", "python graders are disabled") for _ in cases]
    payload = [{"sample": sample_namespace(t), "item": i} for t, i in cases]
    results = await asyncio.to_thread(run_python, g.source, payload, ctx.python)
    return [Outcome(score=s) if err is None else Outcome().fail("python_grader_runtime_error", err)
            for s, err in results]


async def _evalctl_task(g: EvalctlTaskGrader, cases, ctx) -> list[Outcome]:
    from ..registry import TASKS

    task = TASKS.get(g.task)
    fn = task.scorers[g.scorer or task.primary]
    out = []
    for text, item in cases:
        try:
            value = fn([text], **{k: [v] for k, v in item.items() if k != "prompt"})[0]
        except Exception as e:  # noqa: BLE001 - e.g. the item lacks the column the scorer reads
            out.append(Outcome().fail("other_error", f"{g.task}.{g.scorer or task.primary}: {type(e).__name__}: {e}"))
            continue
        out.append(Outcome(score=float(value)) if value is not None else
                   Outcome().fail("sample_parse_error", "the scorer could not score this sample"))
    return out


async def _multi(g: MultiGrader, cases, ctx) -> list[Outcome]:
    names = list(g.graders)
    parts = await asyncio.gather(*(grade_batch(g.graders[n], cases, ctx) for n in names))
    tree = parse_formula(g.calculate_output, set(names))
    out = []
    for i in range(len(cases)):
        merged = Outcome(sub={n: parts[k][i].score for k, n in enumerate(names)})
        for k in range(len(names)):
            merged.errors.update({f: v for f, v in parts[k][i].errors.items() if v})
            for model, t in parts[k][i].tokens.items():
                merged.tokens[model] = merged.tokens.get(model, 0) + t
        try:
            merged.score = evaluate(tree, merged.sub)
        except (ArithmeticError, ValueError, TypeError) as e:
            merged.fail("other_error", f"calculate_output: {type(e).__name__}: {e}")
        out.append(merged)
    return out


_GRADE = {"string_check": _string_check, "text_similarity": _text_similarity, "score_model": _score_model,
          "python": _python, "evalctl_task": _evalctl_task, "multi": _multi}


async def grade_batch(grader, cases: list[tuple[str, dict]], ctx: GradeContext) -> list[Outcome]:
    """One Outcome per (output_text, item) case, in order."""
    if not cases:
        return []
    return await _GRADE[grader.type](grader, cases, ctx)
