"""The import decoder gives exactly the live decoder's calls, duplicates, alarms and quarantine, byte for byte."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridges.legacy_pbx.bulk_decoder import BulkSmdrDecoder, import_decoder
from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.records import Item, LegacyCall, Quarantined
from bridges.legacy_pbx.testing import garbage_lines
from callcenter.config import LegacySettings, PbxConfig


def a_line(time: str, ext: str, co: str, dial: str, ring: str = "", dur: str = "", acc: str = "", cd: str = "") -> str:
    """One Pattern A line, columns as the manual puts them."""
    return f"06/01/11 {time:7} {ext:>5} {co:2} {dial:25} {ring:4} {dur:8} {acc:10} {cd:3}"


A_OUT = a_line("15:11", "101", "01", "09332991400", dur="00:00'39")
A_RC = a_line("15:12", "102", "02", "<I>09121234567", cd="RC")
A_AN = a_line("15:12", "102", "02", "<I>09121234567", "0'07", cd="AN")
A_END = a_line("15:14", "102", "02", "<I>09121234567", "0'07", "00:02'00")
A_NA = a_line("15:20", "103", "03", "<I>09127654321", "0'59", "00:00'00", cd="NA")
DIALS = [  # Dial columns the plain shortcut must leave to the general classification
    a_line("15:15", "105", "01", "<I>ABC CO 0912345678", "0'05", "00:01'00"),
    a_line("15:15", "105", "01", "<D>4400<I>0912345678", "0'05", "00:01'00"),
    a_line("15:16", "106", "01", "EXT107", dur="00:00'10"),
    a_line("15:16", "106", "01", "9=0912345678", dur="00:00'10"),
    a_line("15:16", "106", "01", "0912345-45", dur="00:00'10", acc="..1234", cd="TR"),
    a_line("15:16", "106", "01", "09123P45F", dur="00:00'10"),
    a_line("15:16", "106", "01", "0912..45", dur="00:00'00"),
    a_line("15:16", "106", "01", "LOG IN"),
    a_line("15:16", "106", "01", "<UCD waiting>0912", dur="00:00'10"),
    a_line("15:16", "106", "01", "<I>", "0'05", cd="RC"),
    a_line("15:16", "D106", "01", "<I>0912345678", "0'05", cd="NA"),
    a_line("15:16", "106", "01", "<I>0912345678", "0'05", cd="XY"),
    a_line("15:16", "106", "01", "0912345678"),
]
B_HEADER = "Date     Time    Ext   CO  Dial Number          Duration  Cost       Acc code   CD"
B_RC = f"06/01/11 15:30     104 04 {'<I>0912000111':20} {'':8} {'':10} {'':10} RC "  # Pattern B: 81 columns
ODD = [
    "13/45/11 15:11     101 01 09332991400                    00:00'39               ",  # no such date
    "06/01/11 25:11     101 01 09332991400                    00:00'39               ",  # no such hour
    "06/01/11 15:11     1x1 01 09332991400                    00:00'39               ",  # bad extension
    "06/01/11 15:11     101 0a 09332991400                    00:00'39               ",  # bad CO
    "06/01/11 15:11     101 01 09332991400                    00:61'39               ",  # minute 61: taken by both
    "06/01/11 15:11     101 01 09332991400               9'99 00:00'39               ",  # bad ring
    "06/01/11 15:11     101 01 09332991400                    00:00'39            R! ",  # bad CD
    "06/01/11 15:11     101 01 ALM 510 00 10000               00:00'39               ",  # alarm-like dial
    "06/01/11 15:11     101 01 0933\x852991400                   00:00'39               ",  # control character
    "06/01/11 15:11     101 01 <X>0933299140                  00:00'39               ",  # unknown marker
    "06/01/11 15:11     101 01 0933299140                                            ",  # half line
    "06/01/11 01:06PM  *123 01 1234567890123456               00:01'05 9876543210    ",  # 12 h, verified code
    "06/01/11 15:11     101 01 09332991400                    00:00'39 :123456789    ",  # ':' where TES has it
    " 6/ 1/11 15:11     101 01 09332991400                    00:00'39  ...12345  TR ",
    "6/ 1/11 15:11     101 01 09332991400                    00:00'39               ",  # lost leading blank
    "06/01/11 15:11     101 01 09332991400                    00:00'39",  # lost trailing blanks
    "06/01/11 15:12  MN ALM #510 00 10000 SMDR disconnect",
    "# an annotation",
    "x" * 600,
]


def decode(decoder: LegacyDecoder, data: bytes, step: int) -> list[Item]:
    out: list[Item] = []
    for start in range(0, len(data), step):
        out += decoder.feed_bytes(data[start : start + step])
    return out + decoder.flush()


FAST: list[int] = []  # lines the last ``both`` sent down the fast path


def both(data: bytes, step: int = 1 << 20, **kwargs: Any) -> tuple[list[Item], list[Item]]:
    fast = BulkSmdrDecoder(tz=UTC, **kwargs)
    bulk = decode(fast, data, step)
    FAST[:] = [fast.fast_lines]
    return decode(LegacyDecoder("panasonic", tz=UTC, **kwargs), data, step), bulk


@pytest.mark.parametrize("name", ["panasonic-pattern-a-tcp.smdr", "panasonic-tes824-rs232.smdr"])
def test_the_shared_samples_give_the_same_items_through_both_decoders(
        sample: Callable[[str], bytes], name: str) -> None:
    data = sample(name)
    for step in (1 << 20, 97):
        live, bulk = both(data, step)
        assert bulk == live
    if name.startswith("panasonic-pattern-a"):
        assert sum(isinstance(i, LegacyCall) for i in live) == 6 and FAST == [21]
    else:
        assert FAST == [0]  # TES lines are never Pattern A


def test_odd_lines_go_the_careful_way_and_are_quarantined_with_the_same_reason() -> None:
    lines = [A_OUT, A_RC, A_AN, A_END, *ODD, A_NA, A_OUT]
    data = "\r\n".join(lines).encode("latin-1") + b"\r\n"
    live, bulk = both(data)
    assert bulk == live and FAST == [11]
    reasons = [i.reason for i in bulk if isinstance(i, Quarantined)]
    assert any("bad date" in r for r in reasons) and any("bad extension" in r for r in reasons)
    assert any("longer than 512" in r for r in reasons)


def test_dial_columns_of_every_kind_read_the_same_through_both_decoders() -> None:
    data = "\r\n".join([A_RC, *DIALS, A_AN, A_END]).encode("latin-1") + b"\r\n"
    live, bulk = both(data)
    assert bulk == live and FAST == [len(DIALS) + 3]
    assert sum(isinstance(i, Quarantined) for i in live) >= 2


def test_a_header_switching_the_layout_is_followed_by_the_fast_path_too() -> None:
    data = "\r\n".join([A_RC, B_HEADER, B_RC, A_AN, A_END, A_OUT]).encode("latin-1") + b"\r\n"
    live, bulk = both(data)
    assert bulk == live
    live_a, bulk_a = both(data, smdr_format="a")
    assert bulk_a == live_a


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([A_OUT, A_RC, A_AN, A_END, A_NA, B_HEADER, B_RC, *ODD, *DIALS]),
                          st.tuples(st.sampled_from([A_OUT, A_END, A_NA]), st.integers(0, 79),
                                    st.characters(codec="latin-1")).map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + 1:]),
                          st.integers(0, 10**6).map(
                              lambda s: garbage_lines(random.Random(s), 1)[0].decode("latin-1").rstrip("\r\n"))),
                max_size=40),
       st.sampled_from(["\r\n", "\n", "\r"]), st.integers(1, 200))
def test_any_mix_of_valid_lines_and_garbage_gives_the_same_items(lines: list[str], end: str, step: int) -> None:
    data = "".join(line + end for line in lines).encode("latin-1")
    live, bulk = both(data, step)
    assert bulk == live


def test_import_takes_the_fast_decoder_only_where_it_applies() -> None:
    def pbx(kind: str, fmt: str) -> PbxConfig:
        return PbxConfig(key="k", kind=kind, legacy=LegacySettings(smdr_format=fmt))

    assert isinstance(import_decoder(pbx("panasonic", "auto")), BulkSmdrDecoder)
    assert isinstance(import_decoder(pbx("panasonic", "a")), BulkSmdrDecoder)
    assert not isinstance(import_decoder(pbx("panasonic", "tes")), BulkSmdrDecoder)
    assert not isinstance(import_decoder(pbx("segal", "auto")), BulkSmdrDecoder)
