"""`distill --task`: questions read through an evaluator task (its prompt text, gold, category),
and the split files load back as that task's --data (the fin-r1 recipe evaluates on test.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

from evaluators.registry import TASKS
from trainers.config import DistillSettings
from trainers.distill import filter_results, rule_check, task_questions, write_splits

from .conftest import run_cli

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "finance.jsonl"


def test_task_questions_keep_category_and_scorer_columns():
    qs = task_questions("finance", TINY)
    assert len(qs) == 10 and {q["category"] for q in qs} == {"convfinqa", "tatqa", "cflue", "financeiq"}
    assert all(q["answer_type"] == "numeric" and "Revenue was" in q["question"] for q in qs)


def test_split_rows_load_back_as_the_task(tmp_path):
    qs = task_questions("finance", TINY)
    results = [{**q, "error": None, "texts": [f"<think>x</think><answer>{q['answer']}</answer>"], "pick": 0,
                "reasons": [None], "judge": 7.0} for q in qs]
    cfg = DistillSettings(teacher="t", task="finance", data=TINY, out=tmp_path, judge_threshold=6.0)
    kept, stats = filter_results(results, cfg)
    write_splits(tmp_path, kept, cfg, stats)
    test = TASKS.get("finance").load(tmp_path / "test.jsonl")
    assert len(test) == 2 and {s["category"] for s in test} <= {"convfinqa", "tatqa", "cflue", "financeiq"}
    scored = TASKS.get("finance").score(f"<think>x</think><answer>{test[0]['answer']}</answer>", test[0])
    assert scored["accuracy"] == 1.0
    assert rule_check(results[0]["texts"][0], qs[0]["answer"]) is None


def test_distill_needs_data_or_task(tmp_path):
    r = run_cli("distill", "--teacher", "t", "--out", tmp_path, "--base-url", "http://127.0.0.1:9", ok=False)
    assert r.exit_code == 1 and "distill needs --data (a question file) or --task" in r.output
    assert "Traceback" not in r.output
