"""`callcenter monitor-group …` as a real subprocess: the same groups the API and the admin page edit."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from .conftest import Api


async def cli(dsn: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "monitor-group", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "CALLCENTER_DSN": dsn, "CALLCENTER_CONFIG": ""})
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_groups_made_on_the_command_line_are_the_apis_and_decide_who_may_monitor_whom(
        api: Api, db_dsn: str) -> None:
    code, out, err = await cli(db_dsn, "create", "--name", "floor", "--level", "whisper", "--observers", "2005",
                               "--observed", "1001,1002")
    assert code == 0, err
    group_id = int(out.split()[0])
    listed = await (await api.client.get("/api/v1/admin/monitor-groups", headers=api.auth("admin"))).json()
    assert [(g["name"], g["level"], g["observed"]) for g in listed["items"]] == [("floor", "whisper", ["1001", "1002"])]

    code, out, _ = await cli(db_dsn, "create", "--name", "leads", "--level", "barge", "--observers", "2005",
                             "--observed", "*", "--announce")
    assert code == 0
    code, out, _ = await cli(db_dsn, "access", "--observer", "2005")
    assert out.splitlines() == ["2005 may barge 1001 (announced)  [floor, leads]",
                                "2005 may barge 1002 (announced)  [floor, leads]",
                                "2005 may barge everyone else (announced)  [leads]"]
    access = await (await api.client.get("/api/v1/admin/monitor-access", headers=api.auth("admin"))).json()
    assert [(r["observer"], r["observed"], r["level"]) for r in access["items"]] == [
        ("2005", "1001", "barge"), ("2005", "1002", "barge"), ("2005", "*", "barge")]

    code, out, _ = await cli(db_dsn, "update", str(group_id), "--name", "floor", "--level", "listen",
                             "--observers", "2005,2006", "--observed", "1001")
    assert code == 0 and "listen" in out
    code, out, _ = await cli(db_dsn, "list", "--json")
    assert {g["name"]: g["observers"] for g in json.loads(out)} == {"floor": ["2005", "2006"], "leads": ["2005"]}
    code, out, _ = await cli(db_dsn, "access", "--observer", "2006")
    assert out.splitlines() == ["2006 may listen 1001  [floor]"]
    assert (await cli(db_dsn, "delete", str(group_id)))[0] == 0
    assert (await cli(db_dsn, "show", str(group_id)))[0] == 1


async def test_bad_monitor_group_input_is_refused_with_the_reason(db_dsn: str) -> None:
    assert (await cli(db_dsn, "create", "--name", "x", "--level", "spy"))[0] == 2  # not a level
    code, _, err = await cli(db_dsn, "create", "--name", "x", "--level", "listen", "--observers", "12a")
    assert code == 1 and "12a" in err
    assert (await cli(db_dsn, "create", "--name", "x", "--level", "listen"))[0] == 0
    code, _, err = await cli(db_dsn, "create", "--name", "x", "--level", "listen")
    assert code == 1 and "exists already" in err
    assert (await cli(db_dsn, "delete", "999"))[0] == 1
