"""Garbage never crashes a parser and every bad line is quarantined (speed under a flood: bench/)."""

from __future__ import annotations

import random
from datetime import UTC

from hypothesis import given, settings
from hypothesis import strategies as st

from bridges.legacy_pbx.decoder import KINDS, LegacyDecoder
from bridges.legacy_pbx.normalize import call_json, call_record
from bridges.legacy_pbx.panasonic import SmdrLineParser
from bridges.legacy_pbx.records import LegacyCall, LegacyParseError, Quarantined
from bridges.legacy_pbx.testing import garbage_lines, stepping_clock
from callcenter.numbers import NumberPlan

PLAN = NumberPlan(country_code="98", city_code="21", outside_line_prefix="9")
GOOD = b"06/01/11 15:11     101 01 09332991400                    00:00'39               \r\n"
A_LINE = "06/01/11 15:11     101 01 09332991400                    00:00'39               "


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KINDS), st.binary(max_size=300))
def test_no_byte_string_makes_a_parser_fail_other_than_by_quarantine(kind: str, data: bytes) -> None:
    decoder = LegacyDecoder(kind, clock=stepping_clock())
    items = decoder.feed_bytes(data) + decoder.flush()
    # the decoder would catch a parser bug, but it would say so: no such reason may appear
    assert not [i for i in items if isinstance(i, Quarantined) and i.reason.startswith("parser error")]
    for item in items:
        if isinstance(item, LegacyCall):
            call_json(item, "k", PLAN)
            call_record(item, "k", PLAN)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(A_LINE) - 1), st.characters(codec="latin-1"))
def test_a_record_with_any_one_character_changed_is_a_call_or_quarantined(pos: int, char: str) -> None:
    line = A_LINE[:pos] + char + A_LINE[pos + 1 :]
    decoder = LegacyDecoder("panasonic", clock=stepping_clock())
    items = decoder.feed_line(line.encode("latin-1"))
    assert all(isinstance(i, LegacyCall | Quarantined) for i in items)
    assert not [i for i in items if isinstance(i, Quarantined) and i.reason.startswith("parser error")]
    assert len(items) == 1 or "\n" in line or "\r" in line or not line.strip()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="LCRHFDN0123456789:T@ ?\n-hookfnie", max_size=200))
def test_caller_id_boxes_survive_any_mix_of_their_own_letters(text: str) -> None:
    for kind in ("segal", "danjeh"):
        decoder = LegacyDecoder(kind, clock=stepping_clock())
        decoder.feed_bytes(text.encode())
        decoder.tick()
        decoder.flush()


def test_garbage_lines_are_all_quarantined_and_valid_lines_among_them_still_become_calls() -> None:
    """(How fast is measured in bench/bench_legacy_garbage.py; the soak suite runs a million mutated lines.)"""
    rng = random.Random(7)
    decoder = LegacyDecoder("panasonic", clock=stepping_clock())
    quarantined = calls = lines = 0
    chunk = b"".join(garbage_lines(rng, 10_000))
    per_chunk = chunk.count(b"\n")
    for n in range(20):
        for item in decoder.feed_bytes(chunk):
            if isinstance(item, Quarantined):
                quarantined += 1
            elif isinstance(item, LegacyCall):
                calls += 1
        lines += per_chunk
        valid = GOOD.replace(b"15:11", f"{n // 60 + 10:02d}:{n % 60:02d}".encode())
        calls += sum(isinstance(i, LegacyCall) for i in decoder.feed_bytes(valid))
    assert lines == 200_000 and quarantined == lines
    assert calls == 20


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=130), st.sampled_from(["auto", "a", "b", "c", "tes"]),
       st.sampled_from(["mdy", "dmy", "ymd", "ydm"]))
def test_the_smdr_line_parser_only_ever_raises_its_own_error(text: str, layout: str, order: str) -> None:
    parser = SmdrLineParser(order, UTC, layout)
    try:
        parser.parse(text)
    except LegacyParseError:
        pass
