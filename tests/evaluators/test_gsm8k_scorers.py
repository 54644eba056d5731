from __future__ import annotations

import pytest

from evaluators.scorers.gsm8k import (flexible_extract, flexible_extract_answer, gold_from_answer,
                                      r1_zero_answer_reward, r1_zero_extract, r1_zero_format_reward,
                                      r1_zero_reward, strict_extract, strict_match)

GOLD_72 = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"


@pytest.mark.parametrize("answer, gold", [
    (GOLD_72, "72"), ("#### 1,000", "1000"), ("blah\n#### -5", "-5"), ("42", "42"), (" 3,600 ", "3600"), (None, ""),
])
def test_gold_from_answer(answer, gold):
    assert gold_from_answer(answer) == gold


# -- Dr. GRPO r1_zero ---------------------------------------------------------------------
@pytest.mark.parametrize("text, fmt, ans", [
    (" 24 + 48 = 72 </think> <answer> 72 </answer>", 1.0, 1.0),
    (" ok </think> <answer> \\boxed{72} </answer>", 1.0, 1.0),
    (" ok </think> <answer> $72.00 </answer>", 1.0, 1.0),
    (" ok </think> <answer> 72 clips. </answer>", 1.0, 0.0),   # "clips" is none of the grader's unit words
    (" ok </think> <answer> 71 </answer>", 1.0, 0.0),          # formatted but wrong: format 1, reward 0
    (" ok </think>\n<answer> 72 </answer>", 0.0, 0.0),         # the grader wants exactly one space
    (" ok </think> <answer> 72", 0.0, 0.0),                     # no closing tag
    (" ok <answer> 72 </answer>", 0.0, 0.0),                    # no </think>
    (" ok </think> <answer> \\boxed{72 </answer>", 1.0, 0.0),  # unclosed box: format holds, answer 0
    ("", 0.0, 0.0),
])
def test_r1_zero_rewards(text, fmt, ans):
    assert r1_zero_format_reward([text]) == [fmt]
    assert r1_zero_answer_reward([text], answer=[GOLD_72]) == [ans]
    assert r1_zero_reward([text], answer=[GOLD_72]) == [ans]


def test_r1_zero_gold_forms_and_chat_completions():
    chat = [[{"role": "assistant", "content": "x </think> <answer> 1,000 </answer>"}]]
    assert r1_zero_reward(chat, answer=["#### 1,000"]) == [1.0]
    assert r1_zero_reward(chat, answer=["1000"]) == [1.0]
    assert r1_zero_reward(chat, answer=[["999", "1000"]]) == [1.0]  # any of several golds
    assert r1_zero_reward(chat) == [None]                           # no gold column: not applicable


def test_negative_and_fraction_answers():
    texts = ["a </think> <answer> -5 </answer>", "a </think> <answer> \\frac{1}{2} </answer>"]
    assert r1_zero_answer_reward(texts, answer=["#### -5", "0.5"]) == [1.0, 1.0]


@pytest.mark.parametrize("text, expected", [
    ("a </think> <answer> 7 </answer>", "7"),
    ("a </think> <answer> \\boxed{\\frac{7}{2}} </answer>", "\\frac{7}{2}"),
    ("<answer>1</answer> <answer> 2 </answer>", "2"),
    ("no tags", None),
    (None, None),
])
def test_r1_zero_extract(text, expected):
    assert r1_zero_extract(text) == expected


# -- lm-eval parity ------------------------------------------------------------------------
# Expected values worked out by hand from lm-evaluation-harness (gsm8k.yaml v3, filters/extraction.py
# RegexFilter, api/metrics.py exact_match_hf_evaluate), not from this implementation:
#   strict:   findall("#### (\-?[0-9\.\,]+)")[0], strip, else "[invalid]"
#   flexible: findall("(-?[$0-9.,]{2,})|(-?[0-9]+)")[-1], first non-empty group, strip
#   exact_match: re.sub each of [",", "\$", "(?s).*#### ", "\.$"] on both, lowercase, ==
PARITY = [
    # completion,                                   gold,          strict, flexible
    (GOLD_72,                                       GOLD_72,        1, 1),
    ("The answer is 1,000.",                        "#### 1000",    0, 1),  # "1,000." -> "1000"
    ("#### $1,234.50",                              "1234.5",       0, 0),  # strict needs a digit after "#### "
    ("So she has -5 left.\n#### -5",                "-5",           1, 1),  # "-5" via the second group
    ("#### 42.",                                    "42",           1, 1),  # trailing period ignored
    ("It takes 3.5 hours, so the total is 7",       "7",            0, 1),
    ("#### 18\n#### 20",                            "18",           1, 0),  # strict first, flexible last
    ("The total is $18.00.",                        "18",           0, 0),  # "18.00" != "18"
    ("#### 5.0",                                    "5",            0, 0),
    ("",                                            "5",            0, 0),  # "[invalid]"
    ("#### 1000",                                   "x\n#### 1,000", 1, 1),  # gold commas ignored too
    ("#### 42\nThis happened in 2023.",             "42",           1, 0),  # flexible takes the year
    ("The answer is 5...",                          "5",            0, 0),  # only one "." is stripped
    ("The answer is -3.",                           "-3",           0, 1),
    ("####72",                                      "72",           0, 1),  # strict needs the space
    ("#### 1,5",                                    "15",           1, 1),  # commas vanish anywhere
    ("I have 7 apples and 10 pears.",               "10",           0, 1),
]


@pytest.mark.parametrize("text, gold, strict, flexible", PARITY)
def test_lm_eval_parity(text, gold, strict, flexible):
    assert strict_match([text], answer=[gold]) == [float(strict)]
    assert flexible_extract([text], answer=[gold]) == [float(flexible)]


@pytest.mark.parametrize("text, strict, flexible", [
    ("#### 18\n#### 20", "18", "20"),
    ("nothing", "[invalid]", "[invalid]"),
    ("costs $5, so 1,200.", "[invalid]", "1,200."),
    ("#### 72 ", "72", "72"),
])
def test_filters_extract_like_lm_eval(text, strict, flexible):
    assert strict_extract(text) == strict
    assert flexible_extract_answer(text) == flexible
