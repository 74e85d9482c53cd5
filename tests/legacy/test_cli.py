"""`callcenter legacy parse | listen | import` as an installer runs them: real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg

from bench.smdr_capture import write
from bridges.legacy_pbx.testing import FakePanasonic
from tests.waiting import eventually

OUT = b"06/01/11 15:11     101 01 909332991400                   00:00'39               \r\n"
RC = b"06/01/11 15:06     101 01 <I>09155213422                                     RC \r\n"
NA = b"06/01/11 15:07     101 01 <I>09155213422            0'59 00:00'00            NA \r\n"


def callcenter(*args: str, stdin: bytes = b"", config: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "callcenter.cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, timeout=60, check=False)


def test_parse_prints_one_json_object_per_call_and_per_quarantined_line() -> None:
    data = OUT + RC + NA + b"garbage here\r\n06/01/11 15:49    MN ALM #510 00 10000 SMDR disconnect\r\n"
    done = callcenter("legacy", "parse", "--kind", "panasonic", "--date-order", "dmy", "--country-code", "98",
                      "--prefix", "9", "-", stdin=data)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.decode().splitlines()]
    assert len(lines) == 3
    out, missed, bad = lines
    assert (out["direction"], out["status"], out["number"], out["number_raw"], out["talk_seconds"]) == (
        "outbound", "answered", "+989332991400", "909332991400", 39)
    assert out["started_at"].startswith("2011-01-06T15:10:21")
    assert (missed["direction"], missed["status"], missed["ring_seconds"], missed["line"]) == ("inbound", "missed",
                                                                                              59, "01")
    assert set(out) >= {"direction", "status", "extension", "line", "number", "number_raw", "started_at",
                        "ring_seconds", "talk_seconds", "codes"}
    assert bad == {"quarantined": True, "raw": "garbage here", "reason": "not an SMDR record (too short)"}
    assert b"MN ALM #510" in done.stderr


def test_parse_with_a_config_entry_uses_its_number_plan(tmp_path: Path) -> None:
    config = tmp_path / "callcenter.toml"
    config.write_text('[[pbx]]\nkey = "shop"\nkind = "panasonic"\ncountry_code = "98"\noutside_line_prefix = "9"\n'
                      '[pbx.legacy]\ndate_order = "ymd"\ntimezone = "UTC"\n')
    capture = tmp_path / "smdr.txt"
    capture.write_bytes(OUT)
    done = callcenter("legacy", "parse", "--pbx", "shop", str(capture), config=config)
    assert done.returncode == 0, done.stderr
    [call] = [json.loads(x) for x in done.stdout.decode().splitlines()]
    assert call["pbx"] == "shop" and call["number"] == "+989332991400"
    assert call["started_at"] == "2006-01-11T15:10:21+00:00"


def test_parse_without_pbx_or_kind_says_what_is_missing() -> None:
    done = callcenter("legacy", "parse", "-")
    assert done.returncode != 0 and b"--kind" in done.stderr


def test_import_writes_calls_and_quarantine_with_a_progress_bar(tmp_path: Path, db_dsn: str) -> None:
    config = tmp_path / "callcenter.toml"
    config.write_text(f'[database]\ndsn = "{db_dsn}"\n[[pbx]]\nkey = "shop"\nkind = "panasonic"\n'
                      '[pbx.legacy]\ntimezone = "UTC"\n')
    capture = tmp_path / "smdr.txt"
    capture.write_bytes(OUT + RC + NA + b"# note\r\n" + OUT)
    done = callcenter("legacy", "import", "--pbx", "shop", str(capture), config=config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"calls": 2, "new_calls": 2, "quarantined": 1, "alarms": 0, "duplicates": 1,
                                       "resumed_at_byte": 0}
    assert b"100.0%" in done.stderr
    again = callcenter("legacy", "import", "--pbx", "shop", str(capture), config=config)
    assert again.returncode == 0, again.stderr

    async def counts() -> tuple[int, int]:
        conn = await asyncpg.connect(db_dsn)
        try:
            return (await conn.fetchval("SELECT count(*) FROM calls"),
                    await conn.fetchval("SELECT count(*) FROM quarantine"))
        finally:
            await conn.close()

    assert json.loads(again.stdout)["resumed_at_byte"] == len(capture.read_bytes())
    assert asyncio.run(counts()) == (2, 1)  # importing twice adds nothing: no call, no quarantined line


def test_import_refuses_a_number_of_decoding_processes_out_of_range(tmp_path: Path) -> None:
    config = tmp_path / "callcenter.toml"
    config.write_text('[database]\ndsn = "postgresql://nobody@127.0.0.1:1/none"\n[[pbx]]\nkey = "shop"\n'
                      'kind = "panasonic"\n')
    capture = tmp_path / "smdr.txt"
    capture.write_bytes(OUT)
    for jobs in ("0", "65"):
        done = callcenter("legacy", "import", "--pbx", "shop", "--jobs", jobs, str(capture), config=config)
        assert done.returncode != 0 and b"--jobs must be between 1 and 64" in done.stderr


def ctrl_c_at_its_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_ctrl_c_stops_an_import_and_the_same_command_resumes_it(tmp_path: Path, db_dsn: str) -> None:
    config = tmp_path / "callcenter.toml"
    config.write_text(f'[database]\ndsn = "{db_dsn}"\n[[pbx]]\nkey = "shop"\nkind = "panasonic"\n'
                      '[pbx.legacy]\ntimezone = "UTC"\n')
    capture = tmp_path / "busy.smdr"
    write(capture, 60_000)  # ≈ 5 MB: 40 batches of 128 KiB
    size = capture.stat().st_size
    command = [sys.executable, "-m", "callcenter.cli", "--config", str(config), "legacy", "import", "--pbx", "shop",
               "--batch-mb", "0.125", str(capture)]
    # started as a terminal starts it, Ctrl-C at its default action: a test run started in the background (`&` in
    # a script, nohup) ignores SIGINT, and a child inherits that, so the import ran on to its end (rc 0)
    proc = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                preexec_fn=ctrl_c_at_its_default)
    conn = await asyncpg.connect(db_dsn)
    try:
        async def committed() -> int:
            return int(await conn.fetchval("SELECT coalesce(max(committed_bytes), 0) FROM legacy_imports") or 0)

        async def started() -> bool:
            return await committed() > 0

        await eventually(started, timeout=60, what="a first batch committed")
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 130, err
        assert b"run the same command to resume" in err
        stopped_at = await committed()
        assert 0 < stopped_at < size

        done = await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["resumed_at_byte"] == stopped_at
        parsed = callcenter("legacy", "parse", "--pbx", "shop", str(capture), config=config)
        expected = [json.loads(x) for x in parsed.stdout.decode().splitlines()]
        calls = {c["call_id"] for c in expected if "call_id" in c}
        stored = await conn.fetch("SELECT id::text AS id FROM calls")
        assert len(stored) == len(calls) and {r["id"] for r in stored} == calls  # every call, once
        assert await conn.fetchval("SELECT count(*) FROM quarantine") == sum("quarantined" in c for c in expected)
        assert await committed() == size
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await conn.close()


async def test_listen_prints_calls_live_from_the_tcp_pbx(tmp_path: Path) -> None:
    pbx = await FakePanasonic().start()
    config = tmp_path / "callcenter.toml"
    config.write_text(f'[[pbx]]\nkey = "shop"\nkind = "panasonic"\n[pbx.legacy]\ntransport = "tcp"\n'
                      f'host = "127.0.0.1"\nport = {pbx.port}\ntimezone = "UTC"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "--config", str(config), "legacy", "listen", "--pbx", "shop",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await asyncio.wait_for(pbx.logged_in.wait(), 20)
        await pbx.send(OUT)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        call = json.loads(line)
        assert call["direction"] == "outbound" and call["number_raw"] == "909332991400"
    finally:
        proc.terminate()
        await proc.wait()
        await pbx.close()
