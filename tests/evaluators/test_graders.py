"""Each grader type on cases that pass, near misses that must not, and bad graders that must be
refused with the field named. No server: score_model's judge and cosine's embedder are plain
async functions here (the served ones are tested in tests/server/test_rft.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from evaluators.graders import GradeContext, GraderError, PythonLimits, error_object, grade_batch, parse_grader
from evaluators.graders.model import parse_score

OUT = "{{sample.output_text}}"


def grade(spec: dict, cases: list[tuple[str, dict]], ctx: GradeContext | None = None):
    return asyncio.run(grade_batch(parse_grader(spec), cases, ctx or GradeContext()))


def scores(spec, cases, ctx=None) -> list[float]:
    return [o.score for o in grade(spec, cases, ctx)]


def check(op: str, ref: str = "{{item.answer}}") -> dict:
    return {"type": "string_check", "name": "c", "input": OUT, "reference": ref, "operation": op}


@pytest.mark.parametrize("op,text,want", [
    ("eq", "Paris", 1.0), ("eq", "Paris ", 0.0), ("eq", "paris", 0.0),
    ("ne", "Paris", 0.0), ("ne", "paris", 1.0),
    ("like", "It is Paris.", 1.0), ("like", "It is paris.", 0.0), ("like", "Pari", 0.0),
    ("ilike", "It is PARIS.", 1.0), ("ilike", "It is Pari s.", 0.0),
])
def test_string_check_operations(op, text, want):
    assert scores(check(op), [(text, {"answer": "Paris"})]) == [want]


def test_templates_reach_nested_item_fields_and_json_samples():
    spec = check("eq", "{{ item.gold.answers[1] }}")
    assert scores(spec, [("b", {"gold": {"answers": ["a", "b"]}}), ("a", {"gold": {"answers": ["a", "b"]}})]) == [1, 0]
    js = {"type": "string_check", "name": "j", "input": "{{sample.output_json.city}}", "reference": "Paris",
          "operation": "eq"}
    assert scores(js, [('{"city": "Paris"}', {}), ('{"city": "Rome"}', {})]) == [1.0, 0.0]
    missing = grade(check("eq"), [("Paris", {"other": 1})])[0]
    assert missing.score == 0.0 and error_object(missing.errors)["invalid_variable_error"]
    assert not error_object(missing.errors)["other_error"]


@pytest.mark.parametrize("metric", ["fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_l"])
def test_text_similarity_orders_exact_near_and_unrelated(metric):
    spec = {"type": "text_similarity", "name": "s", "input": OUT, "reference": "{{item.ref}}",
            "evaluation_metric": metric}
    ref = "the quick brown fox jumps over the lazy dog"
    exact, near, far = scores(spec, [(ref, {"ref": ref}), ("the quick brown fox jumped over a lazy dog", {"ref": ref}),
                                     ("completely different words here", {"ref": ref})])
    assert exact == pytest.approx(1.0)
    assert 0.0 < near < 1.0 and far < near
    assert far < 0.5  # character-level fuzzy matching still finds shared letters


def test_cosine_uses_the_embedder():
    async def embed(texts):
        return [[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts]

    spec = {"type": "text_similarity", "name": "s", "input": OUT, "reference": "a cat", "evaluation_metric": "cosine"}
    assert scores(spec, [("cat!", {}), ("dog!", {})], GradeContext(embed=embed)) == [1.0, 0.0]


def test_multi_formula_and_sub_rewards():
    spec = {"type": "multi", "name": "m", "calculate_output": "0.25 * exact + 0.75 * max(fuzzy, 0.5) ^ 2",
            "graders": {"exact": check("eq"),
                        "fuzzy": {"type": "text_similarity", "name": "f", "input": OUT, "reference": "{{item.answer}}",
                                  "evaluation_metric": "fuzzy_match"}}}
    hit, miss = grade(spec, [("Paris", {"answer": "Paris"}), ("xyz", {"answer": "Paris"})])
    assert hit.score == pytest.approx(1.0) and hit.sub == {"exact": 1.0, "fuzzy": 1.0}
    assert miss.sub["exact"] == 0.0 and miss.score == pytest.approx(0.75 * max(miss.sub["fuzzy"], 0.5) ** 2)
    div = {**spec, "calculate_output": "exact / fuzzy"}
    zero = grade(div, [("", {"answer": "Paris"})])[0]  # fuzzy 0: the division fails, the sample scores 0
    assert zero.score == 0.0 and zero.errors["other_error"]


@pytest.mark.parametrize("formula,why", [
    ('__import__("os").system("true")', "only these functions"), ("exact.real", "Attribute"),
    ("exact + missing", "'missing' is not one of"), ("(lambda: 1)()", "only these functions"),
    ("exact +", "does not parse"), ("exact if 1 else 0", "IfExp"), ("9 ** 9 ** 9", None),
])
def test_formula_refuses_what_is_not_arithmetic(formula, why):
    spec = {"type": "multi", "name": "m", "calculate_output": formula, "graders": {"exact": check("eq")}}
    if why is None:  # parses, but a huge power is an error at grading, not a hang
        t0 = time.perf_counter()
        out = grade(spec, [("x", {"answer": "x"})])[0]
        assert out.score == 0.0 and time.perf_counter() - t0 < 1.0
        return
    with pytest.raises(GraderError) as e:
        parse_grader(spec)
    assert e.value.param == "grader.calculate_output" and why in e.value.message


def test_evalctl_task_grader_is_gsm8k_r1_zero():
    spec = {"type": "evalctl_task", "name": "r1", "task": "gsm8k", "scorer": "reward"}
    good = "</think> <answer> 72 </answer>"
    assert scores(spec, [(good, {"answer": "72"}), ("</think> <answer> 71 </answer>", {"answer": "72"}),
                         ("72", {"answer": "72"})]) == [1.0, 0.0, 0.0]
    fmt = {**spec, "scorer": "format_reward"}
    assert scores(fmt, [("</think> <answer> 71 </answer>", {"answer": "72"})]) == [1.0]
    no_col = grade(spec, [(good, {"question": "?"})])[0]
    assert no_col.score == 0.0 and no_col.errors


def test_score_model_messages_range_and_parse():
    seen = []

    async def chat(model, messages, params):
        seen.append((model, messages, params))
        return ('{"result": 7.5}' if "good" in messages[-1]["content"] else "no idea"), 11

    spec = {"type": "score_model", "name": "j", "model": "judge", "range": [0, 10],
            "input": [{"role": "developer", "content": "Be strict."},
                      {"role": "user", "content": "Q: {{item.q}} A: " + OUT}]}
    good, bad = grade(spec, [("good", {"q": "2+2"}), ("meh", {"q": "2+2"})], GradeContext(chat=chat))
    assert good.score == 7.5 and good.tokens == {"judge": 11} and not good.errors
    assert bad.score == 0.0 and bad.errors["model_grader_parse_error"]
    model, messages, params = seen[0]
    assert model == "judge" and messages[0]["role"] == "system" and "Be strict." in messages[0]["content"]
    assert "from 0 (worst) to 10 (best)" in messages[0]["content"] and messages[1]["content"] == "Q: 2+2 A: good"
    assert params["temperature"] == 0.0 and "regex" in params["structured_outputs"]
    assert parse_score('{"result": 12}', 0, 10) == 10 and parse_score('{"result": -1}', 0, 1) == 0
    assert parse_score('{"result": true}', 0, 1) is None


def test_python_grader_runs_limited(monkeypatch):
    monkeypatch.setenv("EVALCTL_SECRET_FOR_TEST", "x")
    limits = PythonLimits(timeout=2.0, memory_mb=256)
    src = "def grade(sample, item):\n    return float(sample['output_text'].strip() == item['answer'])\n"
    spec = {"type": "python", "name": "p", "source": src}
    assert scores(spec, [("4", {"answer": "4"}), ("5", {"answer": "4"})], GradeContext(python=limits)) == [1.0, 0.0]
    refused = grade(spec, [("4", {"answer": "4"})])[0]
    assert refused.errors["python_grader_server_error"]
    slow = {**spec, "source": "def grade(sample, item):\n    while True:\n        pass\n"}
    t0 = time.perf_counter()
    out = grade(slow, [("4", {})], GradeContext(python=limits))[0]
    assert out.errors["python_grader_runtime_error"] and time.perf_counter() - t0 < 10
    greedy = {**spec, "source": "def grade(sample, item):\n    x = bytearray(1 << 30)\n    return 1.0\n"}
    out = grade(greedy, [("4", {})], GradeContext(python=limits))[0]
    assert out.score == 0.0 and "memory" in out.errors["python_grader_runtime_error_details"]
    env = {**spec, "source": "import os\ndef grade(sample, item):\n    return float('EVALCTL_SECRET_FOR_TEST' in os.environ)\n"}
    assert scores(env, [("x", {})], GradeContext(python=limits)) == [0.0]  # the server's secrets are not there


@pytest.mark.parametrize("spec,param", [
    ({"type": "string_check", "name": "c", "input": OUT, "reference": "x", "operation": "contains"}, "grader.operation"),
    ({"type": "string_check", "name": "c", "input": "{{ answer }}", "reference": "x", "operation": "eq"},
     "grader.input"),
    ({"type": "text_similarity", "name": "s", "input": OUT, "reference": "x", "evaluation_metric": "rouge_9"},
     "grader.evaluation_metric"),
    ({"type": "score_model", "name": "j", "model": "m", "input": [], "range": [0, 1]}, "grader.input"),
    ({"type": "score_model", "name": "j", "model": "m", "input": [{"role": "user", "content": "x"}],
      "range": [1, 1]}, "grader.range"),
    ({"type": "python", "name": "p", "source": "def grad(sample, item): return 1"}, "grader.source"),
    ({"type": "evalctl_task", "name": "t", "task": "gsm8k", "scorer": "rewards"}, "grader.scorer"),
    ({"type": "multi", "name": "m", "calculate_output": "a", "graders": {"a": {"type": "string_check", "name": "a",
      "input": OUT, "reference": "x", "operation": "eqq"}}}, "grader.graders.a.operation"),
    ({"type": "label_model", "name": "l"}, "grader.type"),
    ({"name": "x"}, "grader.type"),
])
def test_bad_graders_name_the_field(spec, param):
    with pytest.raises(GraderError) as e:
        parse_grader(spec)
    assert e.value.param == param, e.value.message
