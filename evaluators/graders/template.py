"""OpenAI's grader templates: `{{ item.field }}`, `{{ sample.output_text }}`, nested paths with
dots and indexes (`{{ item.answers[0].text }}`). Only the `item` and `sample` namespaces exist;
a path that does not resolve is an `invalid_variable_error`, as OpenAI reports it."""

from __future__ import annotations

import json
import re
from typing import Any

NAMESPACES = ("item", "sample")
_VAR = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*|\[\d+\]")


class TemplateError(ValueError):
    """A template whose variable is malformed or names nothing in this sample/item."""


def _parse(expr: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    for m in _PATH.finditer(expr):
        sep = expr[pos:m.start()]
        if sep not in ("", ".") or (sep == "" and pos and not m.group().startswith("[")):
            raise TemplateError(f"malformed template variable {{{{ {expr} }}}}")
        tok = m.group()
        parts.append(int(tok[1:-1]) if tok.startswith("[") else tok)
        pos = m.end()
    if pos != len(expr) or not parts:
        raise TemplateError(f"malformed template variable {{{{ {expr} }}}}")
    if parts[0] not in NAMESPACES or len(parts) < 2:
        raise TemplateError(f"template variable {{{{ {expr} }}}} must be item.<field> or sample.<field> "
                            "(the only namespaces are item and sample)")
    return parts


def check_template(text: str) -> None:
    """Syntax only: every {{ }} names item.* or sample.*."""
    for m in _VAR.finditer(text):
        _parse(m.group(1))


def _lookup(root: dict, parts: list[str | int], expr: str) -> Any:
    value: Any = root
    for p in parts:
        try:
            value = value[p]
        except (KeyError, IndexError, TypeError):
            raise TemplateError(f"{{{{ {expr} }}}} does not resolve: no {p!r}") from None
    return value


def render(text: str, item: dict, sample: dict) -> str:
    """The text with each variable replaced: strings as they are, other values as JSON."""
    roots = {"item": item, "sample": sample}

    def one(m: re.Match) -> str:
        parts = _parse(m.group(1))
        value = _lookup(roots[parts[0]], parts[1:], m.group(1))
        return value if isinstance(value, str) else json.dumps(value)

    return _VAR.sub(one, text)


def sample_namespace(output_text: str) -> dict:
    """`sample.*`: output_text, and output_json when the text is a JSON object or array."""
    out: dict[str, Any] = {"output_text": output_text, "output_tools": []}
    try:
        parsed = json.loads(output_text)
    except (ValueError, TypeError):
        parsed = None
    if isinstance(parsed, (dict, list)):
        out["output_json"] = parsed
    return out
