"""Phone number normalisation shared by every source (ARI, AMI, AGI, SMDR, caller-ID boxes).

Pure functions: no I/O, so they can be property-tested. A *dialable* string holds only ``+``,
digits, ``*`` and ``#`` — anything else is refused before it can reach a dial string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DIALABLE = re.compile(r"^\+?[0-9*#]+$")
_SEPARATORS = re.compile(r"[\s\-().]")
_AREA_CODE_GROUP = re.compile(r"^[^()]*\(\d{1,6}\)[^()]*$")  # "(212) 555-0142" is formatting


class InvalidNumber(ValueError):
    """A string that is not a phone number; the message says why."""

    code = "invalid_number"


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """How one PBX writes numbers: what to strip and what to add to reach E.164."""

    country_code: str = ""
    city_code: str = ""
    outside_line_prefix: str = ""
    national_prefix: str = "0"
    international_prefix: str = "00"
    extension_lengths: tuple[int, ...] = (2, 3, 4, 5)
    excluded_extensions: frozenset[str] = field(default_factory=frozenset)


def clean(raw: str) -> str:
    """Drop the separators people type (spaces, dashes, dots, brackets) and check what is left.

    Raises :class:`InvalidNumber` for anything that is not ``+``, digits, ``*`` or ``#`` —
    ``&``, ``,``, ``/``, ``@``, ``(`` inside a number, newlines and letters are all refused.
    """
    if not isinstance(raw, str):
        raise InvalidNumber("number must be a string")
    stripped = raw.strip()
    if stripped.isdigit() and stripped.isascii() and len(stripped) <= 32:
        return stripped  # the common case (all digits): what the checks below would return, without regexes
    if "\n" in stripped or "\r" in stripped or "\x00" in stripped:
        raise InvalidNumber("number contains a control character")
    if ("(" in stripped or ")" in stripped) and not _AREA_CODE_GROUP.match(stripped):
        raise InvalidNumber("number contains '(' or ')' other than around an area code")
    candidate = _SEPARATORS.sub("", stripped)
    if not candidate:
        raise InvalidNumber("number is empty")
    if len(candidate) > 32:
        raise InvalidNumber("number is longer than 32 characters")
    if "+" in candidate[1:]:
        raise InvalidNumber("'+' may only start a number")
    if candidate == "+":
        raise InvalidNumber("number has no digits after '+'")
    if not _DIALABLE.match(candidate):
        bad = next(ch for ch in candidate if ch not in "0123456789+*#")
        raise InvalidNumber(f"number contains {bad!r}; only +, digits, * and # may be dialled")
    return candidate


def is_dialable(raw: str) -> bool:
    try:
        clean(raw)
    except InvalidNumber:
        return False
    return True


def is_extension(number: str, plan: NumberPlan) -> bool:
    """Short all-digit numbers are internal extensions and are never rewritten."""
    return number.isdigit() and len(number) in plan.extension_lengths


def strip_outside_line_prefix(number: str, plan: NumberPlan) -> str:
    """Remove the digit an agent dials to get an outside line (9, 0, …), if present.

    Only numbers longer than an extension carry the prefix, so ``9`` + a 2–5 digit
    extension is left alone.
    """
    prefix = plan.outside_line_prefix
    if prefix and number.startswith(prefix) and len(number) - len(prefix) > max(plan.extension_lengths):
        return number[len(prefix) :]
    return number


def to_e164(raw: str, plan: NumberPlan, *, dialled: bool = False) -> str:
    """Normalise ``raw`` to E.164 where possible.

    ``dialled=True`` means the number was dialled on this PBX (so an outside-line prefix may lead it).
    Extensions and feature codes (``*``/``#``) are returned cleaned but unchanged; numbers that cannot be
    placed (no country code configured) are returned in their cleaned national form.
    """
    number = clean(raw)
    if "*" in number or "#" in number:
        return number
    if number.startswith("+"):
        return number
    if is_extension(number, plan):
        return number
    if dialled:
        number = strip_outside_line_prefix(number, plan)
        if is_extension(number, plan):
            return number
    intl = plan.international_prefix
    if intl and number.startswith(intl):
        return "+" + number[len(intl) :]
    if not plan.country_code:
        return number
    national = plan.national_prefix
    if national and number.startswith(national):
        return f"+{plan.country_code}{number[len(national):]}"
    if plan.country_code == "1" and len(number) == 11 and number.startswith("1"):
        return "+" + number
    if plan.country_code == "1" and len(number) == 10:
        return "+1" + number
    if not national and len(number) >= 9:
        # Countries without a trunk prefix (PL, US): a full national number.
        return f"+{plan.country_code}{number}"
    if plan.city_code:
        return f"+{plan.country_code}{plan.city_code}{number}"
    return f"+{plan.country_code}{number}"


def dial_string_number(raw: str, plan: NumberPlan) -> str:
    """The digits to hand the PBX's outbound context: cleaned, with the outside-line prefix added.

    E.164 numbers are turned into the PBX's international dialling form so trunks that expect
    local formats still work.
    """
    number = clean(raw)
    if is_extension(number, plan) or "*" in number or "#" in number:
        return number
    if number.startswith("+"):
        cc = plan.country_code
        if cc and number.startswith("+" + cc):
            rest = number[1 + len(cc) :]
            number = (plan.national_prefix + rest) if plan.national_prefix or cc != "1" else rest
        else:
            number = plan.international_prefix + number[1:]
    return plan.outside_line_prefix + number
