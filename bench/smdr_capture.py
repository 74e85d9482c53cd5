"""A busy Panasonic's SMDR for years, in the real Pattern A layout (``../shared/samples/panasonic-pattern-a-tcp.smdr``).

``python -m bench.smdr_capture --lines 10000000 out.smdr`` writes ≈ 10 M lines (≈ 820 MB) spread over five
years, CR LF like the PBX: outgoing calls (some transferred: ``-digits`` and CD ``TR``), answered incoming calls
as RC / AN / final, missed ones as RC / NA, internal ``EXTnnn`` calls, DDI and caller names, page headers,
``MN ALM`` alarm lines, a re-sent buffer now and then (duplicates), and 2 % garbage (line noise, half lines,
annotations). Deterministic for a seed, so two runs import the same calls.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

HEADER = ["  Date     Time    Ext CO        Dial Number        Ring Duration  Acc code  CD ", "-" * 80]
START = datetime(2021, 1, 1, tzinfo=UTC)
YEARS = 5


def _line(stamp: str, ext: str, co: str, dial: str, ring: str = "", talk: str = "", acc: str = "",
          cd: str = "") -> str:
    return f"{stamp} {ext:>5} {co} {dial:25} {ring:4} {talk:8} {acc:10} {cd:3}"


def lines(n: int, seed: int = 14, span: timedelta = timedelta(days=365 * YEARS)) -> Iterator[str]:
    """About ``n`` lines (a call's RC / AN / final are never cut apart), oldest first."""
    rng = random.Random(seed)
    step = span.total_seconds() / max(n, 1)
    seconds = 0.0
    made = 0
    recent: list[str] = []
    while made < n:
        seconds += rng.expovariate(1 / step)
        at = START + timedelta(seconds=seconds)
        stamp = at.strftime("%m/%d/%y %H:%M  ")
        ext = str(rng.randint(101, 160))
        co = f"{rng.randint(1, 12):02d}"
        mobile = f"09{rng.randint(10**8, 10**9 - 1)}"
        talk = f"{rng.randint(0, 1) * rng.randint(0, 1):02d}:{rng.randint(0, 59):02d}'{rng.randint(0, 59):02d}"
        ring = f"0'{rng.randint(1, 40):02d}"
        pick = rng.random()
        out: list[str]
        if pick < 0.33:
            out = [_line(stamp, ext, co, mobile, "", talk)]
        elif pick < 0.36:  # transferred outgoing: the destination dialled digits after the dash
            out = [_line(stamp, ext, co, f"{mobile}-{rng.randint(100, 160)}", "", talk, "", "TR")]
        elif pick < 0.66:
            caller = f"<I>{mobile}" if rng.random() < 0.8 else f"<D>{rng.randint(200, 299)}<I>{mobile}"
            out = [_line(stamp, ext, co, caller, "", "", "", "RC"), _line(stamp, ext, co, caller, ring, "", "", "AN"),
                   _line(stamp, ext, co, caller, ring, talk, "", "TR" if rng.random() < 0.05 else "")]
        elif pick < 0.80:
            caller = f"<I>{mobile}"
            out = [_line(stamp, ext, co, caller, "", "", "", "RC"),
                   _line(stamp, ext, co, caller, "0'59", "00:00'00", "", "NA")]
        elif pick < 0.90:
            out = [_line(stamp, ext, co, f"EXT{rng.randint(101, 160)}", "", talk)]
        elif pick < 0.93:
            out = list(HEADER)
        elif pick < 0.96:
            out = [f"{stamp[:14]}    MN ALM #510 00 10000 SMDR disconnect"]
        elif pick < 0.97 and recent:
            out = recent[-3:]  # the PBX re-sent its buffer
        elif pick < 0.98:
            full = _line(stamp, ext, co, mobile, "", talk)
            out = [full[: rng.randint(10, 70)]]  # a half line (the link dropped)
        elif pick < 0.99:
            out = ["".join(rng.choice("abcdef0123456789 /:'<>#") for _ in range(rng.randint(5, 90)))]
        else:
            out = [f"{stamp}  {rng.randint(101, 160)} {co} <I>{mobile}\x00\x7f"]
        recent = out
        made += len(out)
        yield from out


def write(path: Path, n: int, seed: int = 14) -> int:
    """Write ``n``-ish lines to ``path``; returns the number written."""
    with path.open("wb") as f:
        return write_to(f, n, seed)


def write_to(f: BinaryIO, n: int, seed: int = 14) -> int:
    count = 0
    block: list[str] = []
    for line in lines(n, seed):
        block.append(line)
        if len(block) >= 65536:
            f.write(("\r\n".join(block) + "\r\n").encode("latin-1"))
            count += len(block)
            block = []
    if block:
        f.write(("\r\n".join(block) + "\r\n").encode("latin-1"))
        count += len(block)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(f"{write(args.out, args.lines, args.seed):,} lines → {args.out}")


if __name__ == "__main__":
    main()
