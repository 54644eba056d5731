"""LLM-as-judge: a rubric prompt and a forgiving, pure parser for the verdict.

Judges answer in many shapes (a JSON object, in ```json fences or buried in prose;
`GRADE: C` lines; `logic_clarity: 7` lines). Whatever cannot be read is recorded as
`{"parse_error": true, "raw": ...}` and its metrics are None, so a broken judge shows
up as failures in the summary instead of as zeros in the means.
"""

from __future__ import annotations

import json
import re
from typing import Any

from clients.jsontext import json_objects

FIELDS = ("logic_clarity", "professional_accuracy", "completeness", "conciseness")
METRICS = tuple(f"judge_{f}" for f in FIELDS) + ("judge_pass",)
_ALIASES = {
    "logic_clarity": ("logic_clarity", "logical_clarity", "logic_and_clarity", "clarity_of_logic", "logic", "clarity"),
    "professional_accuracy": ("professional_accuracy", "accuracy", "professional", "correctness",
                              "professionalism_accuracy", "technical_accuracy"),
    "completeness": ("completeness", "complete", "thoroughness"),
    "conciseness": ("conciseness", "concise", "brevity", "succinctness"),
    "grade": ("grade", "verdict", "final_grade", "pass_fail", "pass", "passed", "is_correct", "result", "judgement",
              "judgment", "decision"),
}
_KEY = {alias: field for field, aliases in _ALIASES.items() for alias in aliases}
_PASS = {"C", "CORRECT", "PASS", "PASSED", "YES", "TRUE", "ACCEPT", "ACCEPTED"}
_FAIL = {"I", "INCORRECT", "FAIL", "FAILED", "NO", "FALSE", "REJECT", "REJECTED", "WRONG"}
_LINE = re.compile(r"^[\s>*#\-`_|]*([A-Za-z][A-Za-z /&_-]{0,40}?)[\s*_`]*[:=][\s*_`\"']*([^\n]*)$", re.M)
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:/\s*10\b|out of 10\b)?")

RUBRIC = """Grade the RESPONSE to the QUESTION{ref_hint} as a strict expert.
Score 1-10 each: logic_clarity, professional_accuracy, completeness, conciseness.
GRADE: C if the response is correct and acceptable, else I.
Reply with JSON only: {{"logic_clarity": n, "professional_accuracy": n, "completeness": n, "conciseness": n, \
"grade": "C" or "I"}}

QUESTION:
{question}
{reference}
RESPONSE:
{response}"""


# -- prompt -------------------------------------------------------------------------
def question_text(prompt: str | list[dict]) -> str:
    """The question a sample asked: the prompt text, or its last user message."""
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content") or "" for m in prompt if m.get("role") == "user"]
    return str(users[-1] if users else (prompt[-1].get("content") if prompt else ""))


def render_reference(gold: dict[str, Any] | None, limit: int = 600) -> str:
    """The gold columns as short `key: value` lines; long values are cut (the judge needs a hint, not a file)."""
    lines = []
    for key, value in (gold or {}).items():
        if key in ("id", "category") or value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {text[:limit]}")
    return "\n".join(lines)


def judge_messages(question: str, response: str, gold: dict[str, Any] | None = None) -> list[dict]:
    ref = render_reference(gold)
    content = RUBRIC.format(ref_hint=" against the REFERENCE" if ref else "", question=question,
                            reference=f"REFERENCE:\n{ref}\n" if ref else "", response=response)
    return [{"role": "user", "content": content}]


# -- parsing (pure) -------------------------------------------------------------------
def _norm_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def _score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str) and (m := _NUMBER.match(value.strip().strip("*\"'"))):
        x = float(m.group(1))
    else:
        return None
    return x if 1 <= x <= 10 else None  # out of the rubric's range: not a score, and not clamped into one


def _grade(value: Any) -> str | None:
    if isinstance(value, bool):
        return "C" if value else "I"
    if not isinstance(value, str):
        return None
    word = re.sub(r"[^A-Za-z]+", " ", value).strip().upper().split()
    if not word:
        return None
    if word[0] in _PASS:
        return "C"
    if word[0] in _FAIL:
        return "I"
    return None


def _from_mapping(obj: dict) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):  # {"scores": {...}, "grade": "C"}
            for k, v in _from_mapping(value).items():
                found.setdefault(k, v)
            continue
        _put(found, _KEY.get(_norm_key(str(key))), value)
    return found


def _put(found: dict[str, Any], field: str | None, value: Any) -> None:
    """Keep the first parseable value of each rubric field (a grade or a 1-10 score)."""
    if field == "grade":
        if (g := _grade(value)) is not None:
            found.setdefault("grade", g)
    elif field is not None and (s := _score(value)) is not None:
        found.setdefault(field, s)


def _from_lines(text: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for m in _LINE.finditer(text):
        _put(found, _KEY.get(_norm_key(m.group(1))), m.group(2).strip())
    return found


def parse_judgement(text: str | None) -> dict[str, Any]:
    """Read a judge's reply. Returns the four scores (floats 1-10 or None), `grade`
    ("C"/"I" or None) and `pass` (1.0/0.0/None), or `{"parse_error": True, "raw": text}`
    when nothing of the rubric can be found."""
    raw = text or ""
    found: dict[str, Any] = {}
    for obj in json_objects(raw):
        if (got := _from_mapping(obj)):
            found = got
            break
    for key, value in _from_lines(raw).items():  # lines fill what a partial object left out
        found.setdefault(key, value)
    if not found:
        return {"parse_error": True, "raw": raw}
    grade = found.get("grade")
    out = {f: found.get(f) for f in FIELDS}
    out.update(grade=grade, **{"pass": None if grade is None else float(grade == "C")})
    return out


def judge_scores(verdicts: list[dict]) -> dict[str, float | None]:
    """Per-sample judge metrics: the mean over completions that parsed; None when none did."""
    out = {}
    for field, metric in zip((*FIELDS, "pass"), METRICS):
        vals = [v[field] for v in verdicts if not v.get("parse_error") and not v.get("error")
                and v.get(field) is not None]
        out[metric] = sum(vals) / len(vals) if vals else None
    return out


# -- calling the judge ----------------------------------------------------------------
# The verdict the prompt asks for, as a regular expression for vLLM's structured outputs: a judge
# constrained to it always answers in a parseable form (a small judge otherwise often does not, and
# an unparseable verdict is a lost reward in RL). A regex rather than a JSON schema: with a schema,
# xgrammar lets a weak model spend its whole budget on whitespace between the keys.
VERDICT_REGEX = "\\{" + ", ".join(f'"{f}": ([1-9]|10)' for f in FIELDS) + ', "grade": "[CI]"\\}'


async def judge_completion(client, model: str, prompt, completion: str, gold: dict | None,
                           max_tokens: int = 512, constrained: bool = False) -> dict:
    """Ask the judge model once (greedy) and parse its verdict; a failed request is `{"error": ...}`.
    `constrained`: decode the verdict under VERDICT_REGEX (vLLM upstreams)."""
    messages = judge_messages(question_text(prompt), completion, gold)
    extra = {"structured_outputs": {"regex": VERDICT_REGEX}} if constrained else {}
    g = await client.generate(model, messages, temperature=0, max_tokens=max_tokens, **extra)
    if g.error:
        return {"error": g.error}
    raw = g.texts[0] if g.texts else ""
    verdict = parse_judgement(raw)
    return verdict if verdict.get("parse_error") else {**verdict, "raw": raw}
