"""`callcenter token create|list|revoke` as a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import os
import sys

from .conftest import Api


async def cli(dsn: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "token", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "CALLCENTER_DSN": dsn, "CALLCENTER_CONFIG": ""})
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_a_token_made_on_the_command_line_works_until_revoked(api: Api, db_dsn: str) -> None:
    code, out, err = await cli(db_dsn, "create", "--role", "agent", "--extension", "201", "--expires-days", "7",
                               "--name", "desk 201")
    assert code == 0, err
    lines = out.strip().splitlines()
    secret, token_id = lines[-1], lines[0].removeprefix("id: ")
    assert "expires: never" not in out
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/api/v1/calls", headers=headers)).status == 200
    code, out, _ = await cli(db_dsn, "list")
    assert token_id in out and "desk 201" in out and secret not in out and "active" in out
    code, out, _ = await cli(db_dsn, "revoke", token_id)
    assert code == 0
    assert (await api.client.get("/api/v1/calls", headers=headers)).status == 401
    code, out, _ = await cli(db_dsn, "list")
    assert "revoked" in out


async def test_bad_command_line_input_is_refused(db_dsn: str) -> None:
    assert (await cli(db_dsn, "create", "--role", "root"))[0] == 2
    assert (await cli(db_dsn, "create", "--role", "agent"))[0] == 2
    assert (await cli(db_dsn, "create", "--role", "crm", "--expires-days", "0"))[0] == 2
    assert (await cli(db_dsn, "revoke", "not-a-uuid"))[0] == 2
    assert (await cli(db_dsn, "revoke", "00000000-0000-0000-0000-000000000000"))[0] == 1
