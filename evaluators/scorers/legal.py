"""CAIL2018 criminal judgment prediction and LawShift verdict scorers.

Answer layout (CAIL): `{charge} | {months}` or `{charge} | XT` (life/death), several
charges joined by `;` or `、`. LawShift: `V | {months}`, `V | XT` or `NV` (its
training prompt also allows `{charge} | {term}` and `不违规`).

A `、` is ambiguous: it separates charges ("盗窃、诈骗") but also sits inside
single CAIL charge names ("掩饰、隐瞒犯罪所得、犯罪所得收益"). Predicted pieces are
therefore regrouped against the gold names before sets are compared.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ._common import after_think, answer_tag, nfkc, per_sample

XT = "XT"
_NV_RE = re.compile(r"^(?:NV|不违规|不构成犯罪|无罪)$", re.IGNORECASE)
_SEGMENT_SPLIT = re.compile(r"[;；,，/]")
_STRICT_FORMAT = re.compile(r"^[^|]+?\s*\|\s*(?:\d+\s*(?:个月|月)?|XT)\s*$")


@dataclass(frozen=True)
class LegalAnswer:
    charges: tuple[str, ...]  # raw segments, normalised; may still hold 、-joined charges
    term: int | str | None    # months, "XT", or None when missing/unparseable
    violation: bool = True    # False for "NV" / "不违规"


def normalize_charge(name: Any) -> str:
    """盗窃罪 -> 盗窃; [窝藏、包庇] -> 窝藏、包庇; full-width to ASCII; spaces dropped."""
    s = nfkc(str(name or "")).strip()
    s = re.sub(r"^(?:罪名|charge)\s*[:：]?", "", s, flags=re.IGNORECASE)
    s = re.sub(r"[\s\[\]【】\"'“”‘’《》]", "", s)
    if len(s) > 2 and s.startswith("犯") and s.endswith("罪"):
        s = s[1:]  # "犯盗窃罪"; a bare leading 犯 belongs to names like "犯罪所得收益"
    return s[:-1] if len(s) > 1 and s.endswith("罪") else s


def parse_term(text: Any) -> int | str | None:
    """Months from '7', '7个月', '1年6个月', '2年'; 'XT' for XT/无期/死刑."""
    s = nfkc(str(text or "")).strip()
    if re.search(r"XT|无期|死刑", s, re.IGNORECASE):
        return XT
    m = re.search(r"(\d+(?:\.\d+)?)\s*年(?:\s*(\d+)\s*个?月)?", s)
    if m:
        return int(round(float(m.group(1)) * 12)) + int(m.group(2) or 0)
    m = re.search(r"\d+", s)
    return int(m.group()) if m else None


def _answer_body(text: str) -> str:
    """The final answer: <answer> content, else the last line with a `|`, else the last line."""
    tagged = answer_tag(text)
    if tagged is not None:
        return nfkc(tagged)
    lines = [ln.strip() for ln in nfkc(after_think(text)).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "|" in line:
            return line
    return lines[-1] if lines else ""


def parse_legal(text: Any) -> LegalAnswer | None:
    """Parse a judgment answer leniently; None when nothing answer-like is found."""
    body = _answer_body(str(text or "")).strip().strip("`'\"").strip()
    if not body:
        return None
    if _NV_RE.match(body):
        return LegalAnswer((), None, violation=False)
    if "|" in body:
        left, _, right = body.partition("|")
    else:
        m = re.search(r"罪名\s*[:：]\s*(.+?)\s*[,，;；\s]\s*刑期\s*[:：]\s*(.+)", body)
        if not m:
            return None
        left, right = m.group(1), m.group(2)
    charges = tuple(c for c in (normalize_charge(seg) for seg in _SEGMENT_SPLIT.split(left)) if c)
    return LegalAnswer(charges, parse_term(right))


def regroup_charges(segments: tuple[str, ...] | list[str], gold: list[str] | None = None) -> list[str]:
    """Split 、-joined predicted segments into charges, keeping runs that form a gold name."""
    known = {normalize_charge(g) for g in gold or []}
    out: list[str] = []
    for seg in segments:
        seg = normalize_charge(seg)
        if seg in known or "、" not in seg:
            out.append(seg)
            continue
        parts = [normalize_charge(p) for p in seg.split("、") if p]
        i = 0
        while i < len(parts):
            j = next((j for j in range(len(parts), i + 1, -1) if "、".join(parts[i:j]) in known), i + 1)
            out.append("、".join(parts[i:j]))
            i = j
    return [c for c in out if c]


def predicted_charges(text: str, gold: list[str] | None = None) -> list[str]:
    parsed = parse_legal(text)
    return regroup_charges(parsed.charges, gold) if parsed else []


def _gold_set(gold: Any) -> set[str]:
    items = gold if isinstance(gold, (list, tuple)) else re.split(r"[;；]", str(gold))
    return {normalize_charge(g) for g in items if normalize_charge(g)}


def _gold_term(gold: Any) -> int | str | None:
    if gold is None or isinstance(gold, bool):
        return None
    if isinstance(gold, int):
        return XT if gold < 0 else gold  # CAIL2018 scoring codes life as -1 and death as -2
    return parse_term(gold)


def term_score(pred: int | str | None, gold: int | str | None) -> float:
    """CAIL2018 prison-term score from v = |log(pred+1) - log(gold+1)|."""
    if pred is None or gold is None:
        return 0.0
    if pred == XT or gold == XT:
        return float(pred == gold)
    v = abs(math.log(int(pred) + 1) - math.log(int(gold) + 1))
    for bound, score in ((0.2, 1.0), (0.4, 0.8), (0.6, 0.6), (0.8, 0.4), (1.0, 0.2)):
        if v <= bound:
            return score
    return 0.0


def _format_ok(text: str) -> float:
    body = _answer_body(text).strip()
    if _NV_RE.match(body):
        return 1.0  # "不违规" is a well-formed (if, for CAIL cases, wrong) answer
    return float(bool(_STRICT_FORMAT.match(body)) and parse_legal(text) is not None)


def _charge_acc(text: str, gold: Any) -> float | None:
    want = _gold_set(gold) if gold is not None else set()
    if not want:
        return None
    return float(set(predicted_charges(text, list(want))) == want)


def _term_exact(text: str, gold: Any) -> float | None:
    g = _gold_term(gold)
    if g is None:
        return None
    parsed = parse_legal(text)
    return float(parsed is not None and parsed.term == g)


def _term(text: str, gold: Any) -> float | None:
    g = _gold_term(gold)
    if g is None:
        return None
    parsed = parse_legal(text)
    return term_score(parsed.term if parsed else None, g)


def _combined(text: str, charge: Any, prison_time: Any) -> float | None:
    c, t = _charge_acc(text, charge), _term(text, prison_time)
    return None if c is None or t is None else (c + t) / 2


def legal_format_reward(completions: list, **kwargs: Any) -> list[float | None]:
    """1.0 when the final answer is exactly `{charges} | {months}`, `{charges} | XT` or NV/不违规."""
    return per_sample(completions, _format_ok, kwargs, [])


def legal_charge_accuracy(completions: list, charge: list | None = None, **kwargs: Any) -> list[float | None]:
    """1.0 when the predicted charge set equals the gold set (`charge` column)."""
    return per_sample(completions, _charge_acc, {"charge": charge}, ["charge"])


def legal_term_exact(completions: list, prison_time: list | None = None, **kwargs: Any) -> list[float | None]:
    """1.0 when the predicted months (or XT) equal the gold `prison_time`."""
    return per_sample(completions, _term_exact, {"prison_time": prison_time}, ["prison_time"])


def legal_term_score(completions: list, prison_time: list | None = None, **kwargs: Any) -> list[float | None]:
    """CAIL2018 log-distance term score (1.0/0.8/0.6/0.4/0.2/0; XT only matches XT)."""
    return per_sample(completions, _term, {"prison_time": prison_time}, ["prison_time"])


def legal_combined(completions: list, charge: list | None = None, prison_time: list | None = None,
                   **kwargs: Any) -> list[float | None]:
    """Mean of charge accuracy and term score."""
    return per_sample(completions, _combined, {"charge": charge, "prison_time": prison_time},
                      ["charge", "prison_time"])


def charge_macro_f1(pred_sets: list, gold_sets: list) -> float:
    """Macro-F1 over every charge seen in gold or predictions (corpus level)."""
    counts: dict[str, list[int]] = {}  # charge -> [tp, fp, fn]
    for pred, gold in zip(pred_sets, gold_sets):
        p, g = _gold_set(list(pred or [])), _gold_set(list(gold or []))
        for c in p | g:
            row = counts.setdefault(c, [0, 0, 0])
            row[0 if c in p and c in g else 1 if c in p else 2] += 1
    if not counts:
        return 0.0
    return sum(2 * tp / (2 * tp + fp + fn) for tp, fp, fn in counts.values()) / len(counts)


def legal_corpus_metrics(records: list[dict]) -> dict[str, float]:
    """Charge macro-F1 over a run's records (first completion each; the ones with a gold charge)."""
    preds, golds = [], []
    for rec in records:
        gold = (rec.get("gold") or {}).get("charge")
        if not gold:
            continue
        texts = rec.get("completions") or [rec.get("completion")]
        parsed = parse_legal(texts[0] if texts else None)
        preds.append(regroup_charges(parsed.charges, gold) if parsed else [])
        golds.append(list(gold))
    return {"charge_macro_f1": charge_macro_f1(preds, golds)} if golds else {}


def lawshift_parse(text: Any) -> tuple[str, int | str | None] | None:
    """("V", months | "XT" | None) or ("NV", None) from a LawShift answer; None if unrecognised."""
    body = _answer_body(str(text or "")).strip().strip("`'\"").strip()
    if _NV_RE.match(body):
        return ("NV", None)
    m = re.match(r"^V\s*(?:\|\s*(.*))?$", body, re.IGNORECASE)
    if m:
        return ("V", parse_term(m.group(1)) if m.group(1) else None)
    parsed = parse_legal(text)  # the "{charge} | {term}" layout also means "violates"
    if parsed is not None and parsed.charges:
        return ("V", parsed.term)
    return None


def _lawshift_ok(pred: tuple[str, int | str | None] | None, label: str, split: str) -> bool:
    """LawShiftLLM `check_prediction_success`, for each label type and split."""
    verdict, term = pred if pred else (None, None)
    months = term if isinstance(term, int) else None
    if split == "original":
        if label in ("V", "NV"):
            return verdict == "V"
        if label in ("TU", "TD", "XT"):
            return verdict == "V" and months is not None and 36 <= months <= 120
        return label == "NX" and verdict == "V" and term == XT
    rules = {"V": verdict == "V", "NV": verdict == "NV", "XT": verdict == "V" and term == XT,
             "TU": verdict == "V" and months is not None and months >= 120,
             "TD": verdict == "V" and months is not None and months <= 36,
             "NX": verdict == "V" and months is not None and months >= 36}
    return rules.get(label, False)


def _lawshift_acc(text: str, label: Any, split: Any) -> float | None:
    if label is None:
        return None
    label = nfkc(str(label)).strip()
    pred = lawshift_parse(text)
    if "|" in label:  # a literal expected answer such as "V | 7" or "V | XT"
        return float(pred == lawshift_parse(label))
    return float(_lawshift_ok(pred, label.upper(), str(split or "poisoned").lower()))


def lawshift_label_accuracy(completions: list, label: list | None = None, split: list | None = None,
                            **kwargs: Any) -> list[float | None]:
    """LawShift success: gold `label` is a type (V, NV, TU, TD, XT, NX, judged per `split`,
    default "poisoned") or a literal answer ("V | 7", "V | XT", "NV")."""
    return per_sample(completions, _lawshift_acc, {"label": label, "split": split}, ["label", "split"])
