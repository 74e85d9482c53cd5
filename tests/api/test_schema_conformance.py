"""Issue 12, item 14: the OpenAPI says what the handlers accept and answer — schemathesis, every check, every role.

The real app on a real socket, with the Asterisk ports connected (test doubles of the ARI app's contract) so that
the handlers' own logic answers instead of "no Asterisk connected". The schemathesis command line runs all its
phases (examples, coverage, fuzzing, stateful) and all its checks per role; bounded by ``SCHEMATHESIS_EXAMPLES``
(the soak suite raises it). Any failure — a 5xx, an undocumented status, a schema-valid request refused, a
schema-violating one accepted, a wrong answer to an undeclared method — fails the test with schemathesis's report.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.auth import FailureLimiter
from api.schemas import pattern_matches
from callcenter.config import Config
from callcenter.domain import TOKEN_ROLES as ROLES
from callcenter.domain import Conflict, NotFound
from callcenter.store import CallStore
from tests.apiharness import start_api
from tests.conftest import PgServer, create_database, drop_database
from tests.live.liveapi import StaticLiveView

from .conftest import TOKENS, Api, RecordingCallControl, default_config

MakeApiFn = Callable[..., Awaitable[Api]]

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "3"))


class RecordingMonitorControl:
    """A MonitorControl (callcenter.ports) that keeps its sessions in memory."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}

    async def start(self, *, supervisor_extension: str, target_extension: str, mode: str,
                    pbx: str | None = None) -> str:
        session_id = uuid.uuid4().hex
        self.active[session_id] = {"session_id": session_id, "supervisor_extension": supervisor_extension,
                                   "target_extension": target_extension, "mode": mode, "state": "calling",
                                   "pbx": pbx or "main"}
        return session_id

    async def switch(self, session_id: str, mode: str) -> None:
        if session_id not in self.active:
            raise NotFound("no such monitoring session")
        self.active[session_id]["mode"] = mode

    async def stop(self, session_id: str) -> None:
        self.active.pop(session_id, None)

    async def sessions(self) -> list[dict[str, Any]]:
        return list(self.active.values())


class Pickups:
    """A PickupControl (callcenter.ports): nothing ringing anywhere but at 1002, which it "picks up"."""

    async def pickable(self, picker: str) -> list[dict[str, Any]]:
        return []

    async def pickup(self, *, picker: str, target: str, pbx: str | None = None) -> uuid.UUID:
        if target != "1002":
            raise Conflict(f"nothing is ringing at {target}", code="nothing_ringing")
        return uuid.uuid4()


class Queues:
    """A QueueControl over the configured queues (members as the ARI app publishes them: objects)."""

    async def pause(self, queue: str | None, extension: str, paused: bool, reason: str = "") -> None:
        return None

    async def status(self, queue: str) -> dict[str, Any]:
        return {"pbx": "main", "name": queue, "strategy": "ringall", "waiting": 0, "longest_wait": 0.0,
                "estimated_wait": 0, "callers": [], "members": [{"extension": "201", "state": "idle",
                                                                 "paused": False, "reason": "", "calls_taken": 0}]}


async def conformance_api(make_api: MakeApiFn) -> Api:
    config = default_config(queue=[{"name": "sales", "pbx": "main", "members": ["201"]}])
    # schemathesis sends thousands of bad tokens on purpose (auth checks): the failure limit must not turn
    # its 401s into 429s here; the limiter has its own tests
    api = await make_api(config=config, limiter=FailureLimiter(limit=10**9))
    api.ctx.ports.call_control = RecordingCallControl()
    api.ctx.ports.monitor_control = RecordingMonitorControl()
    api.ctx.ports.queue_control = Queues()
    api.ctx.ports.pickup = Pickups()
    api.ctx.ports.live = StaticLiveView()
    return api


def schemathesis_command(base_url: str, secret: str, report: Path, examples: int) -> list[str]:
    return [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base_url}/api/v1/openapi.json",
            "--checks", "all", "--max-examples", str(examples), "--seed", "12", "--no-color",
            "--exclude-path", "/api/v1/events",  # a websocket, not an HTTP request/response operation
            "--request-timeout", "20", "-H", f"Authorization: Bearer {secret}",
            "--report", "junit", "--report-junit-path", str(report)]


def failures_in(output: str) -> list[str]:
    """The failure lines of schemathesis's summary ('❌ ST202 Schema-valid request rejected: 4')."""
    summary = output.split("SUMMARY", 1)[-1]
    return re.findall(r"❌ (ST\d+ [^\n]+)", summary.split("Failures:", 1)[-1]) if "Failures:" in summary else []


async def schemathesis_run(api: Api, role: str, folder: Path) -> tuple[int | None, str]:
    """One schemathesis run as ``role`` against ``api``: its exit code and output (also kept as a report)."""
    base_url = str(api.client.make_url("")).rstrip("/")
    process = await asyncio.create_subprocess_exec(
        *schemathesis_command(base_url, api.tokens[role], folder / f"junit-{role}.xml", EXAMPLES),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=folder)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=900)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = out.decode("utf-8", "replace")
    report = Path(os.environ.get("SCHEMATHESIS_LOG_DIR", str(folder))) / f"schemathesis-{role}.txt"
    report.write_text(output)
    return process.returncode, output


async def start_conformance_api(store: CallStore, folder: Path, config: Config,
                                limiter: FailureLimiter | None = None) -> Api:
    """``make_api``'s build, on a store of the caller's."""
    return await start_api(store, folder, config=config, tokens=TOKENS, limiter=limiter)


@pytest.mark.slow
@pytest.mark.timeout(4 * 180)  # the four runs were four tests of 180 s each
async def test_schemathesis_finds_no_5xx_and_no_schema_violation(pg_server: PgServer, tmp_path: Path) -> None:
    """Every role's run, each on an API and a database of its own (a run's stateful phase changes data the others
    would see). The runs go side by side, as many at once as there are CPUs: schemathesis' own process is 3/4 of
    the CPU they use, so one after the other they left a core idle on a 2-core machine."""
    apis: dict[str, Api] = {}
    databases: list[str] = []
    stores: list[CallStore] = []
    lanes = asyncio.Semaphore(max(1, min(len(ROLES), os.cpu_count() or 1)))

    async def run(role: str) -> tuple[int | None, str]:
        async with lanes:
            return await schemathesis_run(apis[role], role, tmp_path)

    try:
        for role in ROLES:
            databases.append(await create_database(pg_server))
            stores.append(await CallStore.connect(pg_server.dsn_for(databases[-1]), run_migrations=False))
            apis[role] = await conformance_api(functools.partial(start_conformance_api, stores[-1], tmp_path))
        results = dict(zip(ROLES, await asyncio.gather(*(run(role) for role in ROLES)), strict=True))
    finally:
        for api in apis.values():
            await api.close()
        for store in stores:
            await store.close()
        for name in databases:
            await drop_database(pg_server, name)
    for role, (_returncode, output) in results.items():
        assert "API Operations" in output, f"{role}: {output[-3000:]}"  # it ran
        tested = re.search(r"Tested: (\d+)", output)
        assert tested and int(tested.group(1)) >= 50, f"{role}: {output[-3000:]}"
    failed = {role: output for role, (returncode, output) in results.items() if returncode != 0}
    assert not failed, "\n".join(f"{role}: {failures_in(output)}\n{output[-6000:]}" for role, output in failed.items())


# -- the disagreements schemathesis found, one by one (fast; the run above is the net) ------------------

async def test_an_empty_date_is_refused_not_ignored(api: Api) -> None:
    for path in ("/api/v1/calls", "/api/v1/calls.csv", "/api/v1/queues", "/api/v1/queues/reports/summary"):
        response = await api.client.get(path, params={"until": ""}, headers=api.auth("admin"))
        assert response.status == 400, path
        assert (await response.json())["error"]["field"] == "query.until", path
    assert (await api.client.get("/api/v1/calls", params={"q": ""}, headers=api.auth("admin"))).status == 200


async def test_dates_outside_1970_2200_are_read_as_those_bounds(api: Api) -> None:
    far = {"from": "0001-01-01T00:00:00+14:00", "until": "9999-12-31T23:59:59-12:00"}
    assert (await api.client.get("/api/v1/calls", params=far, headers=api.auth("admin"))).status == 200
    report = await api.client.get("/api/v1/queues", params=far, headers=api.auth("admin"))
    assert report.status == 200
    assert (await report.json())["from"].startswith("1970-01-01")
    backwards = {"from": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}
    empty = await api.client.get("/api/v1/queues/reports/summary", params=backwards, headers=api.auth("admin"))
    assert empty.status == 200 and (await empty.json())["items"] == []


async def test_pbx_keys_are_the_configured_ones_in_schema_and_handlers(api: Api) -> None:
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    calls = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/calls"]["get"]["parameters"]}
    assert calls["pbx"]["enum"] == ["main", "branch"]
    token_body = spec["paths"]["/api/v1/admin/tokens"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert token_body["properties"]["pbx"]["enum"] == ["", "main", "branch"]  # '' = every PBX
    refused = await api.client.get("/api/v1/calls", params={"pbx": "nowhere"}, headers=api.auth("admin"))
    assert refused.status == 400 and (await refused.json())["error"]["field"] == "query.pbx"
    extension = await api.client.put("/api/v1/admin/extensions/201", params={"pbx": "nowhere"}, json={},
                                     headers=api.auth("admin"))
    assert extension.status == 400 and (await extension.json())["error"]["field"] == "query.pbx"


async def test_documented_statuses_and_405_on_undeclared_methods(api: Api) -> None:
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    paths = spec["paths"]
    assert "201" in paths["/api/v1/admin/extensions/{number}"]["put"]["responses"]
    assert "409" in paths["/api/v1/admin/org-units"]["post"]["responses"]
    assert "409" in paths["/api/v1/admin/tokens/{id}"]["delete"]["responses"]
    assert {"206", "416", "502"} <= set(paths["/api/v1/calls/{id}/recording"]["get"]["responses"])
    wrong = await api.client.put("/api/v1/admin/retention/purge", headers=api.auth("admin"))
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST"
    body = spec["paths"]["/api/v1/admin/org-units"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["name"]["pattern"] == "^[^\\u0000]*$"  # what _check_text refuses, said


# Characters the regex engines disagree on when a pattern leaves it to them: line ends ($, .), Unicode spaces
# (\s), digits of other scripts (\d), letters (\w).
_TRICKY = ("\n", "\r", "\t", " ", "\x85", "\xa0", "\u1680", "\u2007", "\u2028", "\u2029", "\u3000", "\ufeff",
           "\u200b", "\u0661", "\U0001d7d9", "\xe9", "_", "$", "^", "\\")
_NO_SURROGATES = st.characters(exclude_categories=["Cs"])  # refused before any pattern (_check_text)
_SHORTHAND = re.compile(r"(?<!\\)(?:\\\\)*\\[sSdDwWbB]")  # \s \d \w \b and their negations


def served_patterns(spec: Any) -> set[str]:
    """Every ``pattern`` the OpenAPI states for a request: parameters and request bodies."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for operations in spec["paths"].values():
        for operation in operations.values():
            walk(operation.get("parameters", []))
            walk(operation.get("requestBody", {}))
    return found


async def test_every_served_pattern_reads_the_same_in_the_handlers_and_in_json_schema(api: Api) -> None:
    """A value the OpenAPI's pattern allows is one the handlers take, and the other way round (ST202/ST201):
    the handlers' check (api.schemas.pattern_matches) agrees with jsonschema_rs, the ECMA-reading validator
    schemathesis filters its cases with, on the matches Python's reading draws (which end in "\\n" where a
    pattern ends in $) and on the characters the engines read differently."""
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    patterns = sorted(served_patterns(spec))
    assert len(patterns) >= 10, patterns
    assert [p for p in patterns if _SHORTHAND.search(p)] == []
    validators = {p: jsonschema_rs.validator_for({"type": "string", "pattern": p}) for p in patterns}

    def disagreement(pattern: str, value: str) -> str | None:
        schema_says = validators[pattern].is_valid(value)
        return None if pattern_matches(pattern, value) == schema_says else f"{pattern!r} {value!r}: {schema_says}"

    seeds = ["", "1", "1001", "abc", "https://crm.example.com/hook"]
    corner = [disagreement(p, text) for p in patterns for c in _TRICKY
              for text in (c, *(s + c for s in seeds), *(c + s for s in seeds))]
    assert [d for d in corner if d] == []

    @settings(max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(patterns).flatmap(lambda p: st.tuples(st.just(p), st.one_of(
        st.from_regex(p, alphabet=_NO_SURROGATES), st.text(st.sampled_from(_TRICKY) | _NO_SURROGATES)))))
    def drawn(case: tuple[str, str]) -> None:
        assert disagreement(*case) is None

    drawn()


async def test_conference_takes_exactly_one_of_number_or_call_id_and_its_schema_says_so(make_api: MakeApiFn) -> None:
    """Schemathesis' stateful phase sent {} and {number, call_id} (schema-valid then) and got 400: ST202."""
    api = await conformance_api(make_api)
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    operation = spec["paths"]["/api/v1/calls/{id}/conference"]["post"]
    schema = jsonschema_rs.validator_for(operation["requestBody"]["content"]["application/json"]["schema"])
    call = f"/api/v1/calls/{uuid.uuid4()}/conference"
    for body in ({}, {"number": "1001", "call_id": str(uuid.uuid4())}):
        assert not schema.is_valid(body), body
        refused = await api.client.post(call, json=body, headers=api.auth("admin"))
        assert refused.status == 400, body
        assert (await refused.json())["error"] == {
            "code": "invalid_request", "message": "body: give exactly one of number or call_id", "field": "body",
            "reason": "give exactly one of number or call_id"}
    assert schema.is_valid({"number": "1001"})
    taken = await api.client.post(call, json={"number": "1001"}, headers=api.auth("admin"))
    assert taken.status == 202  # past the body check, to the call control
