"""FastAGI requests/s against one AGI process per call — same handler, same store, same machine, same run.

Both sides run ``tag-inbound`` (environment → call key → department → one upsert + one event → six
SET VARIABLEs) against a real PostgreSQL (an embedded cluster started here). The "Asterisk" is a raw
client in this process speaking the exact protocol of ``13-fastagi.jsonl``: over TCP to our FastAGI
server, or over the stdin/stdout pipes of ``python -m agi_scripts.stdin_agi`` started once per call,
as ``AGI(script)`` does. Both sides get as many calls in flight as there are cores for the processes
(they are CPU-bound) and 16 for FastAGI (one event loop). Target (DESIGN §11): ≥ 100×.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from agi_scripts.context import CallWriter, HandlerContext
from agi_scripts.server import FastAgiServer
from agi_scripts.stdin_agi import DryRunWriter
from bench._support import run_with_postgres
from callcenter.config import Config, parse_config
from callcenter.store import CallStore, SpooledWriter

REPO = Path(__file__).resolve().parent.parent
FASTAGI_REQUESTS = 2000
FASTAGI_CONCURRENCY = 16
PROCESS_CALLS = 16
PROCESS_CONCURRENCY = int(os.environ.get("BENCH_PROCESS_CONCURRENCY", max(1, os.cpu_count() or 1)))
ENV_KEYS = ("agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1:4573/{script}\n"
            "agi_channel: PJSIP/trunk-{n:08x}\nagi_language: en\nagi_type: PJSIP\nagi_uniqueid: {uid}\n"
            "agi_version: 22.10.1\nagi_callerid: 0207555{n4:04d}\nagi_calleridname: unknown\nagi_callingpres: 0\n"
            "agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: 02075550100\nagi_rdnis: unknown\n"
            "agi_context: from-pstn\nagi_extension: 02075550100\nagi_priority: 1\nagi_enhanced: 0.0\n"
            "agi_accountcode: \nagi_threadid: 139672654223040\nagi_arg_1: 02075550100\n\n")


def env_for(n: int, script: str) -> bytes:
    uid = f"{1764000000 + n // 1000}.{n}"
    return ENV_KEYS.format(script=script, n=n, n4=n % 10000, uid=uid).encode()


async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: bytes) -> int:
    """Be Asterisk: send the environment, answer every command ``200 result=1`` until the far end closes."""
    writer.write(env)
    await writer.drain()
    commands = 0
    while True:
        line = await reader.readline()
        if not line:
            return commands
        commands += 1
        writer.write(b"200 result=1\n")
        await writer.drain()


async def one_fastagi(port: int, n: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await converse(reader, writer, env_for(n, f"tag-inbound?pbx=main&linkedid={1764000000 + n}.{n}"))
    finally:
        writer.close()


async def one_process(config: Path, n: int, dry_run: bool) -> int:
    flags = ["--dry-run"] if dry_run else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_scripts.stdin_agi", "--config", str(config), "--pbx", "main", *flags,
        "--linkedid", f"{1764000000 + n}.{n}", "tag-inbound", "02075550100",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    commands = await converse(proc.stdout, proc.stdin, env_for(n, "x").replace(b"agi_network: yes\n", b""))
    await proc.wait()
    return commands


async def run_many(make: Callable[[int], Awaitable[int]], count: int, concurrency: int) -> tuple[float, list[int]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    results: list[int] = []

    async def worker() -> None:
        while not queue.empty():
            results.append(await make(queue.get_nowait()))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, results


@dataclass
class Figures:
    label: str
    fast_rate: float
    proc_rate: float

    def show(self, fast_n: int, proc_n: int) -> None:
        print(f"[{self.label}]")
        print(f"  FastAGI server:       {fast_n} tag-inbound requests, {self.fast_rate:,.0f} req/s "
              f"({FASTAGI_CONCURRENCY} in flight, one event loop)")
        print(f"  AGI process per call: {proc_n} tag-inbound calls, {self.proc_rate:,.1f} calls/s "
              f"({PROCESS_CONCURRENCY} in flight, one python process each)")
        print(f"  ratio: {self.fast_rate / self.proc_rate:,.0f}x (target >= 100x)")


async def measure(label: str, config: Config, config_file: Path, writer: CallWriter, pool: asyncpg.Pool | None,
                  dry_run: bool, base: int) -> Figures:
    hctx = HandlerContext.from_config(config, writer, pool=pool)
    server = FastAgiServer(hctx, port=0)
    await server.start()
    try:
        await run_many(lambda n: one_fastagi(server.port, base + 9_000_000 + n), 200, FASTAGI_CONCURRENCY)  # warm-up
        await server.idle(timeout=120)
        started = time.perf_counter()
        _, fast = await run_many(lambda n: one_fastagi(server.port, base + n), FASTAGI_REQUESTS, FASTAGI_CONCURRENCY)
        await server.idle(timeout=120)  # the clock stops when every store write is done, not when Asterisk is released
        fast_s = time.perf_counter() - started
        proc_s, procs = await run_many(lambda n: one_process(config_file, base + 8_000_000 + n, dry_run),
                                       PROCESS_CALLS, PROCESS_CONCURRENCY)
    finally:
        await server.stop()
        await hctx.close()
    # the same handler on both paths: every request sends it the same commands (one EXEC MSet since the hooks
    # set their variables in one go), and none is cut short
    assert len(set(fast) | set(procs)) == 1 and min(fast) > 0, f"commands per request: {set(fast)} / {set(procs)}"
    assert server.stats.errors == 0
    return Figures(label, FASTAGI_REQUESTS / fast_s, PROCESS_CALLS / proc_s)


async def bench(dsn: str, work: Path) -> None:
    raw = {"database": {"dsn": dsn, "data_dir": str(work)},
           "agi": {"port": 0, "departments": {"02075550100": "sales"}},
           "pbx": [{"key": "main", "kind": "asterisk", "country_code": "44", "city_code": "20"}]}
    config = parse_config(raw, env={})
    config_file = work / "callcenter.toml"
    config_file.write_text(f'[database]\ndsn = "{dsn}"\ndata_dir = "{work}"\n[agi.departments]\n'
                           f'"02075550100" = "sales"\n[[pbx]]\nkey = "main"\nkind = "asterisk"\n'
                           f'country_code = "44"\ncity_code = "20"\n')
    store = await CallStore.connect(dsn, min_size=4, max_size=8)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # DryRunWriter prints there
            dry = await measure("AGI path: handler + protocol + transport, writes printed not stored (--dry-run)",
                                config, config_file, DryRunWriter(), None, True, 0)
        stored = await measure("end to end: every call also written to PostgreSQL (upsert + event, fsync'd)",
                               config, config_file, SpooledWriter(store, work / "spool.jsonl"), store.pool, False,
                               100_000)
        async with store.pool.acquire() as conn:
            rows = await conn.fetchval("SELECT count(*) FROM calls")
    finally:
        await store.close()
    assert rows == FASTAGI_REQUESTS + 200 + PROCESS_CALLS, rows
    dry.show(FASTAGI_REQUESTS, PROCESS_CALLS)
    stored.show(FASTAGI_REQUESTS, PROCESS_CALLS)
    print(f"  ({rows} call rows written; with the store the FastAGI side is bound by the store's writes, which "
          f"SpooledWriter serialises: ~2 fsync'd commits per call)")


def main() -> None:
    run_with_postgres("bench-fastagi-", bench)


if __name__ == "__main__":
    main()
