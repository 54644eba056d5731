"""Math answer normalisation and equivalence.

In the style of the MATH `is_equiv` (Hendrycks' `_strip_string`): normalise both
strings, compare them, then compare them as exact numbers, then (guarded) with sympy.
More lenient than Dr. GRPO's grader in what it normalises away (units, `$`, `72 clips`),
never in what it calls equal: numbers must be exactly equal (14401 is not 14400, 1.4142
is not sqrt(2), 12% is not 0.12), as in that grader; r1_grader is that grader itself.
`sympy.parsing.latex` needs antlr, so a small LaTeX-to-Python rewrite feeds `parse_expr`.
Nothing here raises or hangs on odd model output.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from ._common import true_within

SYMPY_TIMEOUT_S = 2.0
MAX_SYMPY_CHARS = 120

_UNIT_WORDS = (
    "dollars?|cents?|units?|degrees?|percent|points?|inches|inch|feet|foot|ft|miles?|mph|meters?|metres?|"
    "cm|mm|km|kg|grams?|g|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|ways|"
    "people|students|apples|cookies|marbles|pounds?|lbs?|liters?|litres?|gallons?|sq|square|cubic"
)
_TRAILING_UNITS = re.compile(rf"(?<=[\d}}])\s*(?:{_UNIT_WORDS})\.?(?:\^?\{{?[23]\}}?)?\s*$", re.IGNORECASE)
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_COMMA_NUMBER = re.compile(r"(\d),(\d{3})(?=$|\D)")
_SAFE_NAMES = {"sqrt", "pi", "oo", "E", "I", "log", "ln", "exp", "sin", "cos", "tan"}


def extract_boxed(text: Any) -> str | None:
    """Content of the last `\\boxed{…}` / `\\fbox{…}` (nested braces kept), or of
    `\\boxed 5`; None when there is no box or it is unclosed."""
    if not isinstance(text, str):
        return None
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    rest = text[idx + (6 if text.startswith("\\boxed", idx) else 5):]
    if rest.startswith(" ") and not rest.lstrip().startswith("{"):
        m = re.match(r"\s+([^\s$]+)", rest)
        return m.group(1) if m else None
    start = rest.find("{")
    if start < 0 or rest[:start].strip():
        return None
    depth = 0
    for i in range(start, len(rest)):
        depth += {"{": 1, "}": -1}.get(rest[i], 0)
        if depth == 0:
            return rest[start + 1:i].strip()
    return None


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    return re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)


def _unwrap_text(s: str) -> str:
    for _ in range(3):
        s2 = _TEXT_CMD.sub(r"\1", s)
        if s2 == s:
            break
        s = s2
    return s


def normalize_answer(s: Any) -> str:
    """A canonical string for an answer (MATH `_strip_string` style)."""
    if s is None:
        return ""
    s = str(s).strip()
    if "\\boxed" in s or "\\fbox" in s:
        s = extract_boxed(s) or s
    s = s.replace("\n", " ").replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", " ")
    s = s.replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s).replace("°", "")
    s = _unwrap_text(s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.strip().rstrip(".").strip()
    s = _TRAILING_UNITS.sub("", s).strip()
    m = re.fullmatch(r"(-?[\d.,]+)\s+[A-Za-z][A-Za-z ]{0,30}", s)
    if m:  # "72 clips": a number followed by plain words (units the list above misses)
        s = m.group(1).rstrip(".")
    if len(s.split("=")) == 2 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1]  # "x = 5" -> "5"
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    while _COMMA_NUMBER.search(s):
        s = _COMMA_NUMBER.sub(r"\1\2", s)
    s = _fix_fracs(s)
    if re.fullmatch(r"-?\d+/\d+", s):
        num, den = s.split("/")
        s = f"\\frac{{{num}}}{{{den}}}" if not num.startswith("-") else f"-\\frac{{{num[1:]}}}{{{den}}}"
    if s.startswith("."):
        s = "0" + s
    s = s.replace("-.", "-0.").replace("{.", "{0.")
    return s.rstrip(".")


def to_number(s: str) -> Fraction | None:
    """An exact number from a normalised answer: ints, decimals, \\frac{a}{b}, a/b."""
    s = s.strip()
    neg = s.startswith("-")
    body = s[1:] if neg else s
    try:
        m = re.fullmatch(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", body) or re.fullmatch(r"(-?[\d.]+)/(-?[\d.]+)", body)
        if m:
            value = Fraction(m.group(1)) / Fraction(m.group(2))
        elif re.fullmatch(r"\d+(\.\d*)?|\.\d+", body):
            value = Fraction(body)
        else:
            return None
    except (ValueError, ZeroDivisionError):
        return None
    return -value if neg else value


def is_equiv(pred: Any, gold: Any) -> bool:
    """Whether a predicted answer equals the gold one (strings, numbers, then sympy)."""
    try:
        if pred is None or gold is None:
            return False
        p, g = normalize_answer(pred), normalize_answer(gold)
        if not p or not g:
            return False
        if p == g or p.lower() == g.lower():
            return True
        pv, gv = to_number(p), to_number(g)
        if pv is not None and gv is not None:
            return pv == gv  # exact Fractions: no tolerance, and a stripped % never divides by 100
        if _tuple_equiv(p, g):
            return True
        return sympy_equal(p, g)
    except Exception:
        return False


def _tuple_equiv(p: str, g: str) -> bool:
    """(1,2) against (1, 2.0): same brackets, element-wise equivalence."""
    if len(g) < 3 or g[0] not in "([" or g[-1] not in ")]" or "," not in g:
        return False
    if p[:1] != g[:1] or p[-1:] != g[-1:]:
        return False
    pe, ge = p[1:-1].split(","), g[1:-1].split(",")
    return len(pe) == len(ge) and all(is_equiv(a, b) for a, b in zip(pe, ge))


def _latex_to_python(s: str) -> str | None:
    """A LaTeX answer as a Python-syntax expression, or None if it has anything else."""
    for _ in range(5):  # innermost-first rewrite of brace groups
        s2 = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        s2 = re.sub(r"\\sqrt\[([^\]]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", s2)
        s2 = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s2)
        s2 = re.sub(r"\\binom\{([^{}]*)\}\{([^{}]*)\}", r"binomial(\1,\2)", s2)
        if s2 == s:
            break
        s = s2
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/").replace("\\pi", "pi")
    s = s.replace("\\infty", "oo").replace("\\ln", "log").replace("\\log", "log").replace("^", "**")
    s = s.replace("{", "(").replace("}", ")")
    if "\\" in s or not re.fullmatch(r"[0-9a-zA-Z+\-*/().,\s]*", s):
        return None
    names = set(re.findall(r"[A-Za-z]{2,}", s)) - _SAFE_NAMES - {"binomial"}
    return None if names else s


_SIMPLE_EXPONENT = re.compile(
    r"\*\*\s*(?:\(\s*)*(?:-?\d{1,2}(?![\d.])|[a-zA-Z](?![a-zA-Z(])|1\s*/\s*\(?\d{1,2}\)?)(?![\s)]*\*\*)")


def _risky(expr: str) -> bool:
    """Inputs that could make sympy (or Python's big-int arithmetic) run for ever.

    Big-int powers hold the GIL inside C, so no thread timeout can stop them:
    they are refused up front, as the Dr. GRPO grader's BAD_REGEXES do."""
    if len(expr) > MAX_SYMPY_CHARS or re.search(r"\d{16,}|\d\.?[eE][+-]?\d{3,}", expr):
        return True  # long literals and 1e999999-style floats become huge exact numbers
    if expr.count("**") > 2 or len(_SIMPLE_EXPONENT.findall(expr)) != expr.count("**"):
        return True
    if "binomial" in expr and re.search(r"\d{5,}", expr):
        return True
    letters = re.sub(r"sqrt|binomial|pi|oo|log|ln|exp|sin|cos|tan", "", expr)
    return len(set(re.findall(r"[a-zA-Z]", letters))) > 2


def _sympy_diff_is_zero(a: str, b: str) -> bool:
    from sympy import expand, simplify
    from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                            standard_transformations)
    transformations = standard_transformations + (implicit_multiplication_application,)
    ea = parse_expr(a, transformations=transformations, evaluate=True)
    eb = parse_expr(b, transformations=transformations, evaluate=True)
    if ea == eb:
        return True
    diff = ea - eb
    if expand(diff) == 0:  # cheap, and enough for polynomials: try it before simplify
        return True
    return simplify(diff) == 0  # exact: a decimal close to an irrational answer is not it


def sympy_equal(p: str, g: str, timeout_s: float = SYMPY_TIMEOUT_S) -> bool:
    """Symbolic equality of two normalised answers; False on timeout or any error.

    Runs in a daemon thread rather than under SIGALRM: scorers are called from
    worker threads (and under pytest-timeout), where alarms are unavailable or
    already taken. The input guards keep runaway computations rare."""
    a, b = _latex_to_python(p), _latex_to_python(g)
    if a is None or b is None or _risky(a) or _risky(b):
        return False
    import sympy  # noqa: F401  (imported here, outside the timed thread: the first import is slow)

    return true_within(_sympy_diff_is_zero, a, b, timeout_s=timeout_s, name="math-equiv-sympy")
