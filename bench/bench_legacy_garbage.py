"""Garbage lines per second through the live Panasonic decoder, and valid lines inside a flood vs alone.

Moved from tests/legacy/test_garbage.py (issue 15: speed is measured here, not asserted in tests). The
correctness half (every garbage line quarantined, every valid line a call) stays in the test.

* garbage: 1 M lines of noise, half records and binary fed in 10,000-line chunks → lines/s;
* flood: 600 valid lines timed alone, then again right after 20,000 garbage lines → ratio (1.0 = unaffected;
  the old test wanted < 3).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.records import LegacyCall, Quarantined
from bridges.legacy_pbx.testing import garbage_lines, stepping_clock

GOOD = b"06/01/11 15:11     101 01 09332991400                    00:00'39               \r\n"


def garbage_rate(chunks: int = 100) -> tuple[int, int, float]:
    decoder = LegacyDecoder("panasonic", clock=stepping_clock())
    chunk = b"".join(garbage_lines(random.Random(7), 10_000))
    quarantined = 0
    started = time.perf_counter()
    for _ in range(chunks):
        quarantined += sum(isinstance(i, Quarantined) for i in decoder.feed_bytes(chunk))
    return chunks * chunk.count(b"\n"), quarantined, time.perf_counter() - started


def flood_ratio() -> tuple[float, float]:
    decoder = LegacyDecoder("panasonic", clock=stepping_clock())
    flood = b"".join(garbage_lines(random.Random(11), 20_000))
    days = iter(range(1, 29))

    def time_valid() -> float:
        day = f"06/{next(days):02d}/11".encode()  # a fresh day: fresh keys, the same work each time
        lines = [GOOD.replace(b"15:11", f"{h:02d}:{m:02d}".encode()).replace(b"06/01/11", day)
                 for h in range(10, 20) for m in range(60)]
        started = time.perf_counter()
        calls = sum(isinstance(i, LegacyCall) for line in lines for i in decoder.feed_bytes(line))
        assert calls == len(lines)
        return time.perf_counter() - started

    def in_flood() -> float:
        decoder.feed_bytes(flood)
        return time_valid()

    best: Callable[[Callable[[], float]], float] = lambda f: min(f() for _ in range(3))  # noqa: E731
    return best(time_valid), best(in_flood)


def main() -> None:
    lines, quarantined, seconds = garbage_rate()
    print(f"garbage lines             : {lines:,} in {seconds:.2f} s = {lines / seconds:,.0f} lines/s "
          f"({quarantined:,} quarantined)")
    alone, during = flood_ratio()
    print(f"600 valid lines alone     : {alone * 1000:.1f} ms")
    print(f"600 valid lines in a flood: {during * 1000:.1f} ms = {during / alone:.2f}x alone")


if __name__ == "__main__":
    main()
