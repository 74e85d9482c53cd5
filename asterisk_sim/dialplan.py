"""extensions.conf parsing and Asterisk's extension matching.

Pure functions only: the simulator's engine and other helpers (dialplan rendering tests) both load real
``extensions.conf`` text through :func:`parse_extensions_conf`, so a file that Asterisk would reject fails here too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from asterisk_sim.patterns import extension_matches, pattern_sort_key

__all__ = [
    "Context",
    "Dialplan",
    "DialplanSyntaxError",
    "Priority",
    "Section",
    "extension_matches",
    "parse_conf",
    "parse_extensions_conf",
    "pattern_sort_key",
]


class DialplanSyntaxError(ValueError):
    """A config line Asterisk would not accept; the message names ``file:line`` and why."""

    def __init__(self, filename: str, line: int, why: str) -> None:
        super().__init__(f"{filename}:{line}: {why}")
        self.filename = filename
        self.line = line
        self.why = why


@dataclass(frozen=True)
class Priority:
    number: int
    label: str | None
    app: str
    args: str
    line: int
    filename: str = "extensions.conf"


@dataclass
class Context:
    name: str
    extensions: dict[str, list[Priority]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    line: int = 0

    def priority(self, exten: str, number: int) -> Priority | None:
        for prio in self.extensions.get(exten, []):
            if prio.number == number:
                return prio
        return None

    def label(self, exten: str, label: str) -> Priority | None:
        for prio in self.extensions.get(exten, []):
            if prio.label == label:
                return prio
        return None


@dataclass
class Dialplan:
    contexts: dict[str, Context] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)
    general: dict[str, str] = field(default_factory=dict)

    def match(self, context: str, exten: str) -> str | None:
        """The extension key Asterisk would run for ``exten`` in ``context`` (includes searched after)."""
        found = self._match(context, exten, set())
        return found[1] if found else None

    def resolve(self, context: str, exten: str) -> tuple[str, str] | None:
        """Like :meth:`match` but also names the (possibly included) context that holds the extension."""
        return self._match(context, exten, set())

    def _match(self, context: str, exten: str, seen: set[str]) -> tuple[str, str] | None:
        ctx = self.contexts.get(context)
        if ctx is None or context in seen:
            return None
        seen.add(context)
        candidates = [key for key in ctx.extensions if extension_matches(key, exten)]
        if candidates:
            return context, min(candidates, key=pattern_sort_key)
        for inc in ctx.includes:
            found = self._match(inc, exten, seen)
            if found:
                return found
        return None


@dataclass
class Section:
    """One ``[name]`` of an ini-style Asterisk config (ari.conf, http.conf, manager.conf ...)."""

    name: str
    items: list[tuple[str, str]] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    is_template: bool = False
    line: int = 0

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in reversed(self.items):
            if k == key:
                return v
        return default

    def as_dict(self) -> dict[str, str]:
        return dict(self.items)


# ---------------------------------------------------------------------------- ini-style parsing

def _strip_comment(raw: str) -> str:
    """Drop a ``;`` comment (``\\;`` is a literal semicolon) and surrounding whitespace."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw) and raw[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if c == ";":
            break
        out.append(c)
        i += 1
    return "".join(out).strip()


_HEADER = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?\s*$")


@dataclass
class _Line:
    text: str
    line: int
    filename: str


def _logical_lines(text: str, filename: str, depth: int = 0) -> list[_Line]:
    """Comment-stripped, non-empty lines with ``#include`` expanded (relative to the including file)."""
    if depth > 20:
        raise DialplanSyntaxError(filename, 0, "#include nested too deeply")
    lines: list[_Line] = []
    in_block = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_block:
            if "--;" in raw:
                in_block = False
                raw = raw.split("--;", 1)[1]
            else:
                continue
        if ";--" in raw:
            before, after = raw.split(";--", 1)
            if "--;" not in after:
                in_block = True
            raw = before
        stripped = _strip_comment(raw)
        if not stripped:
            continue
        if stripped.startswith(("#include", "#tryinclude")):
            lines.extend(_include(stripped, filename, number, depth))
            continue
        lines.append(_Line(stripped, number, filename))
    return lines


def _include(stripped: str, filename: str, number: int, depth: int) -> list[_Line]:
    optional = stripped.startswith("#tryinclude")
    target = stripped.split(None, 1)[1].strip().strip('"<>') if " " in stripped else ""
    if not target:
        raise DialplanSyntaxError(filename, number, "#include needs a file name")
    path = target if os.path.isabs(target) else os.path.join(os.path.dirname(filename) or ".", target)
    try:
        with open(path, encoding="utf-8") as handle:
            included = handle.read()
    except OSError as exc:
        if optional:
            return []
        raise DialplanSyntaxError(filename, number, f"cannot #include {target!r}: {exc.strerror}") from exc
    return _logical_lines(included, path, depth + 1)


def parse_conf(text: str, filename: str = "asterisk.conf") -> list[Section]:
    """Parse an ini-style Asterisk config into its sections, in file order (``=`` and ``=>`` both accepted)."""
    sections: list[Section] = []
    current: Section | None = None
    for item in _logical_lines(text, filename):
        if item.text.startswith("["):
            current = _section_header(item)
            sections.append(current)
            continue
        key, sep, value = _split_assignment(item.text)
        if not sep:
            raise DialplanSyntaxError(item.filename, item.line, f"expected 'key = value', got {item.text!r}")
        if current is None:
            raise DialplanSyntaxError(item.filename, item.line, "setting outside any [section]")
        current.items.append((key, value))
    return sections


def _section_header(item: _Line) -> Section:
    m = _HEADER.match(item.text)
    if not m or not m.group(1).strip():
        raise DialplanSyntaxError(item.filename, item.line, f"malformed section header {item.text!r}")
    options = [o.strip() for o in (m.group(2) or "").split(",") if o.strip()]
    return Section(
        name=m.group(1).strip(),
        templates=[o for o in options if o != "!"],
        is_template="!" in options,
        line=item.line,
    )


def _split_assignment(text: str) -> tuple[str, str, str]:
    idx = text.find("=")
    if idx <= 0:
        return text, "", ""
    sep = "=>" if text[idx:idx + 2] == "=>" else "="
    return text[:idx].strip(), sep, text[idx + len(sep):].strip()


# ---------------------------------------------------------------------------- extensions.conf

_PRIO = re.compile(r"^(n|hint|\d+|n\s*\+\s*\d+|s)(?:\(([A-Za-z0-9_\-]+)\))?$")


def parse_extensions_conf(text: str, filename: str = "extensions.conf") -> Dialplan:
    """Parse extensions.conf text into a :class:`Dialplan`; raises :class:`DialplanSyntaxError` on bad lines."""
    plan = Dialplan()
    builder = _Builder(plan)
    for item in _logical_lines(text, filename):
        if item.text.startswith("["):
            builder.section(_section_header(item))
            continue
        key, sep, value = _split_assignment(item.text)
        if not sep:
            raise DialplanSyntaxError(item.filename, item.line, f"expected 'exten =>', 'same =>' or 'include =>', "
                                      f"got {item.text!r}")
        builder.assignment(key.lower(), key, value, item)
    return plan


class _Builder:
    def __init__(self, plan: Dialplan) -> None:
        self.plan = plan
        self.section_name: str | None = None
        self.context: Context | None = None
        self.last_exten: str | None = None
        self.last_number = 0

    def section(self, header: Section) -> None:
        self.section_name = header.name
        self.last_exten = None
        if header.name in ("general", "globals"):
            self.context = None
            return
        self.context = self.plan.contexts.setdefault(header.name, Context(header.name, line=header.line))

    def assignment(self, lower: str, key: str, value: str, item: _Line) -> None:
        if self.section_name is None:
            raise DialplanSyntaxError(item.filename, item.line, "line outside any [context]")
        if self.section_name == "general":
            self.plan.general[key] = value
            return
        if self.section_name == "globals":
            self.plan.globals[key] = value
            return
        assert self.context is not None
        handler: dict[str, Callable[[str, _Line], None]] = {
            "exten": self._exten, "same": self._same, "include": self._include_ctx,
        }
        if lower not in handler:
            if lower in ("switch", "ignorepat", "eswitch", "lswitch"):
                return
            raise DialplanSyntaxError(item.filename, item.line, f"unknown keyword {key!r} in context "
                                      f"[{self.context.name}]")
        handler[lower](value, item)

    def _include_ctx(self, value: str, item: _Line) -> None:
        assert self.context is not None
        name = value.split(",", 1)[0].strip()
        if not name:
            raise DialplanSyntaxError(item.filename, item.line, "include => needs a context name")
        self.context.includes.append(name)

    def _exten(self, value: str, item: _Line) -> None:
        parts = value.split(",", 2)
        if len(parts) < 3:
            raise DialplanSyntaxError(item.filename, item.line, f"exten => needs 'extension,priority,App(args)', "
                                      f"got {value!r}")
        exten = parts[0].strip().split("/", 1)[0]
        if not exten:
            raise DialplanSyntaxError(item.filename, item.line, "empty extension name")
        if exten.startswith("_") and len(exten) == 1:
            raise DialplanSyntaxError(item.filename, item.line, "empty pattern '_'")
        self.last_exten = exten
        self.last_number = 0
        self._add(exten, parts[1].strip(), parts[2] if len(parts) > 2 else "", item, first=True)

    def _same(self, value: str, item: _Line) -> None:
        if self.last_exten is None:
            raise DialplanSyntaxError(item.filename, item.line, "same => with no preceding exten => in this context")
        parts = value.split(",", 1)
        if len(parts) < 2:
            raise DialplanSyntaxError(item.filename, item.line, f"same => needs 'priority,App(args)', got {value!r}")
        self._add(self.last_exten, parts[0].strip(), parts[1], item, first=False)

    def _add(self, exten: str, prio_text: str, app_text: str, item: _Line, first: bool) -> None:
        assert self.context is not None
        m = _PRIO.match(prio_text)
        if not m:
            raise DialplanSyntaxError(item.filename, item.line, f"invalid priority {prio_text!r}")
        base, label = m.group(1), m.group(2)
        if base == "hint":
            return
        existing = self.context.extensions.get(exten, [])
        if base.startswith("n"):
            if first and not existing:
                raise DialplanSyntaxError(item.filename, item.line, f"priority 'n' with no previous priority for "
                                          f"extension {exten!r}")
            prev = existing[-1].number if existing else self.last_number
            number = prev + 1 + (int(base.split("+", 1)[1]) if "+" in base else 0)
        elif base == "s":
            number = (existing[-1].number if existing else self.last_number)
        else:
            number = int(base)
        if number < 1:
            raise DialplanSyntaxError(item.filename, item.line, "priority must be 1 or more")
        if any(p.number == number for p in existing):
            raise DialplanSyntaxError(item.filename, item.line, f"duplicate priority {number} for extension "
                                      f"{exten!r} in context [{self.context.name}]")
        app, args = _split_app(app_text.strip(), item)
        prio = Priority(number=number, label=label, app=app, args=args, line=item.line, filename=item.filename)
        lst = self.context.extensions.setdefault(exten, [])
        lst.append(prio)
        lst.sort(key=lambda p: p.number)
        self.last_number = number


def _split_app(text: str, item: _Line) -> tuple[str, str]:
    if not text:
        raise DialplanSyntaxError(item.filename, item.line, "missing application")
    paren = text.find("(")
    if paren < 0:
        if "," in text:
            app, args = text.split(",", 1)
            return app.strip(), args
        return text.strip(), ""
    app = text[:paren].strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", app):
        raise DialplanSyntaxError(item.filename, item.line, f"invalid application name {app!r}")
    if not text.endswith(")"):
        raise DialplanSyntaxError(item.filename, item.line, f"unbalanced parentheses in {text!r}")
    return app, text[paren + 1:-1]
