"""Number normalisation: what a number looks like after it passes through any of our sources."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.numbers import InvalidNumber, NumberPlan, clean, dial_string_number, is_dialable, to_e164

TEHRAN = NumberPlan(country_code="98", city_code="21", outside_line_prefix="9")
WARSAW = NumberPlan(country_code="48", city_code="", outside_line_prefix="0", national_prefix="")
MOSCOW = NumberPlan(country_code="7", city_code="495", outside_line_prefix="9", national_prefix="8",
                    international_prefix="810")
NEW_YORK = NumberPlan(country_code="1", city_code="212", outside_line_prefix="9", national_prefix="1",
                      international_prefix="011")


@pytest.mark.parametrize(
    ("plan", "raw", "dialled", "expected"),
    [
        # Iran: 0 trunk prefix, 8-digit Tehran local numbers, 9 for an outside line
        (TEHRAN, "09121234567", False, "+989121234567"),
        (TEHRAN, "88776655", False, "+982188776655"),
        (TEHRAN, "988776655", True, "+982188776655"),
        (TEHRAN, "909121234567", True, "+989121234567"),
        (TEHRAN, "0098 912 123 4567", False, "+989121234567"),
        (TEHRAN, "+989121234567", False, "+989121234567"),
        (TEHRAN, "2005", False, "2005"),
        (TEHRAN, "102", True, "102"),
        # Poland: no trunk prefix, 9-digit national numbers, 0 for an outside line
        (WARSAW, "0221234567", True, "+48221234567"),
        (WARSAW, "601 234 567", False, "+48601234567"),
        (WARSAW, "0048601234567", False, "+48601234567"),
        # Russia: 8 trunk prefix, 810 international
        (MOSCOW, "84951234567", False, "+74951234567"),
        (MOSCOW, "984951234567", True, "+74951234567"),
        (MOSCOW, "81049301234567", False, "+49301234567"),
        (MOSCOW, "1234567", False, "+74951234567"),
        # US: 1 + area code, 011 international, 9 for an outside line
        (NEW_YORK, "(212) 555-0142", False, "+12125550142"),
        (NEW_YORK, "912125550142", True, "+12125550142"),
        (NEW_YORK, "01144201234567", False, "+44201234567"),
        (NEW_YORK, "*72", False, "*72"),
    ],
)
def test_numbers_become_e164_with_the_pbx_codes(plan: NumberPlan, raw: str, dialled: bool, expected: str) -> None:
    assert to_e164(raw, plan, dialled=dialled) == expected


@pytest.mark.parametrize(
    "raw",
    ["1001&SIP/evil", "123,456", "PJSIP/1001", "100@ctx", "12(3", "123\n456", "", "   ", "abc", "+12+34",
     "1" * 40, "12;3", "Local/1@x", "${EVIL}", "+", " + ", "١٢٣"],
)
def test_anything_that_is_not_a_phone_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidNumber):
        clean(raw)
    assert not is_dialable(raw)


def test_refusal_names_the_bad_character() -> None:
    with pytest.raises(InvalidNumber, match="'&'"):
        clean("1001&2")


def test_outbound_dial_string_adds_the_outside_line_prefix() -> None:
    assert dial_string_number("+989121234567", TEHRAN) == "909121234567"
    assert dial_string_number("+442012345678", TEHRAN) == "900442012345678"
    assert dial_string_number("2005", TEHRAN) == "2005"
    assert dial_string_number("+12125550142", NEW_YORK) == "912125550142"


@given(st.text(min_size=1, max_size=40))
def test_clean_output_is_always_dialable_or_refused(raw: str) -> None:
    try:
        result = clean(raw)
    except InvalidNumber:
        return
    assert result
    assert all((ch.isdigit() and ch.isascii()) or ch in "+*#" for ch in result)
    assert "+" not in result[1:]


@given(st.from_regex(r"\A\+?[0-9*#]{1,30}\Z"))
def test_dialable_numbers_are_accepted_unchanged(raw: str) -> None:
    assert clean(raw) == raw


@given(st.from_regex(r"\A[1-9][0-9]{7,12}\Z"))
def test_normalising_twice_changes_nothing(raw: str) -> None:
    once = to_e164(raw, TEHRAN)
    assert to_e164(once, TEHRAN) == once
    assert once.startswith("+")


@given(st.from_regex(r"\A[0-9]{2,5}\Z"))
def test_extensions_are_left_alone(ext: str) -> None:
    assert to_e164(ext, TEHRAN, dialled=True) == ext


@given(st.text(alphabet=st.characters(whitelist_categories=("Nd",)), min_size=1, max_size=40),
       st.sampled_from(["", " ", "\t", "  "]))
def test_all_digit_numbers_pass_clean_only_in_ascii_and_at_most_32_long(digits: str, pad: str) -> None:
    """The all-digits shortcut in ``clean`` answers as its full checks do: ASCII digits up to 32 pass unchanged
    (surrounding blanks dropped); other scripts' digits and longer numbers are refused."""
    if digits.isascii() and len(digits) <= 32:
        assert clean(pad + digits + pad) == digits
    else:
        with pytest.raises(InvalidNumber):
            clean(pad + digits + pad)
