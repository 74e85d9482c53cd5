"""Issue 12 item 18: a KX-TES824/TA824 incoming record with an empty extension field is a call, never quarantined.

The TES prints such a line (no extension, no duration) for an incoming call no extension picked up. Read alone
it is a missed call; when the answered line of the same CO line and caller follows, the two lines are one call
that rang first. Lines are in the sample's format (``../shared/samples/panasonic-tes824-rs232.smdr``: 78 columns,
12 h clock, ``<    incoming    >`` then the caller's number from column 46, ``....`` = no account code).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridges.legacy_pbx.component import run
from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.normalize import call_json
from bridges.legacy_pbx.records import Duplicate, Item, LegacyCall, Quarantined, Ringing
from bridges.legacy_pbx.testing import FakePanasonic, stepping_clock
from callcenter.numbers import NumberPlan
from callcenter.store import CallStore
from tests.legacy.test_component import count, eventually, make_ctx

PLAN = NumberPlan(country_code="98", city_code="21")
# Verbatim from issue 12 (trailing blank included): no extension, no duration.
NO_EXT = "12/20/11   7:09PM      01   <    incoming    >02172324761                 .... "
ANSWERED = "12/20/11   7:09PM 102  01   <    incoming    >02172324761       00:01'05\" ...."
OTHER_CALLER = "12/20/11   7:10PM 103  02   <    incoming    >02155554444       00:00'30\" ...."
OUTGOING = "12/20/11   7:40PM 101  01 09155213422                           00:00'04\" ...."
SAMPLE_LINE = " 1/ 4/05   1:08AM 101  01   <    incoming    >                  00:00'08\" ...."


def decode(*lines: str, kind: str = "panasonic") -> list[Item]:
    decoder = LegacyDecoder(kind, tz=UTC, clock=stepping_clock())
    out: list[Item] = []
    for line in lines:
        out += decoder.feed_bytes(line.encode("latin-1") + b"\r\n")
    return out + decoder.flush()


def calls(items: list[Item]) -> list[dict[str, Any]]:
    return [call_json(i, "main", PLAN) for i in items if isinstance(i, LegacyCall)]


@pytest.mark.parametrize("kind", ["panasonic", "panasonic-tes"])
def test_an_incoming_record_with_no_extension_alone_is_a_missed_call_not_a_quarantined_line(kind: str) -> None:
    items = decode(NO_EXT, kind=kind)
    assert not [i for i in items if isinstance(i, Quarantined)], items
    got = calls(items)
    assert len(got) == 1
    missed = got[0]
    assert (missed["direction"], missed["status"], missed["extension"], missed["line"]) == (
        "inbound", "missed", "", "01")
    assert missed["number_raw"] == "02172324761" and missed["number"] == "+982172324761"
    assert missed["started_at"] == "2011-12-20T19:09:00+00:00" and missed["talk_seconds"] == 0
    assert missed["tags"]["smdr_layout"] == "tes"


def test_it_rings_at_once_for_screen_pops_and_is_recorded_when_no_answered_line_follows() -> None:
    decoder = LegacyDecoder("panasonic", tz=UTC, clock=stepping_clock())
    first = decoder.feed_bytes(NO_EXT.encode() + b"\r\n")
    assert [type(i) for i in first] == [Ringing]
    assert first[0].line == "01" and first[0].number_raw == "02172324761" and first[0].extension == ""
    later = decoder.feed_bytes(OUTGOING.encode() + b"\r\n")  # 31 min later on the PBX clock: nobody answered
    assert [(c["direction"], c["status"]) for c in calls(later)] == [("inbound", "missed"), ("outbound", "answered")]


def test_the_ring_record_then_the_answered_line_of_the_same_caller_is_one_answered_call() -> None:
    got = calls(decode(NO_EXT, OTHER_CALLER, ANSWERED))
    assert [(c["status"], c["extension"], c["number_raw"]) for c in got] == [
        ("answered", "103", "02155554444"), ("answered", "102", "02172324761")]
    merged = got[1]
    assert merged["started_at"] == "2011-12-20T19:09:00+00:00" and merged["talk_seconds"] == 65
    assert merged["tags"]["ring_record"] is True


def test_a_resent_buffer_does_not_bring_the_merged_call_back_as_a_missed_one() -> None:
    items = decode(NO_EXT, ANSWERED, NO_EXT, ANSWERED)
    assert [(c["status"], c["extension"]) for c in calls(items)] == [("answered", "102")]
    assert sum(isinstance(i, Duplicate) for i in items) == 2


def test_the_same_missed_call_printed_twice_is_one_call() -> None:
    items = decode(NO_EXT, NO_EXT)
    assert [c["status"] for c in calls(items)] == ["missed"]


def test_an_outgoing_record_with_no_extension_is_still_quarantined() -> None:
    line = "12/20/11   7:40PM      01 09155213422                           00:00'04\" ...."
    items = decode(line)
    assert len(items) == 1 and isinstance(items[0], Quarantined) and "extension" in items[0].reason


def test_the_shared_sample_format_still_gives_its_answered_call() -> None:
    got = calls(decode(SAMPLE_LINE))
    assert [(c["status"], c["extension"], c["talk_seconds"]) for c in got] == [("answered", "101", 8)]


def test_on_a_quiet_line_the_held_ring_is_recorded_as_missed_after_fifteen_minutes() -> None:
    now = [datetime(2026, 12, 5, 9, 0, tzinfo=UTC)]
    decoder = LegacyDecoder("panasonic", tz=UTC, clock=lambda: now[0])
    decoder.feed_bytes(NO_EXT.encode() + b"\r\n")
    assert decoder.tick() == []
    now[0] += timedelta(minutes=14)
    assert decoder.tick() == []
    now[0] += timedelta(minutes=1)
    got = calls(decoder.tick())
    assert [(c["status"], c["tags"]["closed_by"]) for c in got] == [("missed", "no_answer_record")]
    assert calls(decoder.flush()) == []


async def test_the_service_publishes_the_ring_and_stores_the_missed_call_with_nothing_quarantined(
        store: CallStore, tmp_path: Path) -> None:
    pbx = await FakePanasonic().start()
    ctx = make_ctx(store, tmp_path, pbx.port)
    sub = ctx.bus.subscribe("call.")
    try:
        async with run(ctx):
            await asyncio.wait_for(pbx.logged_in.wait(), 10)
            await pbx.send(NO_EXT.encode() + b"\r\n")
            ringing = await asyncio.wait_for(sub.get(), 10)
            assert ringing.topic == "call.ringing" and ringing.data["number_raw"] == "02172324761"
            await pbx.send(OUTGOING.encode() + b"\r\n")  # half an hour later: nobody answered that ring

            async def two_calls() -> bool:
                return await count(store, "SELECT count(*) FROM calls") == 2

            await eventually(two_calls)
        assert await count(store, "SELECT count(*) FROM calls WHERE status = 'missed' AND extension = ''"
                                  " AND caller_raw = '02172324761'") == 1
        assert await count(store, "SELECT count(*) FROM quarantine") == 0
    finally:
        await pbx.close()
