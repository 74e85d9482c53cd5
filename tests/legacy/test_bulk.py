"""The bulk import fast path reads every line exactly as the careful per-line parser does."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC
from typing import Any

from bridges.legacy_pbx.bulk import BulkPatternA
from bridges.legacy_pbx.panasonic import SmdrLineParser
from bridges.legacy_pbx.records import Alarm, LegacyParseError, SmdrRecord
from bridges.legacy_pbx.testing import garbage_lines


def careful(lines: list[str]) -> tuple[list[tuple[Any, ...]], int]:
    parser = SmdrLineParser("mdy", UTC, "a")
    records: list[tuple[Any, ...]] = []
    others = 0
    for line in lines:
        try:
            rec = parser.parse(line)
        except LegacyParseError:
            others += 1
            continue
        if isinstance(rec, SmdrRecord) and len(line) >= 80:
            records.append((rec.at, rec.extension, rec.co, rec.dial, rec.ring, rec.duration, rec.account, rec.cd))
        elif rec is None or isinstance(rec, Alarm) or len(line) < 80:
            others += 1
    return records, others


def test_bulk_columns_equal_the_careful_parser_on_the_sample_and_on_garbage(
        sample: Callable[[str], bytes]) -> None:
    text = sample("panasonic-pattern-a-tcp.smdr").decode("latin-1")
    noise = b"".join(garbage_lines(random.Random(1), 2000)).decode("latin-1")
    bad_date = "13/45/11 15:11     101 01 09332991400                    00:00'39               \r\n"
    bad_ext = "06/01/11 15:11     1x1 01 09332991400                    00:00'39               \r\n"
    twelve = "12/31/98 01:06PM  *123 01 1234567890123456               00:01'05 9876543210    \r\n"
    text = text + noise + bad_date + bad_ext + twelve
    batch = BulkPatternA("mdy", UTC).parse(text)
    got = list(zip(batch.at, batch.extension, batch.co, batch.dial, batch.ring, batch.duration, batch.account,
                   batch.cd, strict=True))
    lines = [line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r")]  # the regex's idea of a line
    expected, others = careful(lines)
    assert got == expected
    assert len(got) == 22 and len(batch.other) == others
    assert bad_date.rstrip("\r\n") in batch.other and bad_ext.rstrip("\r\n") in batch.other
    assert got[-1][0].hour == 13 and got[-1][0].year == 1998 and got[-1][6] == "9876543210"


def test_cut_gives_the_same_columns_as_strings_and_the_same_other_lines(sample: Callable[[str], bytes]) -> None:
    text = sample("panasonic-pattern-a-tcp.smdr").decode("latin-1")
    columns, others = BulkPatternA.cut(text)
    batch = BulkPatternA("mdy", UTC).parse(text)
    assert len(columns) == 9 and len(columns[0]) == len(batch) == 21
    assert [d.strip() for d in columns[4]] == batch.dial
    assert sorted(others) == sorted(batch.other)  # (the typed path lists bad-valued lines last)
