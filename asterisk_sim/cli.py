"""``callcenter-sim``: run the simulator on loopback until SIGTERM/SIGINT; prints ``READY`` once listening."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from asterisk_sim.dialplan import DialplanSyntaxError, parse_extensions_conf
from asterisk_sim.scenario import ScenarioDriver, parse_scenario
from asterisk_sim.simulator import SimConfig, Simulator


def expand_phones(spec: str) -> list[str]:
    """``1001-1003,2001`` → ["1001", "1002", "1003", "2001"]."""
    phones: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if "-" in part:
            first, last = part.split("-", 1)
            width = len(first)
            phones.extend(str(n).zfill(width) for n in range(int(first), int(last) + 1))
        else:
            phones.append(part)
    return phones


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter-sim", description="A simulated Asterisk 22 (ARI, AMI, AGI).")
    parser.add_argument("--ari-port", type=int, default=8088)
    parser.add_argument("--ami-port", type=int, default=5038, help="0 = any free port, -1 = no AMI")
    parser.add_argument("--user", default="asterisk")
    parser.add_argument("--password", default="asterisk")
    parser.add_argument("--dialplan", type=Path, help="extensions.conf to load")
    parser.add_argument("--phones", default="", help="PJSIP endpoints, e.g. 1001-1020")
    parser.add_argument("--phone-context", default="from-internal")
    parser.add_argument("--no-register", action="store_true", help="phones start unregistered")
    parser.add_argument("--recordings", type=Path, default=Path("/tmp/asterisk-sim-recordings"))
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--trunk", default="trunk")
    parser.add_argument("--extra-trunk", action="append", default=[], metavar="NAME",
                        help="another trunk endpoint reaching customers (repeatable), e.g. for outbound routes")
    parser.add_argument("--scenario", default="", help='e.g. "agents=200,queues=3,rate=5,duration=60"')
    parser.add_argument("--scenario-context", default="from-trunk")
    return parser


async def run(args: argparse.Namespace) -> int:
    text = args.dialplan.read_text() if args.dialplan else ""
    if text:
        try:
            parse_extensions_conf(text, str(args.dialplan))
        except DialplanSyntaxError as exc:
            print(f"callcenter-sim: {exc}", file=sys.stderr)
            return 2
    config = SimConfig(user=args.user, password=args.password, phones=expand_phones(args.phones),
                       phone_context=args.phone_context, auto_register=not args.no_register,
                       dialplan_text=text, dialplan_file=str(args.dialplan or "extensions.conf"),
                       recordings_dir=str(args.recordings), ari_port=args.ari_port,
                       ami_port=None if args.ami_port < 0 else args.ami_port, time_scale=args.time_scale,
                       trunk=args.trunk, extra_trunks=tuple(args.extra_trunk))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Simulator(config) as sim:
        driver = None
        if args.scenario:
            driver = ScenarioDriver(sim, parse_scenario(args.scenario), context=args.scenario_context)
            driver.start()
        print(f"ari={sim.ari_url} ami_port={sim.ami_port}", file=sys.stderr, flush=True)
        print("READY", flush=True)
        await stop.wait()
        if driver is not None:
            await driver.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
