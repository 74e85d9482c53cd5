"""``callcenter demo``: a live-looking call centre on this machine, from nothing.

Starts (1) a private PostgreSQL, (2) the Asterisk simulator (``callcenter-sim``) with agents'
phones, a trunk and a scenario of customers calling in, loaded with our own rendered dialplan,
(3) the service with every role pointed at it, and prints the dashboard URL with an admin token.
Part of the composition root, so it may import adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from callcenter.config import Config, parse_config
from callcenter.embedded_pg import first_unenterable, free_port
from callcenter.logs import setup_logging

DEMO_PASSWORD = "demo"


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="run a demo call centre against the Asterisk simulator")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port of the dashboard and API")
    demo.add_argument("--data-dir", default="", help="default: ./.demo (or a /tmp folder if postgres cannot enter it)")
    demo.add_argument("--agents", type=int, default=20)
    demo.add_argument("--queues", type=int, default=3, help="queues (one DID each) the agents are dealt into")
    demo.add_argument("--rate", type=float, default=0.3, help="inbound calls per second")
    demo.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    demo.set_defaults(func=cmd_demo)


def choose_data_dir(requested: str) -> Path:
    """The embedded cluster runs as ``postgres`` when we are root: its folder's parents must be enterable."""
    if requested:
        return Path(requested).resolve()
    here = Path(".demo").resolve()
    if os.geteuid() != 0 or first_unenterable(here.parent) is None:
        return here
    return Path(f"/tmp/callcenter-demo-{os.getuid()}")


QUEUE_NAMES = ("sales", "support", "billing", "vip", "overflow")
STRATEGIES = ("ringall", "round-robin", "least-recent", "fewest-calls")


def demo_queues(agents: list[str], queues: int) -> dict[str, list[str]]:
    """Queue name → members: the agents dealt out over the queues, as a supervisor would staff them."""
    return {QUEUE_NAMES[q % len(QUEUE_NAMES)] + ("" if q < len(QUEUE_NAMES) else str(q)): agents[q::queues]
            for q in range(queues)}


def demo_config(data_dir: Path, http_port: int, ari_port: int, ami_port: int, agi_port: int,
                queues: dict[str, list[str]]) -> Config:
    return parse_config({
        "queue": [{"name": name, "strategy": STRATEGIES[n % len(STRATEGIES)], "members": members,
                   "ring_timeout": 12, "max_wait": 120, "announce_every": 20}
                  for n, (name, members) in enumerate(queues.items())],
        # each queue's team is a pickup group: an agent's phone panel offers its teammates' ringing calls
        "pickup": {"group": [{"name": name, "members": members} for name, members in queues.items() if members]},
        "database": {"data_dir": str(data_dir)},
        "http": {"port": http_port},
        # the phone panel's route choice: the site's 9 + number, or straight to a second carrier
        "route": [{"name": "local", "label": "Local line (9)", "context": "from-internal", "prefix": "9"},
                  {"name": "carrier-b", "label": "Carrier B", "trunk": "carrier-b"}],
        "agi": {"port": agi_port, "departments": {str(2001 + n): name for n, name in enumerate(queues)}},
        "pbx": [{
            "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "98",
            "city_code": "21",
            "ari": {"url": f"http://127.0.0.1:{ari_port}/ari", "username": "demo", "password": DEMO_PASSWORD,
                    "app": "callcenter", "outbound_context": "from-internal"},
            "ami": {"host": "127.0.0.1", "port": ami_port, "username": "demo", "secret": DEMO_PASSWORD},
        }],
    }, env={})


def demo_dialplan(config: Config, queues: dict[str, list[str]]) -> dict[str, str]:
    """Our rendered snippets plus a site dialplan that uses them, as an admin would write it:
    each DID (2001, 2002, …) tags the call and hands it to one of our queues."""
    from dialplan.render import render_all

    files = render_all(config)
    lines = [
        "; demo site dialplan: phones in from-internal, customers arrive in from-trunk",
        "#include extensions_callcenter.conf",
        "[from-internal]",
        "include => callcenter-monitor",
        "exten => _1XXX,1,Gosub(callcenter-tag-internal,s,1(${EXTEN}))",
        " same => n,Dial(PJSIP/${EXTEN},30)",
        " same => n,Hangup()",
        "exten => _9X.,1,Gosub(callcenter-tag-outbound,s,1(${EXTEN}))",
        " same => n,Dial(PJSIP/${EXTEN:1}@trunk,60)",
        " same => n,Hangup()",
        "[from-trunk]",
    ]
    for n, name in enumerate(queues):
        lines += [
            f"exten => {2001 + n},1,Gosub(callcenter-tag-inbound,s,1(${{EXTEN}}))",
            f" same => n,Goto(callcenter-queue,{name},1)",
        ]
    files["extensions.conf"] = "\n".join(lines) + "\n"
    return files


async def start_simulator(folder: Path, ari_port: int, ami_port: int, agents: list[str], args: argparse.Namespace
                          ) -> asyncio.subprocess.Process:
    scenario = f"agents={len(agents)},queues={args.queues},rate={args.rate},duration={args.duration or 86400}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asterisk_sim.cli", "--ari-port", str(ari_port), "--ami-port", str(ami_port),
        "--user", "demo", "--password", DEMO_PASSWORD, "--dialplan", str(folder / "extensions.conf"),
        "--phones", f"{agents[0]}-{agents[-1]}", "--recordings", str(folder / "recordings"),
        "--scenario", scenario, "--scenario-context", "from-trunk", "--extra-trunk", "carrier-b",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"READY":
        proc.kill()
        raise RuntimeError(f"the simulator did not start (said {line!r})")
    return proc


async def run_demo(args: argparse.Namespace) -> None:
    from callcenter.runner import install_signal_handlers, run_service
    from callcenter.store.tokens import create_token

    data_dir = choose_data_dir(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    agents = [str(1001 + i) for i in range(args.agents)]
    queues = demo_queues(agents, args.queues)
    ari_port, ami_port, agi_port = free_port(), free_port(), free_port()
    config = demo_config(data_dir, args.port, ari_port, ami_port, agi_port, queues)
    setup_logging(config.log_format, "WARNING")
    asterisk_dir = data_dir / "asterisk"
    from dialplan.render import write_rendered

    write_rendered(demo_dialplan(config, queues), asterisk_dir)
    sim = await start_simulator(asterisk_dir, ari_port, ami_port, agents, args)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    if args.duration:
        asyncio.get_running_loop().call_later(args.duration, stop.set)

    def ready(ctx: Any) -> None:
        async def announce() -> None:
            _row, secret = await create_token(ctx.store.pool, role="admin", name="demo")
            # ready to act once ARI is connected and has read the simulated Asterisk (its first resync): a page
            # opened before would show no extension and a click-to-call would be refused
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while ctx.health.snapshot().get("ari", {}).get("state") != "up" and loop.time() < deadline:  # noqa: ASYNC110 - the health view has no event
                await asyncio.sleep(0.05)
            url = f"http://{config.http.host}:{config.http.port}/"
            print(f"serving on {url}", flush=True)
            print(f"dashboard: {url}?access_token={secret}", flush=True)
            print(f"simulated Asterisk: ARI http://127.0.0.1:{ari_port}/ari (demo/demo), AMI port {ami_port}; "
                  f"{len(agents)} agents in queues {', '.join(queues)}; customers call DIDs 2001-{2000 + len(queues)}. "
                  "Ctrl-C stops.",
                  flush=True)

        asyncio.get_running_loop().create_task(announce())

    try:
        await run_service(config, ("ari", "agi", "api", "legacy"), stop=stop, on_ready=ready)
    finally:
        if sim.returncode is None:
            sim.terminate()
            try:
                await asyncio.wait_for(sim.wait(), 10)
            except TimeoutError:
                sim.kill()


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        asyncio.run(run_demo(args))
    except KeyboardInterrupt:
        pass
    except subprocess.SubprocessError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0
