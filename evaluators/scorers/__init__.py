"""Every scorer in one place, as TRL reward functions: `f(completions, **columns)`.

`completions` is a list of strings or of chat message lists; each gold column is a
list aligned with it. A scorer returns one float per completion, or None where
it does not apply (the sample has no gold for it). None of them raises on odd
model output.
"""

from __future__ import annotations

from collections.abc import Callable

from .finance import finance_accuracy, finance_format_reward, finance_reward
from .gsm8k import (flexible_extract, gold_from_answer, r1_zero_answer_reward, r1_zero_extract,
                    r1_zero_format_reward, r1_zero_lenient_reward, r1_zero_reward, strict_match)
from .legal import (charge_macro_f1, lawshift_label_accuracy, lawshift_parse, legal_charge_accuracy,
                    legal_combined, legal_format_reward, legal_term_exact, legal_term_score, parse_legal)
from .math_equiv import extract_boxed, is_equiv, normalize_answer
from .probability import open_answer_reward, probability_accuracy

REWARD_FUNCS: dict[str, Callable[..., list[float | None]]] = {
    "r1_zero_format_reward": r1_zero_format_reward,
    "r1_zero_answer_reward": r1_zero_answer_reward,
    "r1_zero_reward": r1_zero_reward,
    "r1_zero_lenient_reward": r1_zero_lenient_reward,
    "strict_match": strict_match,
    "flexible_extract": flexible_extract,
    "legal_format_reward": legal_format_reward,
    "legal_charge_accuracy": legal_charge_accuracy,
    "legal_term_exact": legal_term_exact,
    "legal_term_score": legal_term_score,
    "legal_combined": legal_combined,
    "lawshift_label_accuracy": lawshift_label_accuracy,
    "finance_format_reward": finance_format_reward,
    "finance_accuracy": finance_accuracy,
    "finance_reward": finance_reward,
    "probability_accuracy": probability_accuracy,
    "open_answer_reward": open_answer_reward,
}

__all__ = [
    "REWARD_FUNCS", "charge_macro_f1", "extract_boxed", "finance_accuracy", "finance_format_reward",
    "finance_reward", "flexible_extract", "gold_from_answer", "is_equiv", "lawshift_label_accuracy",
    "lawshift_parse", "legal_charge_accuracy", "legal_combined", "legal_format_reward", "legal_term_exact",
    "legal_term_score", "normalize_answer", "open_answer_reward", "parse_legal", "probability_accuracy",
    "r1_zero_answer_reward", "r1_zero_extract", "r1_zero_format_reward", "r1_zero_lenient_reward", "r1_zero_reward",
    "strict_match",
]
