"""No scorer may raise on odd model output or odd gold values."""

from __future__ import annotations

import pytest

from evaluators.registry import TASKS
from evaluators.scorers import REWARD_FUNCS

ODD = ["", None, 42, 3.5, "\x00\ufffd", "🙂" * 50, "<answer>", "</think> <answer></answer>", "|" * 30,
       "\\boxed{" * 30, "{" * 500, "9^{9^{9}}", [{"role": "assistant", "content": None}], [], {"content": "x"},
       "<think>" + "a" * 20_000 + "</think><answer>1e999999</answer>"]
GOLD_COLUMNS = {"answer": ["#### 5", None, 0.12, "ABD", "对", "[1, 2]", {"weird": 1}], "charge": [["盗窃"], "盗窃;诈骗", None],
                "prison_time": [12, "XT", None, -1, "abc"], "label": ["TU", "NV", "V | 7", "??", None],
                "split": ["original", None], "answer_type": ["numeric", "choice", "bool", "float", "list of integer",
                                                             "option", "nonsense", None],
                "reference": ["Step 1: $x^2$", None, ""], "choices": [{"A": "对"}, "garbage", None]}


@pytest.mark.parametrize("name", sorted(REWARD_FUNCS))
def test_scorers_never_raise(name):
    fn = REWARD_FUNCS[name]
    for gold_name, golds in GOLD_COLUMNS.items():
        for gold in golds:
            out = fn(ODD, **{gold_name: [gold] * len(ODD)}, extra_column=list(range(len(ODD))))
            assert len(out) == len(ODD)
            assert all(v is None or 0.0 <= v <= 1.0 for v in out), (name, gold_name, gold, out)
    assert fn([]) == []


@pytest.mark.parametrize("name", TASKS.names())
def test_extractors_never_raise(name):
    """An answer is a string taken from the text, or None; nothing is found in nothing."""
    extract = TASKS.get(name).extract
    for text in ODD:
        if isinstance(text, str) or text is None:
            got = extract(text)
            assert got is None or (isinstance(got, str) and len(got) <= len(text)), (name, text, got)
    assert extract("") is None and extract(None) is None
