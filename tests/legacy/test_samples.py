"""Every shared sample parses into the calls a person reading it would expect, written out call by call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.normalize import call_json
from bridges.legacy_pbx.records import Alarm, Duplicate, Item, LegacyCall, Notice, Quarantined
from bridges.legacy_pbx.testing import stepping_clock
from callcenter.numbers import NumberPlan

PLAN = NumberPlan(country_code="98", city_code="21")
FIELDS = ("direction", "status", "extension", "line", "number", "number_raw", "started_at", "ring_seconds",
          "talk_seconds", "codes")


def decode(kind: str, data: bytes, **kwargs: Any) -> list[Item]:
    decoder = LegacyDecoder(kind, tz=UTC, clock=stepping_clock(), **kwargs)
    return decoder.feed_bytes(data) + decoder.flush()


def calls_of(items: list[Item]) -> list[dict[str, Any]]:
    return [{k: call_json(i, "main", PLAN)[k] for k in FIELDS} for i in items if isinstance(i, LegacyCall)]


def call(direction: str, status: str, ext: str, line: str, raw: str, number: str, started: str, ring: int,
         talk: int, codes: list[str] | None = None) -> dict[str, Any]:
    return {"direction": direction, "status": status, "extension": ext, "line": line, "number": number,
            "number_raw": raw, "started_at": started, "ring_seconds": ring, "talk_seconds": talk,
            "codes": codes or []}


def test_pattern_a_sample_gives_one_missed_and_five_answered_calls_once_each(sample: Callable[[str], bytes]) -> None:
    items = decode("panasonic", sample("panasonic-pattern-a-tcp.smdr"), date_order="mdy")
    caller, callee = "09155213422", "09332991400"
    assert calls_of(items) == [
        # RC 15:03 then NA 15:04 after 59 s of ringing: one missed call.
        call("inbound", "missed", "101", "01", caller, "+989155213422", "2011-06-01T15:03:00+00:00", 59, 0),
        # RC, AN (15 s ring), final 15:07 (14 s talk): one answered call.
        call("inbound", "answered", "101", "01", caller, "+989155213422", "2011-06-01T15:06:00+00:00", 15, 14),
        # Outgoing, printed at its end (15:11) with 39 s of talk.
        call("outbound", "answered", "101", "01", callee, "+989332991400", "2011-06-01T15:10:21+00:00", 0, 39),
        # (the block 15:06-15:11 printed again is the same two calls: not repeated)
        call("outbound", "answered", "101", "01", callee, "+989332991400", "2011-06-01T15:48:36+00:00", 0, 24),
        call("inbound", "answered", "101", "01", caller, "+989155213422", "2011-06-01T16:15:00+00:00", 11, 19),
        # (15:47 … 16:16 re-sent buffer: the same two calls again, not repeated)
        call("inbound", "answered", "101", "01", caller, "+989155213422", "2011-06-01T16:21:00+00:00", 12, 6),
    ]
    assert sum(isinstance(i, Duplicate) for i in items) == 4
    alarms = [i for i in items if isinstance(i, Alarm)]
    assert len(alarms) == 14 and all("MN ALM #510" in a.text for a in alarms)
    quarantined = [i for i in items if isinstance(i, Quarantined)]
    assert len(quarantined) == 9 and all(q.raw.startswith(b"#") for q in quarantined)


def test_tes824_sample_gives_nine_calls_with_start_times_in_twelve_hour_clock(sample: Callable[[str], bytes]) -> None:
    items = decode("panasonic", sample("panasonic-tes824-rs232.smdr"), date_order="mdy")
    out = "09155213422"
    other = "09332991400"
    assert calls_of(items) == [
        call("inbound", "answered", "101", "01", "", "", "2005-01-04T00:11:00+00:00", 0, 7),
        call("outbound", "answered", "101", "01", out, "+989155213422", "2005-01-04T00:23:00+00:00", 0, 4),
        call("inbound", "answered", "101", "01", "", "", "2005-01-04T01:08:00+00:00", 0, 8),
        call("outbound", "answered", "101", "01", "091", "091", "2005-01-04T01:27:00+00:00", 0, 3),
        call("outbound", "answered", "101", "01", other, "+989332991400", "2005-01-04T01:27:00+00:00", 0, 22),
        call("inbound", "answered", "101", "01", "", "", "2005-01-04T02:11:00+00:00", 0, 9),
        call("inbound", "answered", "101", "01", "", "", "2005-01-04T02:39:00+00:00", 0, 1),
        call("outbound", "answered", "101", "01", other, "+989332991400", "2005-01-04T02:40:00+00:00", 0, 10),
        call("inbound", "answered", "107", "01", "", "", "2005-01-06T01:55:00+00:00", 0, 45),
    ]
    quarantined = [i for i in items if isinstance(i, Quarantined)]
    assert [q.raw[:1] for q in quarantined] == [b"#", b"#"]


def test_the_tes824_sample_is_read_the_same_when_forced_to_the_tes_layout(sample: Callable[[str], bytes]) -> None:
    data = sample("panasonic-tes824-rs232.smdr")
    assert calls_of(decode("panasonic-tes", data)) == calls_of(decode("panasonic", data))


def test_segal_sample_gives_one_answered_incoming_and_three_outgoing_calls(sample: Callable[[str], bytes]) -> None:
    items = decode("segal", sample("segal-serial.cid"))
    got = calls_of(items)
    # The clock moves one second per record; what matters is the shape of each call.
    assert [(c["direction"], c["status"], c["line"], c["number_raw"], c["talk_seconds"]) for c in got] == [
        # Caller ID, four rings, off hook: answered; on hook after T0257 = 2 min 57 s.
        ("inbound", "answered", "1", "09196414149", 177),
        # Off hook, digits, on hook: outgoing calls to the number the box collected (HND:...).
        ("outbound", "answered", "1", "09125914966", 65),
        ("outbound", "answered", "1", "09127620316", 21),
        ("outbound", "answered", "1", "0912307494692", 274),
    ]
    assert got[0]["number"] == "+989196414149"
    first = next(i for i in items if isinstance(i, LegacyCall))
    # The box's own timer (T0257) wins over arrival times: answered 2 min 57 s before the on-hook record.
    assert first.ended_at is not None and first.answered_at is not None
    assert (first.ended_at - first.answered_at).total_seconds() == 177
    # The last off-hook dialled nothing (HND: T0000): a notice, not a call.
    assert any(isinstance(i, Notice) and "nothing dialled" in i.text for i in items)
    quarantined = [i for i in items if isinstance(i, Quarantined)]
    assert len(quarantined) == 1 and quarantined[0].raw.startswith(b"# Source")
