"""``python -m bench.soak [--quick] [--report FILE] [--no-ami] [scenario ...]`` — run the reliability scenarios.

Each scenario prints one line as it finishes; with ``--report`` the table is (re)written to that file.
Exit code 1 when any scenario failed (lost or doubled records, 5xx, a fault that did not happen).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.soak import world
from bench.soak.report import Row, write_report
from bench.soak.scenarios import SCENARIOS

PREFACE = (
    "This machine (2 cores) was shared with about eight other sessions' test runs and an Asterisk build while "
    "the suite ran, so durations and latencies are those of a busy machine. The simulator scenarios each start "
    "their own PostgreSQL cluster, the Asterisk simulator (in process) and the service (`ari` + `api` roles, "
    "`callcenter.runner.run_service`) on loopback, with the service's ARI link through a proxy the harness can "
    "cut and its AMI login straight to the simulator (as installed: an ARI cut does not cut AMI); the "
    "legacy-lines scenario feeds the live decoders directly; the real-Asterisk row is "
    "`tests/soak/test_real_restart.py` on the real tier's Asterisk 22 and pjsua phones.\n\n"
    "Run it: `make soak` (all scenarios, rewrites this file), `python -m bench.soak [--quick] [scenario ...]` "
    "(scenarios: " + ", ".join(f"`{n}`" for n in SCENARIOS) + "). `make test` runs the quick sizes of "
    "`ari-drops`, `pg-outage`, `restart-sim` and `legacy-lines` (tests/soak)."
)


async def run(names: list[str], quick: bool) -> list[Row]:
    rows = []
    for name in names:
        started = time.monotonic()
        try:
            row = await SCENARIOS[name](quick)
        except Exception as exc:  # a scenario that cannot finish is a failed row, not a crashed suite
            traceback.print_exc()
            row = Row(name, "–", "–", None, None, None, False, f"did not finish: {type(exc).__name__}: {exc}",
                      time.monotonic() - started)
        print(row.line(), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short sizes used inside make test")
    parser.add_argument("--report", type=Path, help="write the table here (e.g. RELIABILITY.md)")
    parser.add_argument("--log", type=Path, help="the service's warnings and errors (default: a temp file)")
    parser.add_argument("--no-ami", action="store_true",
                        help="run the service without its AMI login (an ARI-only site); do not --report with it")
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], help="default: all")
    args = parser.parse_args(argv)
    # the faults make the service log loudly: its warnings and errors go to a file, the rows say what happened
    log_file = args.log or Path(tempfile.mkdtemp(prefix="cc-soak-log-")) / "service.log"
    logging.basicConfig(level=logging.WARNING, filename=str(log_file),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(f"service log (warnings and errors): {log_file}", flush=True)
    names = args.scenarios or list(SCENARIOS)
    if args.no_ami:
        world.WITH_AMI = False
    rows = asyncio.run(run(names, args.quick))
    if args.report:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip() or "unknown"
        write_report(args.report, rows, preface=PREFACE, commit=commit)
        print(f"wrote {args.report}")
    return 0 if all(r.passed or r.skipped for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
