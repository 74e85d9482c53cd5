"""SMDR lines parsed per second for bulk import, against a ``str.split`` floor over the same file.

Three figures over one synthetic Pattern A capture (1 M lines: outgoing calls, RC/AN/final incoming calls,
NA misses, alarms and 2 % garbage), all in this process:

* floor: ``line.split()`` for every line of the text (what any parser must at least pay to look at a line);
* cut: :meth:`BulkPatternA.cut` — every line cut into columns whose characters are checked (strings);
* typed: :meth:`BulkPatternA.parse` — the same as typed columns (aware datetimes, seconds, validated values);
* full: the live decoder — lines → merged calls with natural keys, quarantine, alarms (what ``serve`` runs);
* import: :class:`BulkSmdrDecoder` — the same items as full (tested equal), Pattern A lines cut by one regex per
  chunk and typed through caches, the Dial column classified once per distinct value.
"""

from __future__ import annotations

import random
import time
from datetime import UTC

from bridges.legacy_pbx.bulk import BulkPatternA
from bridges.legacy_pbx.bulk_decoder import BulkSmdrDecoder
from bridges.legacy_pbx.decoder import LegacyDecoder

LINES = 1_000_000


def capture(n: int = LINES, seed: int = 5) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    minute = 0
    while len(out) < n:
        minute += 1
        day, rest = divmod(minute // 1440, 28)
        stamp = f"06/{day % 28 + 1:02d}/{11 + rest % 80:02d} {minute // 60 % 24:02d}:{minute % 60:02d}  "
        pick = rng.random()
        ext = f"{rng.randint(100, 199):>5}"
        co = f"{rng.randint(1, 8):02d}"
        talk = f"00:{rng.randint(0, 59):02d}'{rng.randint(0, 59):02d}"
        if pick < 0.4:
            out.append(f"{stamp} {ext} {co} {'09' + str(rng.randint(10**8, 10**9 - 1)):25}      {talk}               ")
        elif pick < 0.8:
            number = f"<I>09{rng.randint(10**8, 10**9 - 1)}"
            ring = f"0'{rng.randint(1, 59):02d}"
            out.append(f"{stamp} {ext} {co} {number:25}                          RC ")
            out.append(f"{stamp} {ext} {co} {number:25} {ring}                     AN ")
            out.append(f"{stamp} {ext} {co} {number:25} {ring} {talk}               ")
        elif pick < 0.95:
            number = f"<I>09{rng.randint(10**8, 10**9 - 1)}"
            out.append(f"{stamp} {ext} {co} {number:25} 0'59 00:00'00            NA ")
        elif pick < 0.98:
            out.append(f"{stamp[:14]}    MN ALM #510 00 10000 SMDR disconnect")
        else:
            out.append("".join(rng.choice("abcdef0123456789 /:'<>") for _ in range(rng.randint(5, 90))))
    return "\r\n".join(out[:n]) + "\r\n"


def best_of(runs: int, work: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    text = capture()
    data = text.encode("latin-1")
    n = text.count("\n")

    def floor() -> None:
        for line in text.splitlines():
            line.split()

    def slices() -> list[str]:
        step, out, start = 8 << 20, [], 0
        while start < len(text):  # 8 MB slices cut at line ends, as an import reads them
            end = text.find("\n", start + step)
            end = len(text) if end < 0 else end + 1
            out.append(text[start:end])
            start = end
        return out

    parts = slices()

    def cut() -> None:
        for part in parts:
            BulkPatternA.cut(part)

    def typed() -> None:
        parser = BulkPatternA("mdy", UTC)
        for part in parts:
            parser.parse(part)

    def decode(decoder: LegacyDecoder) -> None:
        for start in range(0, len(data), 1 << 20):
            decoder.feed_bytes(data[start : start + (1 << 20)])
        decoder.flush()

    def full() -> None:
        decode(LegacyDecoder("panasonic", tz=UTC))

    def bulk() -> None:
        decode(BulkSmdrDecoder(tz=UTC))

    t_floor = best_of(3, floor)
    t_cut = best_of(3, cut)
    t_typed = best_of(3, typed)
    t_full = best_of(1, full)
    t_import = best_of(1, bulk)
    rate_floor = n / t_floor
    print(f"lines: {n:,}")
    print(f"str.split floor           : {rate_floor:12,.0f} lines/s")
    for label, seconds in (("cut + checked (strings)", t_cut), ("typed columns", t_typed),
                           ("full decoder (calls)", t_full), ("import decoder (calls)", t_import)):
        rate = n / seconds
        print(f"{label:26}: {rate:12,.0f} lines/s = {rate / rate_floor:.2f}x the floor")
    print(f"import vs full decoder    : {t_full / t_import:.2f}x")
    print("(no target here: issue 14 replaced the old parse ≥ 1 M lines/s goal with one on what a user waits for, "
          "the whole import ≥ 50 % of a COPY of the same rows: bench smdr_import)")


if __name__ == "__main__":
    main()
