"""1 M random and mutated SMDR / caller-ID lines through the live decoders: no crash, every bad line quarantined,
the valid lines among them give exactly the calls they describe.

Three kinds of line are interleaved, each accounted for on its own:

* **valid** — Pattern A outgoing records and TES incoming records, each with its own number, so the expected
  call (direction, extension, number, start, talk time) is known from how the line was written;
* **bad** — lines wrong by construction (noise, binary, records cut short, a letter in the duration, a 13th
  month, a non-blank separator column, a control character): each must come out as exactly one quarantined
  line with a reason, never as a call and never as "parser error";
* **mutants** — copies of another family of valid lines with 1–3 random bytes replaced: they may still be
  valid, so the only demand is "no crash, no parser error" (and the import decoder agrees with the live one).

Caller-ID (Oj Segal): complete calls (``C`` ring, ``HF``, ``HND … T``) on line 1, interleaved with records that
break the box's grammar (checked with a regex written here from the README, not the parser's).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridges.legacy_pbx.bulk_decoder import BulkSmdrDecoder
from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.records import Item, LegacyCall, Quarantined
from bridges.legacy_pbx.testing import garbage_lines, stepping_clock


@dataclass
class LineResult:
    lines: int = 0
    valid: int = 0
    bad: int = 0
    mutants: int = 0
    lost: int = 0  # valid lines that gave no call
    wrong: int = 0  # valid lines that gave a call with other fields
    doubled: int = 0  # a line that gave more than one call
    not_quarantined: int = 0  # bad lines that were not exactly one quarantined line
    crashes: int = 0  # exceptions out of the decoder or "parser error" quarantines
    import_mismatch: int = 0  # calls the import decoder gives differently from the live one
    seconds: float = 0.0


def _outgoing(i: int, year: int, prefix: str) -> tuple[str, dict[str, object]]:
    """A Pattern A outgoing record; the call it must give."""
    minute = i % (28 * 1440)
    day, rest = divmod(minute, 1440)
    end = datetime(2000 + year, 6, 1 + day, rest // 60, rest % 60, tzinfo=UTC)
    talk = 1 + i * 7 % 3000
    ext = str(100 + i % 900)
    number = f"{prefix}{i:08d}"
    line = (f"{end:%m/%d/%y %H:%M}   {ext:>5} {1 + i % 8:02d} {number:25}      "
            f"{talk // 3600:02d}:{talk // 60 % 60:02d}'{talk % 60:02d}               ")
    want = {"direction": "outbound", "extension": ext, "number_raw": number, "talk": talk,
            "started": end - timedelta(seconds=talk)}
    return line, want


def _tes_incoming(i: int) -> tuple[str, dict[str, object]]:
    """A TES incoming record (start time, 12 h clock, caller number from column 46)."""
    minute = i % (28 * 1440)
    day, rest = divmod(minute, 1440)
    start = datetime(2005, 1, 1 + day, rest // 60, rest % 60, tzinfo=UTC)
    hour12 = start.hour % 12 or 12
    talk = 1 + i * 13 % 3000
    ext = str(100 + i % 900)
    number = f"021{i:08d}"
    clock = f"{hour12}:{start.minute:02d}{'AM' if start.hour < 12 else 'PM'}"
    line = (f"{start.month:>2}/{start.day:>2}/05 {clock:>8} {ext:<4} {1 + i % 8:02d}   <    incoming    >"
            f"{number:18}{talk // 3600:02d}:{talk // 60 % 60:02d}'{talk % 60:02d}\" ....")
    return line, {"direction": "inbound", "extension": ext, "number_raw": number, "talk": talk, "started": start}


_BREAKERS = (
    lambda line, rng: line[:57] + "0x" + line[59:],  # a letter in the duration
    lambda line, rng: "13" + line[2:],  # a 13th month
    lambda line, rng: line[:16] + "#" + line[17:],  # a non-blank separator column
    lambda line, rng: line[: rng.randint(27, 56)],  # cut before the duration
    lambda line, rng: line[:30] + "\x07" + line[31:],  # a control character
    lambda line, rng: line + "   EXTRA",  # longer than its layout
)


def _matches(call: LegacyCall, want: dict[str, object]) -> bool:
    return (str(call.direction) == want["direction"] and call.extension == want["extension"]
            and call.number_raw == want["number_raw"] and call.talk_seconds == want["talk"]
            and call.started_at == want["started"])


def smdr(total: int, seed: int = 18) -> LineResult:
    """``total`` lines: 20 % valid, 40 % bad, 40 % mutants, in a shuffled order."""
    rng = random.Random(seed)
    res = LineResult()
    kinds = ["v"] * (total // 5) + ["b"] * (total * 2 // 5)
    kinds += ["m"] * (total - len(kinds))
    rng.shuffle(kinds)
    noise = garbage_lines(rng, 50_000)
    live = LegacyDecoder("panasonic", tz=UTC, clock=stepping_clock())
    stream: list[bytes] = []
    live_calls: dict[str, LegacyCall] = {}
    started = time.perf_counter()
    v = m = 0
    for kind in kinds:
        if kind == "v":
            line, want = _outgoing(v, 11, "0912") if v % 4 else _tes_incoming(v)
            v += 1
            res.valid += 1
            items = _feed(live, line.encode("latin-1"), res)
            calls = [i for i in items if isinstance(i, LegacyCall)]
            if not calls:
                res.lost += 1
            elif len(calls) > 1:
                res.doubled += len(calls) - 1
            elif not _matches(calls[0], want):
                res.wrong += 1
        elif kind == "b":
            res.bad += 1
            if rng.random() < 0.5:
                raw = noise[rng.randrange(len(noise))].rstrip(b"\r\n")
            else:
                base, _ = _outgoing(rng.randrange(10**6), 13, "0935")
                raw = rng.choice(_BREAKERS)(base, rng).encode("latin-1")
            items = _feed(live, raw, res)
            if len(items) != 1 or not isinstance(items[0], Quarantined):
                res.not_quarantined += 1
            line = raw.decode("latin-1")
        else:
            res.mutants += 1
            base, _ = _outgoing(m, 12, "0935")
            m += 1
            chars = list(base)
            for _ in range(rng.randint(1, 3)):
                chars[rng.randrange(len(chars))] = chr(rng.choice((rng.randrange(32, 127), rng.randrange(256))))
            line = "".join(chars).replace("\r", "!").replace("\n", "!")
            items = _feed(live, line.encode("latin-1"), res)
        for item in items:
            if isinstance(item, LegacyCall):
                live_calls[item.natural_key] = item
        stream.append(line.encode("latin-1"))
        res.lines += 1
    for item in live.flush():
        if isinstance(item, LegacyCall):
            live_calls[item.natural_key] = item
    res.seconds = time.perf_counter() - started
    res.import_mismatch = _compare_import(stream, live_calls)
    return res


def _feed(decoder: LegacyDecoder, raw: bytes, res: LineResult) -> list[Item]:
    try:
        items = decoder.feed_line(raw)
    except Exception:
        res.crashes += 1
        return []
    res.crashes += sum(1 for i in items if isinstance(i, Quarantined) and i.reason.startswith("parser error"))
    return items


def _compare_import(stream: list[bytes], live_calls: dict[str, LegacyCall]) -> int:
    """The import decoder (``callcenter legacy import``) on the same bytes gives the same calls."""
    bulk = BulkSmdrDecoder(tz=UTC, clock=stepping_clock())
    data = b"\r\n".join(stream) + b"\r\n"
    got: dict[str, LegacyCall] = {}
    for start in range(0, len(data), 1 << 20):
        for item in bulk.feed_bytes(data[start : start + (1 << 20)]):
            if isinstance(item, LegacyCall):
                got[item.natural_key] = item
    for item in bulk.flush():
        if isinstance(item, LegacyCall):
            got[item.natural_key] = item
    keys = set(got) | set(live_calls)
    return sum(1 for k in keys if k not in got or k not in live_calls or got[k] != live_calls[k])


# The Oj Segal grammar as the shared README states it (independent of bridges.legacy_pbx.cid).
_SEGAL_DOC = re.compile(r"L\d{1,2}(C[0-9*#+]*|R\d{1,3}|HF|D[0-9*#]|HND:\s*[0-9*#]*\s*T\d{4})@", re.ASCII)


def segal(total: int, seed: int = 19) -> LineResult:
    """``total`` records: complete answered calls on line 1 between records that break the grammar."""
    rng = random.Random(seed)
    res = LineResult()
    decoder = LegacyDecoder("segal", clock=stepping_clock())
    started = time.perf_counter()
    n = 0
    while res.lines < total:
        if rng.random() < 0.25:
            number = f"0912{n:07d}"
            talk = n % 3600
            records = [f"L1C{number}@", "L1R01@", "L1HF@", f"L1HND: T{talk // 60:02d}{talk % 60:02d}@"]
            n += 1
            res.valid += 1
            calls: list[LegacyCall] = []
            for record in records:
                calls += [i for i in _feed(decoder, record.encode(), res) if isinstance(i, LegacyCall)]
                res.lines += 1
            if not calls:
                res.lost += 1
            elif len(calls) > 1:
                res.doubled += len(calls) - 1
            elif calls[0].number_raw != number or calls[0].talk_seconds != talk or str(calls[0].status) != "answered":
                res.wrong += 1
            continue
        chars = list(rng.choice(["L2C0215551234@", "L3R02@", "L4HF@", "L5D7@", "L6HND:0215 T0102@"]))
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
        record = "".join(chars).replace("@", "") + "@"
        if _SEGAL_DOC.fullmatch(record):
            continue  # still a valid record: not a bad one
        res.bad += 1
        res.lines += 1
        items = _feed(decoder, record.encode(), res)
        if len(items) != 1 or not isinstance(items[0], Quarantined):
            res.not_quarantined += 1
    res.seconds = time.perf_counter() - started
    return res
