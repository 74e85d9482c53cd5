"""Panasonic layouts, date orders, dial-number forms, caller-ID boxes — tested on bytes, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.normalize import call_json, call_record
from bridges.legacy_pbx.panasonic import SmdrLineParser
from bridges.legacy_pbx.records import Alarm, Answered, Item, LegacyCall, Notice, Quarantined, Ringing
from bridges.legacy_pbx.testing import stepping_clock
from callcenter.domain import Direction, Source, call_id_for
from callcenter.numbers import NumberPlan

PLAN = NumberPlan(country_code="98", city_code="21", outside_line_prefix="9", excluded_extensions=frozenset({"1200"}))

# Lines written from the KX-TDA/NS manuals' Pattern A / B / C example tables (12 h clock).
A_MISSED_12H = "01/02/02 10:03AM  1200 01 <I>12345678901234567890   5'15 00:00'00            NA "
A_VERIFIED = "01/02/02 01:07PM  *123 01 1234567890123456               00:01'05 9876543210    "
A_DDI_NAME = "01/02/02 01:07PM  1234 01 <D>CDE9876<I>Q COMPANY    0'05 00:01'05               "
A_SECRET = "01/02/02 01:07PM  1234 01 123..............              00:01'05               "
A_PRIVACY = "01/02/02 01:07PM  1234 01 123456XX                       00:01'05               "
A_LOGIN = "01/02/02 01:07PM  1234    LOG IN                                                "
A_INTERNAL = "01/02/02 03:35PM  1234    EXT1235                        00:00'12               "
A_DOOR = "01/02/02 04:05PM  D101 01 0312345678                     00:00'30               "
A_TIE = "01/02/02 04:05PM  T201 02 0312345678                     00:00'30               "
A_TRANSFER = "01/02/02 04:05PM  1234 01 <I>0212345678             0'05 00:02'00            TR "
A_FORWARD = "01/02/02 04:05PM  1234 01 90312345678                    00:02'00            FW "
A_DISA = "01/02/02 04:05PM  1234 01 <I>0212345678             0'05 00:02'00            D0 "
B_HEADER = "  Date     Time    Ext CO   Dial Number       Duration   Cost     Acc code   CD"
B_OUT = "01/02/02 10:07AM  2005 01 1234567890123456789  00:00'05 00560.00EU 9876543210    "
B_MISSED = "01/02/02 10:03AM  1210 01 <I>                                                 NA "
C_OUT = ("01/02/02 10:03AM  1230 0001 123456789012345678901234567890                          "
         "00:00'05 00560.00EUR 9876543210 TR ")
C_IN = ("01/02/02 10:07AM  1230 0001 <I>ABC COMPANY123456789012345                      0'05 "
        "00:00'05             9876543210 TR ")
TES_DISA = " 1/ 4/05  *1:04PM 203  01 <DISA incoming>0212345678             00:00'09\" ...."
TES_OUT_ACC = "12/31/98   1:04PM 203  06 092...1438                            00:00'06\" 4536"


def decode_lines(*lines: str, kind: str = "panasonic", **kwargs: Any) -> list[Item]:
    decoder = LegacyDecoder(kind, tz=UTC, clock=stepping_clock(), **kwargs)
    out: list[Item] = []
    for line in lines:
        out += decoder.feed_bytes(line.encode("latin-1") + b"\r\n")
    return out + decoder.flush()


def only_call(items: list[Item]) -> dict[str, Any]:
    calls = [i for i in items if isinstance(i, LegacyCall)]
    assert len(calls) == 1, items
    return call_json(calls[0], "main", PLAN)


def test_the_layout_lines_are_as_wide_as_the_manuals_say() -> None:
    assert {len(x) for x in (A_MISSED_12H, A_VERIFIED, A_DDI_NAME, A_LOGIN, A_TRANSFER)} == {80}
    assert {len(B_OUT), len(B_MISSED)} == {81} and len(C_OUT) == len(C_IN) == 119


def test_pattern_a_missed_call_in_twelve_hour_clock_drops_an_excluded_ringing_extension() -> None:
    got = only_call(decode_lines(A_MISSED_12H))
    assert got["direction"] == "inbound" and got["status"] == "missed"
    assert got["started_at"] == "2002-01-02T09:57:45+00:00"  # 10:03 minus 5'15 of ringing
    assert got["ring_seconds"] == 315 and got["talk_seconds"] == 0
    assert got["extension"] == "" and got["tags"]["pbx_extension"] == "1200"
    assert got["number_raw"] == "12345678901234567890"


def test_pm_times_are_afternoon_and_12am_is_midnight() -> None:
    parser = SmdrLineParser("mdy", UTC)
    rec = parser.parse(A_VERIFIED)
    assert rec is not None and not isinstance(rec, Alarm) and rec.at.hour == 13
    midnight = parser.parse(A_VERIFIED.replace("01:07PM", "12:07AM"))
    assert midnight is not None and not isinstance(midnight, Alarm) and midnight.at.hour == 0


@pytest.mark.parametrize(("order", "expected"), [("mdy", (2011, 6, 1)), ("dmy", (2011, 1, 6)),
                                                 ("ymd", (2006, 1, 11)), ("ydm", (2006, 11, 1))])
def test_the_date_order_comes_from_the_pbx_setting(order: str, expected: tuple[int, int, int]) -> None:
    line = "06/01/11 15:11     101 01 09332991400                    00:00'39               "
    rec = SmdrLineParser(order, UTC).parse(line)
    assert rec is not None and not isinstance(rec, Alarm)
    assert (rec.at.year, rec.at.month, rec.at.day) == expected


def test_verified_code_doorphone_and_tie_line_extensions_are_tagged() -> None:
    assert only_call(decode_lines(A_VERIFIED))["tags"]["verified_code"] == "123"
    assert only_call(decode_lines(A_VERIFIED))["tags"]["account_code"] == "9876543210"
    assert only_call(decode_lines(A_DOOR))["tags"]["doorphone"] == "101"
    assert only_call(decode_lines(A_TIE))["tags"]["tie_line"] == "201"


def test_ddi_and_caller_name_are_split_from_the_number() -> None:
    got = only_call(decode_lines(A_DDI_NAME))
    assert got["direction"] == "inbound" and got["status"] == "answered"
    assert got["tags"]["ddi"] == "CDE9876" and got["tags"]["caller_name"] == "Q COMPANY"
    assert got["number_raw"] == "" and got["talk_seconds"] == 65


def test_secret_dots_and_privacy_x_keep_the_raw_number_but_no_normalised_one() -> None:
    secret = only_call(decode_lines(A_SECRET))
    assert secret["number"] == "" and secret["number_raw"] == "123.............." and secret["tags"]["secret"]
    private = only_call(decode_lines(A_PRIVACY))
    assert private["number"] == "" and private["tags"]["privacy"]


def test_log_in_lines_are_notices_and_ext_calls_are_internal() -> None:
    items = decode_lines(A_LOGIN)
    assert not [i for i in items if isinstance(i, LegacyCall | Quarantined)]
    assert any(isinstance(i, Notice) and "LOG IN" in i.text for i in items)
    internal = only_call(decode_lines(A_INTERNAL))
    assert internal["direction"] == "internal" and internal["number"] == "1235"


def test_transfer_forward_and_disa_codes_are_kept_and_the_outside_prefix_is_stripped() -> None:
    assert only_call(decode_lines(A_TRANSFER))["codes"] == ["TR"]
    forward = only_call(decode_lines(A_FORWARD))
    assert forward["codes"] == ["FW"] and forward["number"] == "+98312345678"
    assert forward["number_raw"] == "90312345678"
    disa = only_call(decode_lines(A_DISA))
    assert disa["codes"] == ["D0"] and disa["tags"]["disa"] is True


def test_pattern_b_with_call_charge_is_recognised_after_its_header() -> None:
    items = decode_lines(B_HEADER, B_OUT, B_MISSED)
    calls = [call_json(i, "main", PLAN) for i in items if isinstance(i, LegacyCall)]
    assert [(c["direction"], c["status"], c["talk_seconds"]) for c in calls] == [
        ("outbound", "answered", 5), ("inbound", "missed", 0)]
    assert calls[0]["tags"]["account_code"] == "9876543210" and calls[0]["tags"]["smdr_layout"] == "b"


def test_pattern_c_has_four_digit_trunks_and_fifty_column_numbers() -> None:
    items = decode_lines(C_OUT, C_IN)
    calls = [call_json(i, "main", PLAN) for i in items if isinstance(i, LegacyCall)]
    assert [(c["direction"], c["line"], c["codes"]) for c in calls] == [
        ("outbound", "0001", ["TR"]), ("inbound", "0001", ["TR"])]
    assert calls[0]["number_raw"] == "123456789012345678901234567890"
    assert calls[1]["tags"]["caller_name"] == "ABC COMPANY" and calls[1]["ring_seconds"] == 5


def test_tes_disa_incoming_transferred_and_account_code() -> None:
    disa = only_call(decode_lines(TES_DISA))
    assert disa["direction"] == "inbound" and disa["codes"] == ["TR"] and disa["tags"]["via"] == "DISA"
    assert disa["number_raw"] == "0212345678" and disa["started_at"] == "2005-01-04T13:04:00+00:00"
    out = only_call(decode_lines(TES_OUT_ACC))
    assert out["tags"]["account_code"] == "4536" and out["tags"]["secret"] is True


def test_rc_then_an_then_final_is_one_call_and_rc_is_a_ringing_signal() -> None:
    rc = "06/01/11 15:06     101 01 <I>09155213422                                     RC "
    an = "06/01/11 15:06     101 01 <I>09155213422            0'15                     AN "
    final = "06/01/11 15:07     101 01 <I>09155213422            0'15 00:00'14               "
    items = decode_lines(rc, an, final)
    assert isinstance(items[0], Ringing) and items[0].number_raw == "09155213422"
    got = only_call(items)
    assert got["answered_at"] == "2011-06-01T15:06:00+00:00" and got["ended_at"] == "2011-06-01T15:07:00+00:00"


def test_a_ringing_only_record_at_the_end_of_a_file_is_a_missed_call() -> None:
    rc = "06/01/11 15:06     101 01 <I>09155213422                                     RC "
    got = only_call(decode_lines(rc))
    assert got["status"] == "missed" and got["tags"]["closed_by"] == "end_of_capture"


def test_a_ring_with_no_closing_record_for_15_minutes_is_closed_as_missed() -> None:
    rc = "06/01/11 15:06     101 01 <I>09155213422                                     RC "
    later = "06/01/11 15:30     102 02 09332991400                    00:00'39               "
    decoder = LegacyDecoder("panasonic", tz=UTC)
    items = decoder.feed_bytes((rc + "\r\n" + later + "\r\n").encode())
    calls = [call_json(i, "main", PLAN) for i in items if isinstance(i, LegacyCall)]
    assert [(c["direction"], c["status"]) for c in calls] == [("inbound", "missed"), ("outbound", "answered")]
    assert calls[0]["tags"]["closed_by"] == "no_answer_record"


def test_an_an_record_says_the_ringing_line_was_answered_and_by_which_extension() -> None:
    rc = "06/01/11 15:06     101 01 <I>09155213422                                     RC "
    an = "06/01/11 15:06     102 01 <I>09155213422            0'15                     AN "
    items = decode_lines(rc, an)
    assert [type(i) for i in items[:2]] == [Ringing, Answered]
    assert (items[1].line, items[1].extension, items[1].number_raw) == ("01", "102", "09155213422")


def test_a_ring_nobody_closes_on_a_quiet_pbx_is_missed_after_15_minutes_of_this_machines_clock() -> None:
    """NA printing off and no other call: no later record closes the ring, the live view must not keep it."""
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    now = [t0]
    decoder = LegacyDecoder("panasonic", tz=UTC, clock=lambda: now[0])
    decoder.feed_bytes(b"06/01/11 15:06     101 01 <I>09155213422                                     RC \r\n")
    assert decoder.tick() == []
    now[0] = t0 + timedelta(minutes=14)
    assert decoder.tick() == []
    now[0] = t0 + timedelta(minutes=15)
    got = only_call(decoder.tick())
    assert (got["status"], got["line"], got["tags"]["closed_by"]) == ("missed", "01", "no_answer_record")


def test_an_answered_ring_stays_in_progress_on_a_quiet_pbx() -> None:
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    now = [t0]
    decoder = LegacyDecoder("panasonic", tz=UTC, clock=lambda: now[0])
    decoder.feed_bytes(b"06/01/11 15:06     101 01 <I>09155213422                                     RC \r\n"
                       b"06/01/11 15:06     101 01 <I>09155213422            0'15                     AN \r\n")
    decoder.tick()
    now[0] = t0 + timedelta(hours=2)
    assert decoder.tick() == []  # a long call: its final record closes it


def test_input_marker_is_an_incoming_call() -> None:
    line = "06/01/11 15:07     101 01 " + f"{'<Input>0912':25}" + " 0'15 00:00'14               "
    got = only_call(decode_lines(line))
    assert got["direction"] == "inbound" and got["number_raw"] == "0912"


def test_the_same_line_resent_later_or_with_lost_padding_is_the_same_call() -> None:
    line = "06/01/11 15:11     101 01 09332991400                    00:00'39               "
    first = next(i for i in decode_lines(line) if isinstance(i, LegacyCall))
    again = next(i for i in decode_lines(line.rstrip()) if isinstance(i, LegacyCall))
    assert first.natural_key == again.natural_key
    assert call_record(first, "main", PLAN).id == call_id_for("main", first.natural_key)
    record = call_record(first, "main", PLAN)
    assert record.source is Source.SMDR and record.direction is Direction.OUTBOUND
    assert record.callee == "+989332991400" and record.caller == "101" and record.billsec == 39


@pytest.mark.parametrize(("line", "reason"), [
    ("# an annotation", "annotation"),
    ("06/01/11 15:11     101 01 09332991400                    00:0x'39               ", "duration"),
    ("13/45/11 15:11     101 01 09332991400                    00:00'39               ", "date"),
    ("06/01/11 15:11     101 01 09332991400                    00:00'39                XYZ123", "longer"),
    ("06/01/11 15:11     1x1 01 09332991400                    00:00'39               ", "extension"),
    ("hello world, this is not SMDR at all", "no date"),
])
def test_bad_lines_are_quarantined_with_a_reason(line: str, reason: str) -> None:
    items = decode_lines(line)
    assert len(items) == 1 and isinstance(items[0], Quarantined)
    assert reason in items[0].reason and items[0].raw == line.encode()


def test_alarm_lines_are_alarms_not_calls() -> None:
    items = decode_lines("06/01/11 15:49    MN ALM #510 00 10000 SMDR disconnect")
    assert items == [Alarm("06/01/11 15:49 MN ALM #510 00 10000 SMDR disconnect")]


def test_segal_ring_without_answer_is_a_missed_call_once_the_rings_stop() -> None:
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    now = [t0]
    decoder = LegacyDecoder("segal", clock=lambda: now[0])
    decoder.feed_bytes(b"L2C02188776655@\r\nL2R01@")
    now[0] = t0 + timedelta(seconds=5)
    decoder.feed_bytes(b"L2R02@")
    now[0] = t0 + timedelta(seconds=7)
    assert not [i for i in decoder.tick() if isinstance(i, LegacyCall)]
    now[0] = t0 + timedelta(seconds=20)
    calls = [i for i in decoder.tick() if isinstance(i, LegacyCall)]
    assert len(calls) == 1
    got = call_json(calls[0], "main", PLAN)
    assert (got["direction"], got["status"], got["line"], got["number"]) == ("inbound", "missed", "2", "+982188776655")
    assert got["ring_seconds"] == 5 and got["tags"]["rings"] == 2


def test_segal_off_hook_while_ringing_is_an_answer_and_a_late_number_completes_the_ring() -> None:
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    now = [t0]
    decoder = LegacyDecoder("segal", clock=lambda: now[0])
    first = decoder.feed_bytes(b"L1R01@")
    now[0] = t0 + timedelta(seconds=2)
    late = decoder.feed_bytes(b"L1C09121234567@")
    now[0] = t0 + timedelta(seconds=4)
    assert decoder.feed_bytes(b"L1C09121234567@L1R02@") == []  # the number again: nothing new to say
    now[0] = t0 + timedelta(seconds=6)
    answered = decoder.feed_bytes(b"L1HF@")
    assert first == [Ringing("1", "", "", t0)]
    assert late == [Ringing("1", "", "09121234567", t0)]  # the same ring (same line and time), now with its caller
    assert answered == [Answered("1", "", "09121234567", t0 + timedelta(seconds=6))]


def test_segal_records_need_no_newlines_between_them() -> None:
    decoder = LegacyDecoder("segal", clock=stepping_clock())
    items = decoder.feed_bytes(b"L1HFL1HF@L1D0@L1D2@L1HND:02 T0003@")
    assert any(isinstance(i, Quarantined) and i.raw == b"L1HFL1HF@" for i in items)
    calls = [i for i in items if isinstance(i, LegacyCall)]
    assert len(calls) == 1 and calls[0].number_raw == "02" and calls[0].talk_seconds == 3


def test_danjeh_ring_hook_off_hook_on_and_dialled_digits() -> None:
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    now = [t0]
    decoder = LegacyDecoder("danjeh", clock=lambda: now[0])
    items = decoder.feed_bytes(b"L1?09121234567@\nL1 hook-off\n")
    now[0] = t0 + timedelta(seconds=42)
    items += decoder.feed_bytes(b"L1 hook-on\nL2 hook-off\nL2 Dialed 02144556677\n")
    now[0] = t0 + timedelta(seconds=100)
    items += decoder.feed_bytes(b"hook-on L2\nsomething else\n")
    calls = [call_json(i, "main", PLAN) for i in items if isinstance(i, LegacyCall)]
    assert [(c["direction"], c["status"], c["line"], c["number"], c["talk_seconds"]) for c in calls] == [
        ("inbound", "answered", "1", "+989121234567", 42),
        ("outbound", "answered", "2", "+982144556677", 58),
    ]
    assert all(c["source"] == "cid" for c in calls)
    assert [i.raw for i in items if isinstance(i, Quarantined)] == [b"something else"]


def test_a_caller_id_of_only_a_plus_sign_is_kept_raw_without_a_normalised_number() -> None:
    line = "06/01/11 15:07     101 01 <I>+                      0'15 00:00'14               "
    got = only_call(decode_lines(line))
    assert got["number_raw"] == "+" and got["number"] == ""


def test_pbx_times_follow_the_zone_rules_on_a_daylight_saving_day() -> None:
    import zoneinfo

    parser = SmdrLineParser("mdy", zoneinfo.ZoneInfo("Europe/Berlin"))
    before = parser.stamp("03/26/23", "01:30  ")
    after = parser.stamp("03/26/23", "03:30  ")
    assert before.utcoffset() == timedelta(hours=1) and after.utcoffset() == timedelta(hours=2)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(hours=1)  # 02:00-03:00 never was
