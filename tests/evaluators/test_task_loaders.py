"""Task loaders on the real shared data (counts from each folder's SOURCE.md) and on
the LawShift fixture; skipped with a reason when the data folder is missing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from evaluators.registry import TASKS

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    from evaluators.data import data_root

    try:
        return data_root()
    except FileNotFoundError as e:
        pytest.skip(f"benchmark data not available ({e}); set EVALCTL_DATA_DIR to run loader tests")


def _check_samples(samples: list[dict]) -> None:
    ids = [s["id"] for s in samples]
    assert len(ids) == len(set(ids)), "ids must be unique"
    for s in samples:
        assert isinstance(s["prompt"], (str, list)) and s["prompt"]


def test_gsm8k(data_dir):
    samples = TASKS.get("gsm8k").load(None)
    assert len(samples) == 1319
    _check_samples(samples)
    first = samples[0]
    assert first["prompt"].startswith("A conversation between User and Assistant.")
    assert first["prompt"].endswith("\nAssistant: <think>") and "Janet" in first["prompt"]
    assert first["answer"].endswith("#### 18")
    assert len(TASKS.get("gsm8k").load(data_dir / "gsm8k" / "train.jsonl")) == 7473


def test_gsm8k_cot(data_dir):
    samples = TASKS.get("gsm8k_cot").load(None)
    assert len(samples) == 1319
    content = samples[0]["prompt"][0]["content"]
    assert samples[0]["prompt"][0]["role"] == "user"
    assert "####" in content and content.endswith("Answer: Let's think step by step.")


def test_legal_lawbench_and_original_cail(data_dir):
    task = TASKS.get("legal")
    samples = task.load(None)
    assert len(samples) == 500
    _check_samples(samples)
    assert sum(s["prison_time"] == "XT" for s in samples) == 4
    assert Counter(len(s["charge"]) for s in samples)[1] == 380
    original = task.load(data_dir / "legal" / "cail2018_sample" / "data_test.json")
    assert len(original) == 1397
    assert sum(s["prison_time"] == "XT" for s in original) == 2          # 2 life sentences, 0 death
    assert Counter(len(s["charge"]) for s in original) == {1: 1334, 2: 60, 3: 3}
    assert not any("[" in c for s in original for c in s["charge"])      # "[窝藏、包庇]" -> "窝藏、包庇"
    assert original[0]["charge"] == ["假冒注册商标"] and original[0]["prison_time"] == 6


def test_lawshift_fixture_layout():
    task = TASKS.get("legal")
    root = FIXTURES / "lawshift"
    samples = task.load(root)
    assert len(samples) == 6
    _check_samples(samples)
    by_cat = Counter(s["category"] for s in samples)
    assert by_cat == {"term_up/original": 2, "term_up/poisoned": 2, "subject_explicit_reduce/original": 1,
                      "subject_explicit_reduce/poisoned": 1}
    poisoned = next(s for s in samples if s["category"] == "term_up/poisoned")
    assert poisoned["label"] == "TU" and poisoned["split"] == "poisoned" and "charge" not in poisoned
    assert "旧法" in poisoned["prompt"][1]["content"] and "十年以上" in poisoned["prompt"][1]["content"]
    original = next(s for s in samples if s["category"] == "term_up/original")
    assert original["charge"] == ["盗窃"] and original["prison_time"] == 6
    assert len(task.load(root / "term_up")) == 4
    assert [s["split"] for s in task.load(root / "term_up" / "poisoned.json")] == ["poisoned", "poisoned"]
    scores = task.score("<answer>V | 150</answer>", poisoned)
    assert scores["lawshift_accuracy"] == 1.0 and scores["charge_accuracy"] is None


def test_finance_mix(data_dir):
    task = TASKS.get("finance")
    samples = task.load(None)
    _check_samples(samples)
    sources = Counter(s["category"].split("/")[0] for s in samples)
    assert sources == {"convfinqa": 421, "tatqa": 718, "cflue": 3864, "financeiq": 7123}
    cflue = Counter(s["category"] for s in samples if s["category"].startswith("cflue/"))
    assert cflue == {"cflue/单项选择题": 2345, "cflue/多项选择题": 1171, "cflue/判断题": 348}
    fiq = Counter(s["category"] for s in samples if s["category"].startswith("financeiq/"))
    assert fiq["financeiq/cpa"] == 1311 and fiq["financeiq/actuary_financial_math"] == 88
    assert Counter(s["answer_type"] for s in samples if s["category"] == "convfinqa")["bool"] == 3
    tatqa = task.load(data_dir / "finance" / "tatqa_dev_arithmetic_pot.jsonl")
    assert len(tatqa) == 718 and tatqa[0]["answer"] == "-12.6 million"
    assert len(task.load(data_dir / "finance" / "financeiq" / "dev")) == 50
    judge = next(s for s in samples if s["category"] == "cflue/判断题")
    assert judge["answer"] in ("对", "错") and judge["answer_type"] == "bool"


def test_finance_generic_fixture(tmp_path):
    (tmp_path / "finr1.jsonl").write_text(
        '{"id": "q1", "question": "What is 10% of 50?", "answer": 5, "answer_type": "numeric"}\n', encoding="utf-8")
    samples = TASKS.get("finance").load(tmp_path / "finr1.jsonl")
    assert [s["id"] for s in samples] == ["q1"]
    assert TASKS.get("finance").score("<think>r</think><answer>5.0</answer>", samples[0])["reward"] == 1.0


def test_probability(data_dir):
    samples = TASKS.get("probability").load(None)
    _check_samples(samples)
    sources = Counter(s["category"].split("/")[0] for s in samples)
    assert sources == {"math": 474, "theoremqa": 55}   # 19 + 16 + 24 TheoremQA items, minus 4 with pictures
    assert sum(1 for s in samples if s["category"].startswith("math/Level")) == 474
    math = samples[0]
    assert math["reference"] and "\\boxed" in math["reference"] and math["answer_type"] is None
    assert TASKS.get("probability").score(math["reference"], math)["accuracy"] == 1.0


def test_gold_completions_score_full_marks(data_dir):
    """Each task's own gold, written in its expected answer format, gets the top score."""
    gsm = TASKS.get("gsm8k").load(None)[:50]
    assert all(TASKS.get("gsm8k").score(f"r </think> <answer> {s['answer'].split('####')[-1]} </answer>", s)
               ["reward"] == 1.0 for s in gsm)
    legal = TASKS.get("legal").load(None)
    assert all(TASKS.get("legal").score(f"<answer>{';'.join(s['charge'])} | {s['prison_time']}</answer>", s)
               ["combined"] == 1.0 for s in legal)
    fin = TASKS.get("finance").load(None)[::25]
    assert all(TASKS.get("finance").score(f"<think>r</think><answer>{s['answer']}</answer>", s)["reward"] == 1.0
               for s in fin)


def _finance_near_miss(s: dict):
    """A wrong answer one step from the gold, or None where there is no obvious one."""
    gold, kind = s["answer"], s.get("answer_type")
    if kind == "bool":
        return {"对": "错", "错": "对"}.get(gold)
    if kind == "choice":
        return gold[:-1] if len(gold) > 1 else {"A": "B"}.get(gold, "A")  # one option short, or another one
    if kind == "numeric" and isinstance(gold, (int, float)):
        return round(gold * 1.1 + 1, 5)
    return None


def test_near_miss_completions_score_zero(data_dir):
    """The same answers one step off get no credit: the gold test above cannot pass by
    accepting anything."""
    gsm_task, gsm = TASKS.get("gsm8k"), TASKS.get("gsm8k").load(None)[:50]
    for s in gsm:
        gold = int(s["answer"].split("####")[-1].replace(",", ""))
        assert gsm_task.score(f"r </think> <answer> {gold + 1} </answer>", s)["reward"] == 0.0, s["id"]
        assert gsm_task.score(f"r </think>\n<answer> {gold} </answer>", s)["format_reward"] == 0.0
    legal_task = TASKS.get("legal")
    legal = [s for s in legal_task.load(None) if isinstance(s["prison_time"], int)][:100]
    for s in legal:
        # three times the term plus a year: far outside CAIL's log-distance band, where a near term still scores
        off_term = legal_task.score(f"<answer>{';'.join(s['charge'])} | {s['prison_time'] * 3 + 12}</answer>", s)
        assert off_term["term_exact"] == 0.0 and off_term["combined"] < 1.0, s["id"]
        wrong_charge = legal_task.score(f"<answer>走私毒品 | {s['prison_time']}</answer>", s)
        assert wrong_charge["charge_accuracy"] < 1.0 and wrong_charge["combined"] < 1.0, s["id"]
    fin_task = TASKS.get("finance")
    misses = [(s, _finance_near_miss(s)) for s in fin_task.load(None)[::25]]
    misses = [(s, m) for s, m in misses if m is not None]
    assert len(misses) > 400
    for s, miss in misses:
        scores = fin_task.score(f"<think>r</think><answer>{miss}</answer>", s)
        assert scores["accuracy"] == 0.0 and scores["reward"] < 1.0, (s["id"], s["answer"], miss)
