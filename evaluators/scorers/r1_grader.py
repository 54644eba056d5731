"""The decision procedure of Dr. GRPO's `r1_zero_reward_fn` (fast mode), reimplemented.

Reference: sail-sg/understand-r1-zero `math_grader.py`, vendored as stanford-cs336
assignment5 `cs336_alignment/drgrpo_grader.py` (Apache-2.0). Every step below mirrors
one of its steps, in its order and with its quirks, because a reward that differs
from the published one on a few percent of answers makes numbers incomparable:

1. answer: everything after the last `<answer>` with every `</answer>` deleted (text
   after the closing tag stays in); inside it, the last `\\boxed{...}` when there is one.
2. mathd: Hendrycks' `_strip_string` on both sides (MathQA unit words removed), then
   string equality. No numeric tolerance anywhere: 14401 is not 14400.
3. sympy: a second normalisation (LaTeX to text with pylatexenc, as the reference
   does), tuples split element-wise, fractions compared as written, integer golds
   only against integer answers, else `simplify(gold - answer) == 0`.

The unit-word list is data the decisions depend on, so it is copied in its order.
Where the reference could run for ever (sympy on towers of powers or of factorials),
this grader gives up and says "not equal": `_may_not_return`, `_too_big` and a thread
timeout; no answer that could be right is among those inputs.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ._common import true_within

SYMPY_TIMEOUT_S = 5.0
MAX_RESULT_DIGITS = 100_000  # evaluating anything larger holds the GIL for seconds

# MathQA's unit words, in the reference's order; the reference then appends each with "s".
_MATHQA_UNITS = [
    "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey",
    "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab",
    "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h", "no change", "men",
    "soldier", "pie", "bc", "excess", "st", "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre",
    "rise", "a . m", "th", "π r 2", "sq", "mark", "l", "toy", "coin", "sq . m", "gallon", "° f", "profit",
    "minw", "yr", "women", "feet", "am", "pm", "hr", "cu cm", "square", "v â € ™", "are", "rupee", "rounds",
    "cubic", "cc", "mtr", "s", "ohm", "number", "kmph", "day", "hour", "minute", "min", "second", "man",
    "woman", "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare", "more", "sec", "unit", "cu . m",
    "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter", "loss", "yard", "pure",
    "year", "increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre", "meter", "inch",
]
# The words are regexes there ("q ." matches "q x"), and so they are here.
_UNIT_RES = [re.compile(r"(^|\W)" + u + r"($|\W)") for u in _MATHQA_UNITS + [u + "s" for u in _MATHQA_UNITS]]
_SYMPY_UNITS = ["degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month",
                "year", "foot", "feet", "inch", "yard"]
_SYMPY_UNIT_RES = [re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _SYMPY_UNITS]
_TEXT_WRAPPED = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_FORMATTED_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
_BAD_REGEXES = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
_TUPLE_CHARS = "()[]"
_INT_LITERAL = re.compile(r"-?(0|[1-9][0-9]{0,999})")  # as Python parses them (no leading 0), short


class _Unnormalisable(Exception):
    """A step of `_strip_string` failed; the reference then keeps the answer as it was."""


# -- 1. the answer span -------------------------------------------------------------------

def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (else of the last `\\fbox` when there is no
    `\\boxed`), braces matched from its first `{`; None when unclosed, or when what was
    found does not read `\\boxed{...}` exactly (`\\fbox{}`, `\\boxed 5`)."""
    idx = text.rfind("\\boxed")
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                found = text[idx:i + 1]
                return found[len("\\boxed{"):-1] if found.startswith("\\boxed{") else None
    return None


def has_r1_format(response: str) -> bool:
    return "</think> <answer>" in response and "</answer>" in response


def r1_answer(response: str) -> str | None:
    """The string the reference grades: after the last `<answer>`, every `</answer>` removed,
    the box unwrapped when there is one (None when that box cannot be read)."""
    answer = response.split("<answer>")[-1].replace("</answer>", "")
    return last_boxed(answer) if "\\boxed" in answer else answer


# -- 2. mathd: Hendrycks' _strip_string ------------------------------------------------------

def _fix_fracs(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if not part:
            raise _Unnormalisable("\\frac at the end")
        if part[0] == "{":
            out += part
        elif len(part) < 2:
            return s  # the reference gives up on this step only
        elif part[1] != "{":
            out += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            out += "{" + part[0] + "}" + part[1:]
    return out


def _fix_sqrt(s: str) -> str:
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        if not part:
            raise _Unnormalisable("\\sqrt at the end")
        out += "\\sqrt" + part if part[0] == "{" else "\\sqrt{" + part[0] + "}" + part[1:]
    return out


def _fix_a_slash_b(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if s == f"{a}/{b}" else s


def _remove_unit_words(s: str) -> str:
    if not any(ch.isalpha() for ch in s):
        return s  # every unit pattern needs a letter (test_r1_grader checks): 540 regexes saved
    for _ in range(2):
        for pattern in _UNIT_RES:
            s = pattern.sub(r"\1\2", s) or s  # a substitution that empties the answer is skipped
    return s


def _strip_string(s: str) -> str:
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", s)
    s = re.sub(r"\\end\{array\}", r"\\end{pmatrix}", s).replace("bmatrix", "pmatrix")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    s = s.replace("\\left", "").replace("\\right", "")
    without_text_unit = re.sub(r"\\text\{.*?\}$", "", s).strip()
    if without_text_unit:
        s = without_text_unit
    s = _remove_unit_words(s)
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in s:
        pieces = s.split("\\text{ ")
        if len(pieces) != 2:
            raise _Unnormalisable("several \\text{ units")
        s = pieces[0]
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    if "\\sqrt" in s:
        s = _fix_sqrt(s)
    s = _fix_fracs(s.replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def mathd_normalize(answer: str | None) -> str | None:
    if answer is None:
        return None
    answer = answer.strip()
    m = _TEXT_WRAPPED.search(answer)
    if m is not None:
        answer = m.group("text").strip()
    try:
        return _strip_string(answer)
    except _Unnormalisable:
        return answer


# -- 3. the sympy path ------------------------------------------------------------------------

def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _near_int(x: float) -> bool:
    try:
        return abs(x - int(round(x))) <= 1e-7
    except (OverflowError, ValueError):  # inf, nan
        return False


def _strip_formatted_commas(s: str) -> str:
    while True:
        stripped = _FORMATTED_COMMA.sub(r"\1\3\4", s)
        if stripped == s:
            return s
        s = stripped


def _str_is_int(s: str) -> bool:
    try:
        return _near_int(float(_strip_formatted_commas(s)))
    except ValueError:
        return False


def _latex_to_text(s: str) -> str:
    from pylatexenc import latex2text

    s = s.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac")
    s = latex2text.LatexNodes2Text().latex_to_text(s)
    for symbol, name in (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*")):
        s = s.replace(symbol, name)
    return s.strip()


def sympy_normalize(s: str | None) -> str | None:
    if s is None:
        return None
    m = _TEXT_WRAPPED.search(s)
    if m is not None:
        s = m.group("text")
    s = s.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    s = s.replace(" or ", " , ").replace(" and ", " , ")
    s = s.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for pattern in _SYMPY_UNIT_RES:
        s = pattern.sub("", s)
    s = re.sub(r"\^ *\\circ", "", s)
    if s and s[0] == "{" and s[-1] == "}":
        s = s[1:-1]
    s = re.sub(r",\\! *", "", s)
    if _is_float(s) and _near_int(float(s)):
        s = str(int(round(float(s))))
    if "\\" in s:
        try:
            s = _latex_to_text(s)
        except Exception:  # the reference keeps the string when pylatexenc fails on it
            pass
    s = re.sub("- *", "-", s)
    s = re.sub("([0-9]) +([0-9])", r"\1+\2", s)  # a mixed number: 7 3/4 is 7+3/4
    s = s.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _str_is_int(s):
        s = str(int(float(s.replace(",", ""))))  # int(): truncates, as the reference does
    return s


def _split_tuple(s: str) -> list[str]:
    s = _strip_formatted_commas(s)
    if not s:
        return []
    if len(s) > 2 and s[0] in _TUPLE_CHARS and s[-1] in _TUPLE_CHARS and \
            not any(ch in s[1:-1] for ch in _TUPLE_CHARS):
        return [e.strip() for e in s[1:-1].split(",")]
    return [s]


def _allow_eval(expr: str) -> bool:
    letters = {ch for ch in expr.replace("sqrt", "").replace("frac", "") if ch.isalpha()}
    if len(letters) > 2 or "^{" in expr or "^(" in expr:
        return False
    return not any(p.search(expr) for p in _BAD_REGEXES)


def _may_not_return(expr: str) -> bool:
    """Inputs the reference's guards let through that evaluate for ever while parsing,
    before any timeout can help: nested or huge factorials, sympy functions of a number
    of 7+ digits (`ff(999999999, 999999999)`, `N(pi, 9999999)`)."""
    if "!" in expr and (expr.count("!") > 1 or re.search(r"\)\s*!|\d{5,}\s*!", expr)):
        return True
    return bool(re.search(r"[A-Za-z]\s*\(", expr) and re.search(r"\d{7,}", expr))


def _too_big(e: Any) -> bool:
    """Whether evaluating `e` (parsed unevaluated) could make a number of more than
    MAX_RESULT_DIGITS digits: `((9^9)^9)^9...` passes the reference's guards, and Python's
    big-int power then holds the GIL where no timeout can stop it."""
    def log10_bound(e: Any) -> float:  # an upper bound on log10 |value|, never below 0
        if e.is_Rational:
            return math.log10(max(abs(int(e.p)), abs(int(e.q)), 1))
        if e.is_Pow or e.func.__name__ == "factorial":
            inner = log10_bound(e.args[-1])
            if inner > 300:
                return math.inf
            if e.is_Pow:
                base = log10_bound(e.args[0])
                return base * 10 ** inner if base else 0.0
            return 10 ** inner * (inner + 1)
        if not e.args:
            return 1.0  # a symbol or constant: as if it were 10
        return sum(log10_bound(a) for a in e.args) + math.log10(len(e.args))

    return log10_bound(e) > MAX_RESULT_DIGITS


def _sympy_diff_is_zero(expr: str) -> bool:
    import sympy
    from sympy.parsing import sympy_parser

    transformations = sympy_parser.standard_transformations + (sympy_parser.implicit_multiplication_application,)
    py = expr.replace("^", "**")
    try:
        unevaluated = sympy_parser.parse_expr(py, transformations=transformations, evaluate=False)
    except Exception:
        unevaluated = None  # the evaluating parse below decides, as in the reference
    if unevaluated is not None and _too_big(unevaluated):
        return False
    return sympy.simplify(sympy_parser.parse_expr(py, transformations=transformations)) == 0


def equal_under_sympy(gold: str, given: str, timeout_s: float = SYMPY_TIMEOUT_S) -> bool:
    """`simplify((gold) - (given)) == 0` behind the reference's guards; False on any error.
    A daemon thread, not SIGALRM: scorers run in worker threads, where alarms are not ours."""
    expr = f"({gold})-({given})"
    if not _allow_eval(expr) or _may_not_return(expr):
        return False
    import sympy  # noqa: F401  (outside the timed thread: the first import takes seconds)

    return true_within(_sympy_diff_is_zero, expr, timeout_s=timeout_s, name="r1-grader-sympy")


def _elements_equal(gold: str, given: str) -> bool:
    if _FRACTION.search(gold) and _FRACTION.search(given):
        return gold == given  # an unreduced fraction is not the answer
    if _str_is_int(gold) != _str_is_int(given):
        return False  # an integer gold wants an integer answer, with no simplification
    if _INT_LITERAL.fullmatch(gold) and _INT_LITERAL.fullmatch(given):
        # sympy's simplify((a)-(b)) == 0 on two integer literals is a == b; skipping it takes
        # scoring a wrong GSM8K answer from ~5 ms to microseconds (most GRPO samples are wrong)
        return int(gold) == int(given)
    return equal_under_sympy(gold, given)


def grade_sympy(given: str, gold: str) -> bool:
    gold_n, given_n = sympy_normalize(gold), sympy_normalize(given)
    if gold_n is None:
        return False
    if gold_n == given_n:
        return True
    if not given_n:
        return False
    gold_elems, given_elems = _split_tuple(gold_n), _split_tuple(given_n)
    if len(gold_elems) > 1 and (gold_n[0] != given_n[0] or gold_n[-1] != given_n[-1]):
        return False
    if len(gold_elems) != len(given_elems):
        return False
    return all(_elements_equal(g, a) for g, a in zip(gold_elems, given_elems))


def grade(given: str, gold: str) -> bool:
    """The reference's `grade(model_answer, gt_answer, fast=True)`."""
    if "\\boxed" in gold:
        gold = last_boxed(gold)
        if gold is None:
            return False
    elif "####" in gold:  # cs336's GSM8K extension: the gold is what follows the last ####
        gold = gold.split("####")[-1].strip()
    return mathd_normalize(given) == mathd_normalize(gold) or grade_sympy(given, gold)


def r1_zero_grade(response: str, gold: Any) -> tuple[float, float]:
    """(format_reward, answer_reward) of `r1_zero_reward_fn(response, gold)`; `gold` may
    be a number, a string or a list of them (any one matching counts)."""
    if not has_r1_format(response):
        return 0.0, 0.0
    answer = r1_answer(response)
    if answer is None:
        return 1.0, 0.0
    golds = gold if isinstance(gold, list) else [gold]
    correct = any(grade(answer, str(g)) for g in golds if isinstance(g, (str, int, float)))
    return 1.0, float(correct)
