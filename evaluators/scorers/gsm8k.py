"""GSM8K scorers: Dr. GRPO's r1_zero reward and lm-evaluation-harness's filters.

`r1_zero_*` are `r1_zero_reward_fn` (sail-sg/understand-r1-zero `math_grader.py`, as
vendored in stanford-cs336 `drgrpo_grader.py`), decision for decision: see r1_grader.
`r1_zero_lenient_reward` is a looser grader of our own (the answer ends at the first
`</answer>`, units and a small set of LaTeX forms are normalised away, math_equiv
decides); its numbers are not comparable with published r1_zero ones.

`strict_match` / `flexible_extract` replicate lm-eval's `gsm8k.yaml` (version 3):
a `regex` filter (`findall`, pick `group_select`, first non-empty group of a
tuple, `strip()`, fallback "[invalid]"), then `exact_match` with
ignore_case=True, ignore_punctuation=False and regexes_to_ignore applied in
order to both prediction and reference.
"""

from __future__ import annotations

import re
from typing import Any

from ._common import per_sample
from .math_equiv import extract_boxed, is_equiv
from .r1_grader import has_r1_format, r1_answer, r1_zero_grade

STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
REGEXES_TO_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
INVALID = "[invalid]"


def gold_from_answer(answer_text: Any) -> str:
    """GSM8K's gold number: the text after the last `####`, commas removed
    (a bare number is returned as is, minus commas)."""
    if answer_text is None:
        return ""
    text = str(answer_text)
    if "####" in text:
        text = text.split("####")[-1]
    return text.strip().replace(",", "")


def r1_zero_extract(text: str) -> str | None:
    """The answer r1_zero grades, stripped: everything after the last `<answer>` with
    `</answer>` removed (so text after the closing tag is part of it), the content of
    its last `\\boxed{}` if it has one; None without `<answer>` or when that box is unclosed."""
    if not isinstance(text, str) or "<answer>" not in text:
        return None
    answer = r1_answer(text)
    return None if answer is None else answer.strip()


def _reference_gold(gold: Any) -> Any:
    return [str(g) for g in gold] if isinstance(gold, (list, tuple)) else gold


def r1_zero_format_reward(completions: list, **kwargs: Any) -> list[float | None]:
    """1.0 iff the completion contains "</think> <answer>" and "</answer>"."""
    return per_sample(completions, lambda t: float(has_r1_format(t)), kwargs, [])


def r1_zero_answer_reward(completions: list, answer: list | None = None, **kwargs: Any) -> list[float | None]:
    """1.0 iff `r1_zero_reward_fn` grades the completion correct against the gold (`answer`
    column: GSM8K's `... #### N`, a bare answer, `\\boxed{}` text, or a list of golds)."""
    kwargs["answer"] = answer
    return per_sample(completions, lambda t, g: None if g is None else r1_zero_grade(t, _reference_gold(g))[1],
                      kwargs, ["answer"])


def r1_zero_reward(completions: list, answer: list | None = None, **kwargs: Any) -> list[float | None]:
    """Dr. GRPO's reward: equal to the answer reward (0 for a formatted wrong answer)."""
    return r1_zero_answer_reward(completions, answer=answer, **kwargs)


def _lenient_correct(text: str, gold: Any) -> bool:
    if not has_r1_format(text):
        return False
    answer = text.split("<answer>")[-1].split("</answer>")[0]
    answer = extract_boxed(answer) if "\\boxed" in answer else answer.strip()
    if answer is None:
        return False
    golds = gold if isinstance(gold, (list, tuple)) else [gold]
    return any(is_equiv(answer, _lenient_gold(g)) for g in golds if g is not None)


def _lenient_gold(gold: Any) -> str:
    text = str(gold)
    if "\\boxed" in text:
        return extract_boxed(text) or text
    return gold_from_answer(text)


def r1_zero_lenient_reward(completions: list, answer: list | None = None, **kwargs: Any) -> list[float | None]:
    """Not Dr. GRPO's grader: r1_zero's format rule, then the answer up to the first
    `</answer>` graded with math_equiv (units, `$`, `72 clips` accepted)."""
    kwargs["answer"] = answer
    return per_sample(completions, lambda t, g: None if g is None else float(_lenient_correct(t, g)),
                      kwargs, ["answer"])


def regex_filter(text: str, pattern: re.Pattern[str], group_select: int = 0) -> str:
    """lm-eval's RegexFilter on one response."""
    matches = pattern.findall(text or "")
    if not matches:
        return INVALID
    match = matches[group_select]
    if isinstance(match, tuple):
        non_empty = [m for m in match if m]
        if not non_empty:
            return INVALID
        match = non_empty[0]
    return match.strip()


def exact_match(prediction: str, reference: str) -> float:
    """lm-eval's exact_match(ignore_case=True, ignore_punctuation=False, regexes_to_ignore=…)."""
    for pattern in REGEXES_TO_IGNORE:
        prediction = re.sub(pattern, "", prediction)
        reference = re.sub(pattern, "", reference)
    return float(prediction.lower() == reference.lower())


def strict_extract(text: str) -> str:
    return regex_filter(text, STRICT_RE, 0)


def flexible_extract_answer(text: str) -> str:
    return regex_filter(text, FLEXIBLE_RE, -1)


def strict_match(completions: list, answer: list | None = None, **kwargs: Any) -> list[float | None]:
    """lm-eval gsm8k "strict-match": first `#### N`, exact match against the gold."""
    kwargs["answer"] = answer
    return per_sample(completions, lambda t, g: None if g is None else exact_match(strict_extract(t), str(g)),
                      kwargs, ["answer"])


def flexible_extract(completions: list, answer: list | None = None, **kwargs: Any) -> list[float | None]:
    """lm-eval gsm8k "flexible-extract": the last number-like match, exact match against the gold."""
    kwargs["answer"] = answer
    return per_sample(completions,
                      lambda t, g: None if g is None else exact_match(flexible_extract_answer(t), str(g)),
                      kwargs, ["answer"])
