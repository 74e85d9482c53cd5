"""Dialplan variable substitution (``${VAR}``, ``${EXTEN:n}``, functions) and ``$[...]`` expressions."""

from __future__ import annotations

import re
from collections.abc import Callable

Lookup = Callable[[str], str]


def _find_close(text: str, start: int, open_ch: str, close_ch: str) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    return -1


def substitute(text: str, lookup: Lookup) -> str:
    """Expand ``${...}`` and ``$[...]`` the way pbx_substitute_variables does (innermost first)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("${", i):
            end = _find_close(text, i + 1, "{", "}")
            if end < 0:
                out.append(text[i:])
                break
            inner = substitute(text[i + 2:end], lookup)
            out.append(_variable(inner, lookup))
            i = end + 1
        elif text.startswith("$[", i):
            end = _find_close(text, i + 1, "[", "]")
            if end < 0:
                out.append(text[i:])
                break
            out.append(evaluate(substitute(text[i + 2:end], lookup)))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _variable(expr: str, lookup: Lookup) -> str:
    if "(" in expr and expr.endswith(")"):
        return lookup(expr)
    m = re.fullmatch(r"([^:]+)(?::(-?\d+)(?::(-?\d+))?)?", expr)
    if not m:
        return lookup(expr)
    value = lookup(m.group(1))
    if m.group(2) is None:
        return value
    offset = int(m.group(2))
    value = value[offset:] if offset >= 0 else value[len(value) + offset:]
    if m.group(3) is not None:
        length = int(m.group(3))
        value = value[:length]
    return value


_TOKEN = re.compile(r"\s*(\|\||&&|!=|<=|>=|=~|[=<>|&+\-*/%!():]|\"[^\"]*\"|[^\s=<>|&+\-*/%!():]+)")


def evaluate(expr: str) -> str:
    """A small subset of Asterisk's $[ ] grammar: comparisons, & |, + - * / %, parentheses."""
    tokens = [t for t in _TOKEN.findall(expr) if t.strip()]
    if not tokens:
        return ""
    try:
        value, rest = _parse_or(tokens)
    except (IndexError, ValueError, ZeroDivisionError):
        return expr.strip()
    return value if not rest else expr.strip()


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _fmt(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)


def _truthy(v: str) -> bool:
    return v not in ("", "0")


def _parse_or(t: list[str]) -> tuple[str, list[str]]:
    left, t = _parse_and(t)
    while t and t[0] in ("|", "||"):
        right, t = _parse_and(t[1:])
        left = left if _truthy(left) else (right if _truthy(right) else "0")
    return left, t


def _parse_and(t: list[str]) -> tuple[str, list[str]]:
    left, t = _parse_cmp(t)
    while t and t[0] in ("&", "&&"):
        right, t = _parse_cmp(t[1:])
        left = left if _truthy(left) and _truthy(right) else "0"
    return left, t


def _parse_cmp(t: list[str]) -> tuple[str, list[str]]:
    left, t = _parse_add(t)
    while t and t[0] in ("=", "!=", "<", ">", "<=", ">="):
        op = t[0]
        right, t = _parse_add(t[1:])
        a, b = _num(left), _num(right)
        pair: tuple[float, float] | tuple[str, str] = (a, b) if a is not None and b is not None else (left, right)
        x, y = pair
        result = {"=": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]  # type: ignore[operator]
        left = "1" if result else "0"
    return left, t


def _parse_add(t: list[str]) -> tuple[str, list[str]]:
    left, t = _parse_mul(t)
    while t and t[0] in ("+", "-"):
        op = t[0]
        right, t = _parse_mul(t[1:])
        a, b = _num(left), _num(right)
        if a is None or b is None:
            raise ValueError("non-numeric")
        left = _fmt(a + b if op == "+" else a - b)
    return left, t


def _parse_mul(t: list[str]) -> tuple[str, list[str]]:
    left, t = _parse_unary(t)
    while t and t[0] in ("*", "/", "%"):
        op = t[0]
        right, t = _parse_unary(t[1:])
        a, b = _num(left), _num(right)
        if a is None or b is None:
            raise ValueError("non-numeric")
        left = _fmt(a * b if op == "*" else (int(a / b) if op == "/" else a % b))
    return left, t


def _parse_unary(t: list[str]) -> tuple[str, list[str]]:
    if t[0] == "!":
        value, rest = _parse_unary(t[1:])
        return ("0" if _truthy(value) else "1"), rest
    if t[0] == "(":
        value, rest = _parse_or(t[1:])
        return value, rest[1:]
    token = t[0]
    if token.startswith('"') and token.endswith('"'):
        token = token[1:-1]
    return token, t[1:]


def split_args(data: str) -> list[str]:
    """Split application arguments on commas outside parentheses and quotes (as pbx_app's AST_STANDARD_APP_ARGS)."""
    args: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in data:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and not quoted:
            args.append("".join(current))
            current = []
            continue
        current.append(ch)
    args.append("".join(current))
    return args
