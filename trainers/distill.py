"""`evalctl distill`: teacher chain-of-thought through the endpoint, filtered and split.

1. the teacher answers each question as `<think>…</think><answer>…</answer>`;
2. rule filter: that exact shape, and the answer equals the gold one;
3. judge filter (optional): a judge served by the endpoint grades the reply, kept when
   its mean rubric score (1-10) reaches the threshold;
4. the kept samples are split train:test = (1 - f):f, stratified by category; train is written
   twice, as `sft.jsonl` (teacher CoT as the completion) and `rl.jsonl` (question + gold
   answer, for reward-based training); held-out questions go to `test.jsonl`.
`filter_stats.json` counts what each stage dropped.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .config import DistillSettings
from .data import read_rows, write_jsonl
from .endpoint import Endpoint
from .errors import DataError, EndpointError

SYSTEM = ("Solve the problem. First reason step by step inside <think> </think>, then give only the final "
          "answer inside <answer> </answer>. Reply exactly as: <think>reasoning</think><answer>answer</answer>")
COT_RE = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)
QUESTION_KEYS = ("question", "prompt", "problem", "instruction", "query")
ANSWER_KEYS = ("answer", "gold", "final_answer", "solution", "output", "label")
TASK_COLUMNS = ("answer_type", "choices")  # what the finance/probability scorers read beside the answer


def read_questions(path: Path, limit: int | None = None) -> list[dict]:
    out = []
    for i, (where, rec) in enumerate(read_rows(path)):
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object")
        q = next((rec[k] for k in QUESTION_KEYS if isinstance(rec.get(k), str) and rec[k].strip()), None)
        a = next((rec[k] for k in ANSWER_KEYS if rec.get(k) is not None), None)
        if q is None or a is None:
            raise DataError(f"{where}: needs a question ({'/'.join(QUESTION_KEYS)}) "
                            f"and an answer ({'/'.join(ANSWER_KEYS)})")
        out.append({"id": str(rec.get("id", f"q{i}")), "question": q, "answer": a,
                    "category": str(rec.get("category") or rec.get("type") or rec.get("subject") or "all")})
    return out[:limit] if limit else out


def task_questions(task_name: str, data: Path | None, limit: int | None = None) -> list[dict]:
    """The questions of an evaluator task: its prompt's last user turn (with the task's context and
    answer instructions), gold answer and category, plus the columns its scorers read."""
    from .tasks import get_task, load_samples

    out = []
    for s in load_samples(get_task(task_name), data, limit):
        prompt = s["prompt"]
        question = prompt if isinstance(prompt, str) else next(
            (m["content"] for m in reversed(prompt) if m.get("role") == "user"), "")
        extra = {k: s[k] for k in TASK_COLUMNS if s.get(k) is not None}
        out.append({"id": str(s["id"]), "question": question, "answer": s.get("answer"),
                    "category": str(s.get("category") or "all"), **extra})
    return out


def teacher_messages(question: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def answers_match(pred: str, gold: Any) -> bool:
    from evaluators.scorers.gsm8k import gold_from_answer
    from evaluators.scorers.math_equiv import is_equiv

    gold_text = gold_from_answer(gold) if isinstance(gold, str) and "####" in gold else str(gold)
    if is_equiv(pred.strip(), gold_text):
        return True
    norm = lambda s: re.sub(r"\s+", " ", s).strip().strip(".").lower()  # noqa: E731
    return norm(pred) == norm(gold_text)


def rule_check(text: str, gold: Any) -> str | None:
    """None when the reply passes, else why it failed ('format' or 'answer')."""
    m = COT_RE.match(text or "")
    if not m:
        return "format"
    return None if answers_match(m.group(2), gold) else "answer"


def judge_value(verdict: dict) -> float | None:
    """Mean of the judge's rubric scores (1-10); None when it could not be read."""
    from evaluators.judge import FIELDS

    if verdict.get("error") or verdict.get("parse_error"):
        return None
    vals = [verdict[f] for f in FIELDS if isinstance(verdict.get(f), (int, float))]
    return sum(vals) / len(vals) if vals else None


def stratified_split(items: list[dict], test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Per-category shuffles; the test total is round(N * f), shared out by largest remainder."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for it in items:
        groups[it["category"]].append(it)
    rng = random.Random(seed)
    for key in sorted(groups):
        rng.shuffle(groups[key])
    quotas = {k: len(v) * test_fraction for k, v in groups.items()}
    n_test = {k: math.floor(q) for k, q in quotas.items()}
    left = round(len(items) * test_fraction) - sum(n_test.values())
    for k in sorted(quotas, key=lambda k: (n_test[k] - quotas[k], k))[:max(left, 0)]:
        n_test[k] += 1
    train, test = [], []
    for k in sorted(groups):
        test += groups[k][:n_test[k]]
        train += groups[k][n_test[k]:]
    return train, test


async def _teach(endpoint: Endpoint, cfg: DistillSettings, questions: list[dict]) -> list[dict]:
    from evaluators.judge import judge_completion

    judge_model = cfg.judge_model or cfg.teacher
    async with endpoint.client() as client:
        gens = await client.generate_many(cfg.teacher, [teacher_messages(q["question"]) for q in questions],
                                          n=cfg.n, cache=False, progress="teacher", temperature=cfg.temperature,
                                          top_p=cfg.top_p, max_tokens=cfg.max_tokens)
        if gens and all(g.error for g in gens):
            raise EndpointError(f"every request to teacher {cfg.teacher!r} failed: {gens[0].error}")
        results = []
        for q, g in zip(questions, gens):
            r = {**q, "error": g.error, "texts": g.texts, "reasons": [rule_check(t, q["answer"]) for t in g.texts]}
            r["pick"] = next((i for i, why in enumerate(r["reasons"]) if why is None), None)
            results.append(r)
        if cfg.judge:
            picked = [r for r in results if r["pick"] is not None]
            verdicts = await asyncio.gather(*(judge_completion(
                client, judge_model, r["question"], r["texts"][r["pick"]], {"answer": r["answer"]},
                constrained=cfg.judge_constrained) for r in picked))
            for r, v in zip(picked, verdicts):
                r["judge"] = judge_value(v)
    return results


def filter_results(results: list[dict], cfg: DistillSettings) -> tuple[list[dict], dict]:
    drop: Counter = Counter()
    kept = []
    for r in results:
        if r["error"] or not r["texts"]:
            drop["request_error"] += 1
        elif r["pick"] is None:
            drop["format" if all(w == "format" for w in r["reasons"]) else "answer"] += 1
        elif cfg.judge and r.get("judge") is None:
            drop["judge_unreadable"] += 1
        elif cfg.judge and r["judge"] < cfg.judge_threshold:
            drop["judge_below_threshold"] += 1
        else:
            kept.append(r)
    stats = {"questions": len(results), "kept": len(kept), "dropped": dict(drop),
             "rule_pass": sum(1 for r in results if r["pick"] is not None),
             "judge": cfg.judge, "judge_model": (cfg.judge_model or cfg.teacher) if cfg.judge else None,
             "judge_threshold": cfg.judge_threshold if cfg.judge else None}
    return kept, stats


def write_splits(out: Path, kept: list[dict], cfg: DistillSettings, stats: dict) -> dict:
    train, test = stratified_split(kept, cfg.test_fraction, cfg.seed)
    sft = [{"id": r["id"], "category": r["category"], "prompt": teacher_messages(r["question"]),
            "completion": [{"role": "assistant", "content": r["texts"][r["pick"]]}]} for r in train]
    # `question` as well as `prompt`: the rows load back as a task's --data (finance's generic layout)
    plain = lambda r: {"id": r["id"], "category": r["category"], "prompt": r["question"],  # noqa: E731
                       "question": r["question"], "answer": r["answer"],
                       **{k: r[k] for k in TASK_COLUMNS if k in r}}
    write_jsonl(out / "sft.jsonl", sft)
    write_jsonl(out / "rl.jsonl", [plain(r) for r in train])
    write_jsonl(out / "test.jsonl", [{**plain(r), "reference": r["texts"][r["pick"]]} for r in test])
    stats["split"] = {"sft": len(sft), "rl": len(train), "test": len(test), "test_fraction": cfg.test_fraction,
                      "by_category": {c: {"train": sum(r["category"] == c for r in train),
                                          "test": sum(r["category"] == c for r in test)}
                                      for c in sorted({r["category"] for r in kept})}}
    (out / "filter_stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def run_distill(cfg: DistillSettings, endpoint: Endpoint) -> dict:
    if cfg.task:
        questions = task_questions(cfg.task, cfg.data, cfg.limit)
    elif cfg.data is None:
        raise DataError("distill needs --data (a question file) or --task (an evaluator task's questions)")
    else:
        questions = read_questions(cfg.data, cfg.limit)
    results = asyncio.run(_teach(endpoint, cfg, questions))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "teacher_raw.jsonl", [{k: r.get(k) for k in ("id", "category", "question", "answer", "texts",
                                                                     "reasons", "judge", "error")} for r in results])
    kept, stats = filter_results(results, cfg)
    return write_splits(out, kept, cfg, stats)
