"""r1_zero grading equals Dr. GRPO's `r1_zero_reward_fn` (fast mode).

Each expected value is what the reference (understand-r1-zero `math_grader.py`, as in
stanford-cs336 `drgrpo_grader.py`) returns for that input; every row was run through it,
and the comment says which of its steps decides. Near misses are the point: a grader
with any numeric tolerance, or one that drops text after `</answer>`, fails rows here.
"""

from __future__ import annotations

import re
import time

import pytest

from evaluators.scorers.gsm8k import r1_zero_answer_reward, r1_zero_extract, r1_zero_lenient_reward
from evaluators.scorers.r1_grader import mathd_normalize, r1_zero_grade, sympy_normalize


def said(answer: str) -> str:
    return f"so 9 + 63 = 72 </think> <answer> {answer} </answer>"


# (what follows "<answer> ", gold, answer reward)
TABLE = [
    # text after </answer> is graded too (everything after the last <answer>, </answer> deleted)
    ("72 </answer> extra text 55", "55", 0),
    ("50 </answer> extra text 55", "50", 0),
    ("50 </answer> 55", "5055", 1),                # spaces go: "5055"
    # no numeric tolerance on integers
    ("14401", "14400", 0),
    ("14399", "14400", 0),
    ("100001", "100000", 0),
    ("14400", "14400", 1),
    ("14,400", "14400", 1),                        # formatted commas are stripped
    ("1,0000", "10000", 0),                        # badly placed ones are not
    ("14400.0", "14400", 1),                       # a float within 1e-7 of an integer is that integer
    ("14400.00000001", "14400", 1),
    ("14400.000001", "14400", 0),
    ("72.5", "72", 0),
    ("-72", "72", 0),
    ("1e4", "10000", 1),                           # float() reads it
    ("10^4", "10000", 0),                          # an integer gold wants an integer-looking answer
    # percent: the sign is dropped, never divided by 100
    ("12%", "0.12", 0),
    ("0.12", "12\\%", 0),
    ("12%", "12", 1),
    ("12\\%", "12", 1),
    # no decimal approximations of exact answers
    ("1.41421356", "\\sqrt{2}", 0),
    ("0.333", "\\frac{1}{3}", 0),
    ("3.14", "\\pi", 0),
    ("\\pi", "3.14159", 0),
    ("\\sqrt{2}", "\\sqrt{2}", 1),
    # fractions: as written, unreduced ones are wrong
    ("1/3", "\\frac{1}{3}", 1),
    ("2/6", "\\frac{1}{3}", 0),
    ("\\frac{2}{6}", "\\frac{1}{3}", 0),
    ("0.5", "\\frac{1}{2}", 1),                    # _strip_string's one special case
    ("\\dfrac12", "\\frac{1}{2}", 1),
    ("7 3/4", "\\frac{31}{4}", 1),                 # a mixed number is a sum
    # boxes: the last \boxed{...}; \fbox only without any \boxed
    ("\\boxed{72}", "72", 1),
    ("\\boxed{7}\\boxed{72}", "72", 1),
    ("\\boxed{72", "72", 0),                       # unclosed: formatted, answer 0
    ("\\boxed 72", "72", 0),
    ("\\fbox{72}", "72", 1),                       # no \boxed: not unwrapped, but pylatexenc reads it as 72
    ("72", "\\boxed{72}", 1),
    # units: MathQA's words (mathd) and a few lengths and times (sympy) go; others stay
    ("72 feet", "72", 1),
    ("72 m", "72", 1),
    ("72 hours", "72", 1),
    ("72 \\text{ apples}", "72", 1),
    ("72 dollars", "72", 0),
    ("72 clips", "72", 0),
    ("5 million", "5000000", 0),
    # dollar signs, \text, "x =", signs, tuples, symbols
    ("$72$", "72", 1),
    ("$72.00", "72", 1),
    ("\\$72", "72", 1),
    ("\\text{72}", "72", 1),
    ("x = 72", "72", 1),
    ("- 5", "-5", 1),
    ("(1, 2)", "(1,2)", 1),
    ("(2,1)", "(1,2)", 0),
    ("[1,2]", "(1,2)", 0),
    ("x^2+2x+1", "(x+1)^2", 1),
    ("inf", "\\infty", 1),
    ("seventy-two", "72", 0),
    ("", "72", 0),
    ("\\frac{1}{0}", "1", 0),
    ("nan", "1", 0),
    # GSM8K's answer column: the gold is what follows the last ####
    ("72", "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", 1),
    ("1000", "#### 1,000", 1),
]


@pytest.mark.parametrize("answer, gold, correct", TABLE)
def test_matches_reference(answer, gold, correct):
    assert r1_zero_grade(said(answer), gold) == (1.0, float(correct))


@pytest.mark.parametrize("text, fmt", [
    ("x </think>\n<answer> 72 </answer>", 0.0),     # exactly "</think> <answer>"
    ("x </think> <answer> 72", 0.0),
    ("x <answer> 72 </answer>", 0.0),
    ("x </think> <answer> 72 </answer>", 1.0),
])
def test_format_gate(text, fmt):
    assert r1_zero_grade(text, "72") == (fmt, fmt)


def test_gold_lists_and_numbers():
    assert r1_zero_grade(said("72"), ["71", "72"]) == (1.0, 1.0)
    assert r1_zero_grade(said("72"), ["71", "73"]) == (1.0, 0.0)
    assert r1_zero_grade(said("72"), 72) == (1.0, 1.0)
    assert r1_zero_grade(said("0.5"), 0.5) == (1.0, 1.0)


@pytest.mark.parametrize("raw, mathd, sympy", [
    ("\\text{5 apples}", "5", "5apples"),        # "apple"+"s" is a MathQA unit; sympy's list has no apples
    ("72 km", "72", "72km"),
    ("3 seconds", "3", "3"),
    ("\\frac12", "\\frac{1}{2}", "1/2"),
    ("0.5", "\\frac{1}{2}", "0.5"),
    ("1,000", "1,000", "1000"),
    ("5 \\text{ cm} \\text{ m}", "5", "5m"),
    ("\\sqrt", "\\sqrt", "\\sqrt"),            # _fix_sqrt fails: mathd keeps the answer as it was
    ("\\frac", "\\frac", "%s/%s"),               # pylatexenc's rendering of a bare \frac
])
def test_normalisers(raw, mathd, sympy):
    assert mathd_normalize(raw) == mathd
    assert sympy_normalize(raw) == sympy


def test_scorer_columns_use_the_reference():
    texts = [said("14401"), said("50 </answer> extra 55"), said("72 clips"), said("72")]
    golds = ["#### 14400", "#### 55", "#### 72", "#### 72"]
    assert r1_zero_answer_reward(texts, answer=golds) == [0.0, 0.0, 0.0, 1.0]
    # the lenient grader is a different, separately named scorer
    assert r1_zero_lenient_reward(texts, answer=golds) == [0.0, 0.0, 1.0, 1.0]
    assert r1_zero_extract(said("50 </answer> extra 55")) == "50  extra 55"


@pytest.mark.parametrize("answer", ["((((9^9)^9)^9)^9)^9", "((9!)!)!", "9^9^9", "x" * 5000, "(" * 200 + "1" + ")" * 200])
def test_hostile_answers_neither_hang_nor_raise(answer):
    import sympy  # noqa: F401  (a first import takes seconds on a busy machine; not what is timed here)

    start = time.monotonic()
    assert r1_zero_grade(said(answer), "\\frac{1}{2}") == (1.0, 0.0)
    assert time.monotonic() - start < 8.0


def test_every_unit_pattern_needs_a_letter():
    """_remove_unit_words skips letterless answers on this premise."""
    from evaluators.scorers.r1_grader import _MATHQA_UNITS

    assert all(any(ch.isalpha() for ch in re.sub(r"\\.", "", u)) for u in _MATHQA_UNITS)


@pytest.mark.parametrize("gold, given", [("72", "72"), ("72", "73"), ("-5", "5"), ("0", "-0"), ("14400", "14401"),
                                         ("1" * 40, "1" * 39 + "2"), ("007", "7"), ("-007", "-7"), ("10", "010")])
def test_integer_shortcut_agrees_with_sympy(gold, given):
    """Two integer literals skip sympy; its verdict on them must be the same."""
    from evaluators.scorers.r1_grader import _elements_equal, equal_under_sympy

    assert _elements_equal(gold, given) == equal_under_sympy(gold, given)

