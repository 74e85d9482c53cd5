"""The same handlers as plain AGI(script) processes: a real subprocess speaking AGI on its stdin/stdout."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agi_scripts.handlers import END_EXPRESSION
from callcenter.domain import call_id_for
from callcenter.store import CallStore
from tests.agi.agi_helpers import AgiExchange, Replier, default_replies, env_text

LINKEDID = "1764099785.48"
REPO = Path(__file__).resolve().parents[2]


def stdin_env(**kwargs: object) -> str:
    """A stdin AGI environment: like FastAGI's without the agi_network lines."""
    text = env_text("x", **kwargs)  # type: ignore[arg-type]
    lines = [ln for ln in text.split("\n") if not ln.startswith("agi_network")]
    lines = [("agi_request: /var/lib/asterisk/agi-bin/callcenter-agi" if ln.startswith("agi_request") else ln)
             for ln in lines]
    return "\n".join(lines)


async def run_agi(argv: list[str], env: str, replies: Replier | None = None, *, config: Path | None = None,
                  timeout: float = 20.0) -> tuple[AgiExchange, int, str]:
    replies = replies or default_replies()
    cmd = [sys.executable, "-m", "agi_scripts.stdin_agi"]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = await asyncio.create_subprocess_exec(*cmd, *argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    exchange = AgiExchange()
    proc.stdin.write(env.encode())
    await proc.stdin.drain()
    async with asyncio.timeout(timeout):
        while True:
            line = await proc.stdout.readline()
            if not line:
                exchange.closed_by_server = True
                break
            command = line.decode().rstrip("\n")
            exchange.commands.append(command)
            try:
                proc.stdin.write(replies(command).encode())
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                break
        stderr = (await proc.stderr.read()).decode()
        code = await proc.wait()
    return exchange, code, stderr


def write_config(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "callcenter.toml"
    path.write_text(f"""
[database]
dsn = "{dsn}"
data_dir = "{tmp_path}"
[agi.departments]
"+442075550100" = "sales"
[[pbx]]
key = "main"
kind = "asterisk"
country_code = "44"
city_code = "20"
outside_line_prefix = "9"
extension_lengths = [4]
""")
    return path


async def test_stdin_tag_inbound_writes_the_call_and_sets_variables(db_dsn: str, store: CallStore,
                                                                    tmp_path: Path) -> None:
    config = write_config(tmp_path, db_dsn)
    env = stdin_env(uniqueid=LINKEDID, callerid="02075550142", args=("tag-inbound", "02075550100"))
    exchange, code, stderr = await run_agi(["--pbx", "main", "tag-inbound", "02075550100"], env, config=config)
    assert code == 0, stderr
    assert exchange.commands[0] == "GET VARIABLE CHANNEL(linkedid)"
    variables = exchange.set_variables()
    assert variables["CC_DEPARTMENT"] == "sales" and variables["CC_CALLER"] == "+442075550142"
    row = await store.get_call(call_id_for("main", LINKEDID))
    assert row is not None and row["direction"] == "inbound" and row["source"] == "agi"
    assert row["callee"] == "+442075550100"


async def test_stdin_call_end_closes_the_same_row_fastagi_would(db_dsn: str, store: CallStore,
                                                                tmp_path: Path) -> None:
    config = write_config(tmp_path, db_dsn)
    replies = default_replies({END_EXPRESSION: "ANSWER|30|35|16|ANSWERED|30|35"})
    exchange, code, stderr = await run_agi(["--linkedid", LINKEDID, "call-end"], stdin_env(extension="h"), replies,
                                           config=config)
    assert code == 0, stderr
    assert exchange.commands == [f'GET FULL VARIABLE "{END_EXPRESSION}"']
    row = await store.get_call(call_id_for("main", LINKEDID))
    assert row is not None and (row["status"], row["billsec"]) == ("answered", 30)


async def test_stdin_hangup_mid_command_exits_cleanly_without_a_record(db_dsn: str, store: CallStore,
                                                                       tmp_path: Path) -> None:
    config = write_config(tmp_path, db_dsn)

    def replies(command: str) -> str:
        return "HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"

    exchange, code, stderr = await run_agi(["call-end"], stdin_env(extension="h"), replies, config=config)
    assert code == 0 and "event=agi_hangup" in stderr and "Traceback" not in stderr
    assert len(exchange.commands) == 1
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0


async def test_stdin_dry_run_writes_nothing_and_prints_the_writes(tmp_path: Path) -> None:
    env = stdin_env(callerid="1001", extension="1002")
    exchange, code, stderr = await run_agi(["--dry-run", "--linkedid", "1.5", "tag-internal"], env)
    assert code == 0
    assert exchange.set_variables()["CC_DIRECTION"] == "internal"
    assert '"upsert_call"' in stderr and '"direction": "internal"' in stderr


async def test_stdin_malformed_environment_is_logged_and_exits_zero() -> None:
    exchange, code, stderr = await run_agi(["--dry-run", "tag-inbound"], "this is not agi\n\n")
    assert code == 0 and exchange.commands == [] and "event=agi_failed" in stderr


async def test_with_postgres_down_the_tags_are_spooled_and_the_next_agi_process_replays_them(
        db_dsn: str, store: CallStore, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = write_config(tmp_path, f"postgresql://nobody@127.0.0.1:{dead_port}/none")
    env = stdin_env(uniqueid=LINKEDID, callerid="02075550142")
    exchange, code, stderr = await run_agi(["--linkedid", LINKEDID, "tag-inbound", "02075550100"], env, config=dead)
    assert code == 0 and exchange.set_variables()["CC_DEPARTMENT"] == "sales", stderr
    spool = tmp_path / "spool.agi.jsonl"
    assert spool.exists() and len(spool.read_text().splitlines()) == 2  # the call and its event
    assert await store.get_call(call_id_for("main", LINKEDID)) is None

    alive = write_config(tmp_path, db_dsn)  # same data_dir, Postgres back
    _, code, stderr = await run_agi(["--linkedid", "1764099785.60", "tag-internal", "1002"],
                                    stdin_env(callerid="1001"), config=alive)
    assert code == 0, stderr
    row = await store.get_call(call_id_for("main", LINKEDID))
    assert row is not None and row["tags"]["department"] == "sales"
    assert await store.get_call(call_id_for("main", "1764099785.60")) is not None
    assert not spool.exists()
