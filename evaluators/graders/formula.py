"""The multi grader's `calculate_output`: arithmetic over the sub-graders' scores, parsed with
`ast` and evaluated by walking the tree: numbers, grader names, + - * / % and ** (`^` is power,
as in OpenAI's examples), unary minus, comparisons, and min, max, abs, floor, ceil, exp, sqrt,
log, round, clip. Nothing else (no attributes, no calls of other names, no eval())."""

from __future__ import annotations

import ast
import math

FUNCS = {"min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp,
         "sqrt": math.sqrt, "log": math.log, "round": round,
         "clip": lambda x, lo, hi: min(max(x, lo), hi)}
_BIN = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b, ast.Mod: lambda a, b: a % b, ast.Pow: lambda a, b: _pow(a, b)}
_CMP = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
        ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}
MAX_NODES = 200


class FormulaError(ValueError):
    """A formula that does not parse, uses something not allowed, or names an unknown grader."""


def _pow(a: float, b: float) -> float:
    if abs(b) > 64:  # 10 ** 10 ** 10 would hang the server; scores never need it
        raise FormulaError("exponent too large")
    return a ** b


def parse_formula(text: str, names: set[str]) -> ast.Expression:
    try:
        # `^` is power with power's precedence (Python's XOR binds looser than `*`); a formula holds
        # no strings, so the textual swap cannot change anything else
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"does not parse: {e.msg}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise FormulaError(f"longer than {MAX_NODES} terms")
    for node in nodes:
        _check(node, names)
    return tree


def _check(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, (ast.Expression, ast.Load, ast.USub, ast.UAdd, ast.Compare)) or type(node) in _BIN \
            or type(node) in _CMP:
        return
    if isinstance(node, ast.BinOp) or isinstance(node, ast.UnaryOp) and type(node.op) in (ast.USub, ast.UAdd):
        return
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCS or node.keywords:
            raise FormulaError(f"only these functions may be called: {', '.join(FUNCS)}")
        return
    if isinstance(node, ast.Name):
        if node.id not in names and node.id not in FUNCS:
            raise FormulaError(f"{node.id!r} is not one of the graders ({', '.join(sorted(names))})")
        return
    raise FormulaError(f"{type(node).__name__} is not allowed in a formula")


def evaluate(tree: ast.Expression, scores: dict[str, float]) -> float:
    """The formula's value; ZeroDivisionError/ValueError (log of 0, ...) propagate to the caller."""
    return float(_eval(tree.body, scores))


def _eval(node: ast.AST, scores: dict[str, float]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return scores[node.id]
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, scores)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BIN:
            raise FormulaError(f"operator {type(node.op).__name__} is not allowed")
        return _BIN[type(node.op)](_eval(node.left, scores), _eval(node.right, scores))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scores)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, scores)
            if not _CMP[type(op)](left, right):
                return 0.0
            left = right
        return 1.0
    if isinstance(node, ast.Call):
        return FUNCS[node.func.id](*(_eval(a, scores) for a in node.args))
    raise FormulaError(f"{type(node).__name__} is not allowed in a formula")
