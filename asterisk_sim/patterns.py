"""Asterisk extension patterns: matching and the sort order pbx.c gives them (ext_cmp_pattern_pos)."""

from __future__ import annotations

import re

_SPECIAL = 0x18000, 0x28000, 0x30000


def _pattern_positions(pattern: str) -> list[tuple[int, frozenset[str] | None]]:
    """Split a pattern body (no leading ``_``) into positions with Asterisk's weights (pbx.c ext_cmp_pattern_pos)."""
    out: list[tuple[int, frozenset[str] | None]] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        i += 1
        if c == "-":
            continue
        upper = c.upper()
        if upper == "N":
            chars = frozenset("23456789")
        elif upper == "X":
            chars = frozenset("0123456789")
        elif upper == "Z":
            chars = frozenset("123456789")
        elif c == ".":
            out.append((0x18000, None))
            continue
        elif c == "!":
            out.append((0x28000, None))
            continue
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                out.append((0x40000, frozenset()))
                break
            chars = frozenset(_expand_set(pattern[i:end]))
            i = end + 1
            if not chars:
                continue
        else:
            chars = frozenset(c)
        out.append(((len(chars) << 8) | ord(min(chars)), chars))
    return out


def _expand_set(body: str) -> set[str]:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.update(chr(x) for x in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return chars


def pattern_sort_key(key: str) -> tuple[object, ...]:
    """Sort key giving Asterisk's extension order: literal extensions first, then patterns most specific first."""
    if not key.startswith("_"):
        return (0, key)
    weights: list[tuple[int, tuple[int, ...]]] = []
    for value, chars in _pattern_positions(key[1:]):
        # Ties on value are broken by memcmp(right_bitwise, left_bitwise): the larger bit set sorts first.
        bits = tuple(-ord(ch) for ch in sorted(chars)) if chars else ()
        weights.append((value, bits))
    weights.append((0x30000, ()))
    return (1, tuple(weights))


def extension_matches(key: str, exten: str) -> bool:
    """Whether the dialled ``exten`` matches extension ``key`` (a literal or an ``_`` pattern)."""
    if not key.startswith("_"):
        return key == exten
    return _compile(key).fullmatch(exten) is not None


_compiled: dict[str, re.Pattern[str]] = {}


def _compile(key: str) -> re.Pattern[str]:
    rx = _compiled.get(key)
    if rx is None:
        parts: list[str] = []
        for value, chars in _pattern_positions(key[1:]):
            if value == 0x18000:
                parts.append(".+")
            elif value == 0x28000:
                parts.append(".*")
            elif chars:
                parts.append("[" + "".join(re.escape(ch) for ch in sorted(chars)) + "]")
            else:
                parts.append("(?!)")
        rx = re.compile("".join(parts), re.DOTALL)
        _compiled[key] = rx
    return rx
