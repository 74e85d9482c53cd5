"""Call control from any instance (issue 16): an API-only instance forwards every action to the PBX's owner.

Two real services (``run_service``, as ``callcenter serve`` runs them) on one PostgreSQL: the owner with the roles
ari, agi and api driving the simulated Asterisk, and an instance with the api role only. The same scenario — every
call-control and monitoring route, pickup, queues and the live view — runs through each of them, and the two
transcripts (status and body of every answer, ids aside) must be the same. An owner that is gone is a 503 with
Retry-After within the configured time; a command whose deadline has passed is never carried out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.config import parse_config
from callcenter.embedded_pg import free_port
from callcenter.forwarding import COMMAND_TOPIC, RoutingCallControl
from callcenter.runner import run_service
from callcenter.service import ServiceContext
from callcenter.store import CallStore, monitor_groups
from callcenter.store import commands as command_store
from callcenter.store import ownership as ownership_store
from callcenter.store import tokens as token_store
from tests.ari.conftest import DIALPLAN, PASSWORD
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)

PHONES = ["1001", "1002", "1003", "1004"]
CUSTOMER, OTHER = "0501234567", "0509999999"
TIMEOUT = 1.5  # [cluster] command_timeout of both instances


@dataclass
class Instance:
    """One running service: its context and an HTTP client on its real port, with an admin and an agent token."""

    name: str
    ctx: ServiceContext
    port: int
    http: aiohttp.ClientSession
    stop: asyncio.Event
    task: asyncio.Task[None]
    tokens: dict[str, str] = field(default_factory=dict)

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   who: str = "admin") -> tuple[int, Any, Any]:
        async with self.http.request(method, f"http://127.0.0.1:{self.port}{path}", json=body,
                                     headers={"Authorization": f"Bearer {self.tokens[who]}"}) as resp:
            answer = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, answer, resp.headers


@dataclass
class Pair:
    sim: Simulator
    owner: Instance
    api_only: Instance
    store: CallStore
    standby: Instance | None = None  # with leases ([cluster] enabled): an ari instance waiting to take over


async def start(name: str, raw: dict[str, Any], roles: tuple[str, ...]) -> Instance:
    port = free_port()
    cluster = {**raw["cluster"], **({"instance_name": name} if raw["cluster"].get("enabled") else {})}
    config = parse_config({**raw, "cluster": cluster, "http": {"port": port}, "agi": {"port": free_port()},
                           "database": {**raw["database"], "spool_file": f"{raw['database']['spool_file']}.{name}"}},
                          env={})
    stop = asyncio.Event()
    ready: asyncio.Future[ServiceContext] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_service(config, roles, stop=stop, on_ready=ready.set_result))
    done, _ = await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert ready in done, task.exception() if task.done() else f"{name} did not start"
    return Instance(name, ready.result(), port, aiohttp.ClientSession(), stop, task)


async def halt(instance: Instance) -> None:
    instance.stop.set()
    await asyncio.wait_for(instance.task, 30)


@pytest.fixture
async def pair(db_dsn: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """The owner and an API-only instance; ``leases`` (indirect parameter): ``[cluster] enabled`` with a standby."""
    leases = bool(getattr(request, "param", False))
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                           recordings_dir=str(tmp_path / "rec"))
    async with Simulator(sim_config) as sim:
        for ext in PHONES[:3]:
            await sim.phone(ext).register()
            sim.phone(ext).answer_after(0.02)
        raw = {"database": {"dsn": db_dsn, "spool_file": str(tmp_path / "spool.jsonl"), "pool_max": 4},
               "cluster": {"command_timeout": TIMEOUT, **({"enabled": True, "lease_seconds": 1.0,
                                                           "renew_seconds": 0.25} if leases else {})},
               "pickup": {"group": [{"name": "desk", "members": ["1001", "1002"]}]},
               "queue": [{"name": "support", "pbx": "main", "members": ["1004"]}],
               "pbx": [{"key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
                        "extension_lengths": [4],
                        "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter",
                                "outbound_context": "from-internal"}}]}
        owner = await start("owner", raw, ("ari", "agi", "api"))
        standby = None
        if leases:
            await eventually(lambda: owner.ctx.ownership.owns("main"), what="the owner holds the lease")
            standby = await start("standby", raw, ("ari", "api"))
        api_only = await start("api", raw, ("api",))
        store = owner.ctx.store
        for who, role, extension in (("admin", "admin", ""), ("agent", "agent", "1002")):
            _row, secret = await token_store.create_token(store.pool, role=role, extension=extension, name=who)
            for instance in (owner, api_only, *([standby] if standby else [])):
                instance.tokens[who] = secret
        await monitor_groups.create_group(store.pool, name="desk", level="barge", observers=["1003"],
                                          observed=["1001"], announce=False)
        try:
            yield Pair(sim, owner, api_only, store, standby)
        finally:
            for instance in (api_only, *([standby] if standby else []), owner):
                if not instance.task.done():
                    await halt(instance)
                await instance.http.close()


def normal(body: Any, ids: dict[str, str]) -> Any:
    """The body with the ids of this run's calls and sessions named by order of appearance, times dropped."""
    if isinstance(body, dict):
        return {k: normal(v, ids) for k, v in body.items()
                if k not in ("generated_at", "started_at", "answered_at", "ringing_since", "linkedid", "bridge",
                             "legs", "parties", "channel", "longest_wait", "waiting_seconds", "since", "duration",
                             "state_since")}
    if isinstance(body, list):
        return [normal(v, ids) for v in body]
    if isinstance(body, str) and body in ids:
        return ids[body]
    return body


async def scenario(pair: Pair, via: Instance) -> list[tuple[str, int, Any]]:
    """Every call-control and monitoring route through ``via``, with the effect each must have on the PBX."""
    sim, ids = pair.sim, {}
    out: list[tuple[str, int, Any]] = []

    async def step(label: str, method: str, path: str, body: dict[str, Any] | None = None, who: str = "admin",
                   expect: int | None = None, then: Callable[[], Any] | None = None) -> Any:
        status, answer, _headers = await via.call(method, path, body, who)
        if isinstance(answer, dict):
            for key in ("call_id", "session_id", "recording"):
                if isinstance(answer.get(key), str) and answer[key] not in ids:
                    ids[answer[key]] = f"<{key} {len(ids)}>"
        out.append((label, status, normal(answer, ids)))
        assert expect is None or status == expect, (label, status, answer)
        if then is not None:
            await eventually(then, what=f"{label} through {via.name}")
        return answer

    def hears(ext: str) -> set[str]:
        return sim.who_hears_whom().get(ext, set())

    async def live() -> dict[str, Any]:
        return (await via.call("GET", "/api/v1/live"))[1]  # type: ignore[no-any-return]

    async def phones_idle() -> bool:
        states = {e["extension"]: e["state"] for e in (await live())["extensions"]}
        return all(states.get(p) == "idle" for p in PHONES[:3])

    await eventually(phones_idle, what=f"phones idle through {via.name}")
    await step("live board", "GET", "/api/v1/live", expect=200)
    await step("offline phone", "POST", "/api/v1/calls", {"extension": "1004", "number": CUSTOMER}, expect=409)
    await step("unknown call", "POST", f"/api/v1/calls/{uuid.UUID(int=7)}/hold", expect=404)
    sim.customer(CUSTOMER).answer_after(0.02)
    started = await step("click-to-call", "POST", "/api/v1/calls", {"extension": "1001", "number": CUSTOMER},
                         expect=202, then=lambda: hears("1001") == {CUSTOMER})
    calls = f"/api/v1/calls/{started['call_id']}"
    await step("hold", "POST", f"{calls}/hold", expect=202, then=lambda: hears(CUSTOMER) == {"moh"})
    await step("unhold", "POST", f"{calls}/unhold", expect=202, then=lambda: hears(CUSTOMER) == {"1001"})
    await step("record", "POST", f"{calls}/recording", expect=202)
    await step("stop recording", "DELETE", f"{calls}/recording", expect=202)
    await step("no transfer to cancel", "POST", f"{calls}/transfer/cancel")
    await step("attended transfer", "POST", f"{calls}/transfer", {"target": "1002", "attended": True}, expect=202,
               then=lambda: hears("1002") == {"1001"})
    await step("cancel transfer", "POST", f"{calls}/transfer/cancel", expect=202,
               then=lambda: hears("1001") == {CUSTOMER})
    sim.customer(OTHER).answer_after(0.02)
    await step("conference", "POST", f"{calls}/conference", {"number": OTHER}, expect=202,
               then=lambda: hears(OTHER) == {"1001", CUSTOMER})
    party = next(p["channel"] for c in (await live())["calls"] if c["call_id"] == started["call_id"]
                 for p in c["parties"] if p["role"] == "party")
    await step("remove party", "DELETE", f"{calls}/parties/{party}", expect=202,
               then=lambda: hears("1001") == {CUSTOMER})
    await step("not an observer", "POST", "/api/v1/monitor",
               {"supervisor_extension": "1002", "target_extension": "1001", "mode": "listen"}, expect=403)
    session = await step("monitor", "POST", "/api/v1/monitor",
                         {"supervisor_extension": "1003", "target_extension": "1001", "mode": "listen"},
                         expect=202, then=lambda: CUSTOMER in hears("1003"))
    await step("sessions", "GET", "/api/v1/monitor", expect=200)
    monitor = f"/api/v1/monitor/{session['session_id']}"
    await step("whisper", "PATCH", monitor, {"mode": "whisper"}, expect=202, then=lambda: "1003" in hears("1001"))
    await step("beyond the grant", "PATCH", monitor, {"mode": "takeover"}, expect=403)
    await step("stop monitoring", "DELETE", monitor, expect=202, then=lambda: not hears("1003"))
    await step("unknown session", "DELETE", "/api/v1/monitor/0123456789abcdef", expect=404)
    await step("pickable", "GET", "/api/v1/pickup", who="agent", expect=200)
    await step("nothing to pick up", "POST", "/api/v1/extensions/1001/pickup", who="agent")
    await step("pause", "POST", "/api/v1/queues/support/members/1004/pause", {"paused": True, "reason": "lunch"},
               expect=200)
    await step("queue", "GET", "/api/v1/queues/support/live", expect=200)
    await step("resume", "POST", "/api/v1/queues/support/members/1004/pause", {"paused": False}, expect=200)
    await step("blind transfer", "POST", f"{calls}/transfer", {"target": "1002"}, expect=202,
               then=lambda: hears("1002") == {CUSTOMER})
    await step("hang up", "DELETE", calls, expect=202, then=lambda: not hears(CUSTOMER))
    await step("hang up again", "DELETE", calls)
    await eventually(lambda: not hears("1001") and not hears("1002"), what="phones free")

    # an attended transfer completed, then a held call merged into another
    sim.customer(CUSTOMER).answer_after(0.02)
    first = await step("second click-to-call", "POST", "/api/v1/calls", {"extension": "1001", "number": CUSTOMER},
                       expect=202, then=lambda: hears("1001") == {CUSTOMER})
    await step("consult", "POST", f"/api/v1/calls/{first['call_id']}/transfer", {"target": "1002", "attended": True},
               expect=202, then=lambda: hears("1002") == {"1001"})
    await step("complete transfer", "POST", f"/api/v1/calls/{first['call_id']}/transfer/complete", expect=202,
               then=lambda: hears("1002") == {CUSTOMER})
    await step("hang up the transferred call", "DELETE", f"/api/v1/calls/{first['call_id']}", expect=202,
               then=lambda: not hears("1002") and not hears(CUSTOMER))
    sim.customer(CUSTOMER).answer_after(0.02)
    held = await step("call to hold", "POST", "/api/v1/calls", {"extension": "1001", "number": CUSTOMER},
                      expect=202, then=lambda: hears("1001") == {CUSTOMER})
    await step("hold it", "POST", f"/api/v1/calls/{held['call_id']}/hold", expect=202,
               then=lambda: hears(CUSTOMER) == {"moh"})
    sim.customer(OTHER).answer_after(0.02)
    second = await step("another call", "POST", "/api/v1/calls", {"extension": "1002", "number": OTHER},
                        expect=202, then=lambda: hears("1002") == {OTHER})
    await step("merge the held call", "POST", f"/api/v1/calls/{second['call_id']}/conference",
               {"call_id": held["call_id"]}, expect=202,
               then=lambda: {"1002", OTHER} <= hears(CUSTOMER) and "1001" in hears("1002"))
    await step("hang up the conference", "DELETE", f"/api/v1/calls/{second['call_id']}", expect=202)
    await eventually(lambda: not sim.channels(), what="every channel gone")
    return out


@pytest.mark.parametrize("pair", [False, True], ids=["one-instance-owner", "leases"], indirect=True)
async def test_every_route_answers_the_same_through_an_api_only_instance(pair: Pair) -> None:
    through_owner = await scenario(pair, pair.owner)
    forwarded = await scenario(pair, pair.api_only)
    assert [label for label, *_ in forwarded] == [label for label, *_ in through_owner]
    for (label, *answer), (_, *expected) in zip(forwarded, through_owner, strict=True):
        assert answer == expected, label
    health = pair.api_only.ctx.health.snapshot()["forwarding"]
    assert health["issued"] >= len(forwarded) and health["timeouts"] == 0
    assert pair.owner.ctx.health.snapshot()["forwarding"]["executed"] >= len(forwarded)


async def test_an_owner_that_is_gone_is_a_503_with_retry_after_within_the_timeout(pair: Pair) -> None:
    await halt(pair.owner)
    began = time.monotonic()
    status, body, headers = await pair.api_only.call("POST", f"/api/v1/calls/{uuid.uuid4()}/hold")
    took = time.monotonic() - began
    assert (status, body["error"]["code"]) == (503, "owner_unavailable"), body
    assert "not carried out" in body["error"]["message"] and int(headers["Retry-After"]) >= 1
    # it waited its command_timeout for an answer, then gave the command up: the row's own deadline is the
    # timeout (the database's clock, not this loaded machine's), and no other wait ended it
    assert took >= TIMEOUT and f"within {TIMEOUT:g} s" in body["error"]["message"]
    [row] = await pair.api_only.ctx.store.pool.fetch("SELECT state, deadline - issued_at AS wait FROM pbx_commands")
    assert (row["state"], row["wait"].total_seconds()) == ("expired", TIMEOUT)
    health = pair.api_only.ctx.health.snapshot()["forwarding"]
    assert (health["issued"], health["timeouts"], health["unowned"]) == (1, 1, 0)
    status, body, _headers = await pair.api_only.call("GET", "/api/v1/live")
    assert status == 200 and body["pbx_connected"] == {"main": False} and body["calls"] == []


@pytest.mark.parametrize("pair", [True], ids=["leases"], indirect=True)
async def test_with_nobody_holding_the_lease_the_answer_is_a_503_at_once(pair: Pair) -> None:
    """With leases the lease row says whether anyone drives the PBX: when its lease is free (every ari instance
    stopped; a clean stop releases it) waiting ``command_timeout`` for an answer helps nobody — 503 at once, with
    a short Retry-After (a standby takes a free lease within about a second), and nothing left for anyone to run."""
    assert pair.standby is not None
    await halt(pair.standby)
    await halt(pair.owner)
    status, body, headers = await pair.api_only.call("POST", f"/api/v1/calls/{uuid.uuid4()}/hold")
    assert (status, body["error"]["code"]) == (503, "owner_unavailable"), body
    assert "not carried out" in body["error"]["message"] and headers["Retry-After"] == "1"
    health = pair.api_only.ctx.health.snapshot()["forwarding"]
    # nothing was issued, so nothing was waited for (how long the answer took is this machine's load)
    assert (health["unowned"], health["timeouts"], health["issued"]) == (1, 0, 0)
    pending = "SELECT count(*) FROM pbx_commands WHERE state = 'pending'"
    assert await pair.api_only.ctx.store.pool.fetchval(pending) == 0


@pytest.mark.parametrize("pair", [True], ids=["leases"], indirect=True)
async def test_a_holder_whose_lease_runs_out_during_the_wait_is_not_waited_for(pair: Pair) -> None:
    """The lease row names a holder that has just died (it took the lease and was never heard of again): the
    action is issued, and given up as soon as that lease has run out — not at the end of ``command_timeout``."""
    assert pair.standby is not None
    await halt(pair.standby)
    await halt(pair.owner)
    ghost = await ownership_store.take_or_renew_lease(pair.api_only.ctx.store.pool, "main", "ghost#1",
                                                      ttl_seconds=0.3)
    assert ghost is not None
    status, body, headers = await pair.api_only.call("POST", f"/api/v1/calls/{uuid.uuid4()}/hold")
    assert (status, body["error"]["code"], headers["Retry-After"]) == (503, "owner_unavailable", "1"), body
    health = pair.api_only.ctx.health.snapshot()["forwarding"]
    assert (health["issued"], health["unowned"], health["timeouts"]) == (1, 1, 0)
    states = await pair.api_only.ctx.store.pool.fetch("SELECT state FROM pbx_commands")
    assert [row["state"] for row in states] == ["expired"]


async def test_a_command_past_its_deadline_is_never_carried_out(pair: Pair) -> None:
    pair.sim.customer(CUSTOMER).answer_after(0.02)
    status, started, _ = await pair.owner.call("POST", "/api/v1/calls", {"extension": "1001", "number": CUSTOMER})
    assert status == 202
    await eventually(lambda: pair.sim.who_hears_whom().get("1001") == {CUSTOMER}, what="connected")
    late = await command_store.issue_command(pair.store.pool, pbx_key="main", port="call_control", method="hangup",
                                             args={"call_id": started["call_id"]}, issued_by="test", timeout=-1)
    assert late is not None
    await pair.api_only.ctx.bus.publish(COMMAND_TOPIC, {"id": late, "pbx": "main"})  # the owner looks for work
    router = pair.api_only.ctx.ports.call_control
    assert isinstance(router, RoutingCallControl)
    await router.hold(uuid.UUID(started["call_id"]))  # issued after it, answered: the owner has looked past it
    assert pair.sim.who_hears_whom().get(CUSTOMER) == {"moh"}
    command = await command_store.get_command(pair.store.pool, late)
    assert command is not None and command.state in ("pending", "expired") and command.claimed_by is None
    assert any(c["call_id"] == started["call_id"] for c in (await pair.owner.call("GET", "/api/v1/live"))[1]["calls"])


async def test_forwarding_goes_on_when_the_listen_connections_are_cut(pair: Pair) -> None:
    """Both instances' LISTEN connections are killed by the server: NOTIFYs sent meanwhile are lost, yet the
    action is carried out and answered (the owner and the issuer also look at the table), and the bus
    reconnects."""
    pair.sim.customer(CUSTOMER).answer_after(0.02)
    status, started, _ = await pair.api_only.call("POST", "/api/v1/calls", {"extension": "1001", "number": CUSTOMER})
    assert status == 202, started
    await eventually(lambda: pair.sim.who_hears_whom().get("1001") == {CUSTOMER}, what="connected")
    reconnects = [i.ctx.bus.health()["reconnects"] for i in (pair.owner, pair.api_only)]
    listeners = [i.ctx.bus._conn.get_server_pid() for i in (pair.owner, pair.api_only)]  # type: ignore[union-attr]
    assert await pair.store.pool.fetchval("SELECT bool_and(pg_terminate_backend(pid)) FROM unnest($1::int[]) pid",
                                          listeners)
    status, body, _ = await pair.api_only.call("POST", f"/api/v1/calls/{started['call_id']}/hold")
    assert status == 202, body
    assert pair.sim.who_hears_whom().get(CUSTOMER) == {"moh"}
    def listening_again() -> bool:
        health = [i.ctx.bus.health() for i in (pair.owner, pair.api_only)]
        return all(h["reconnects"] > was and h["state"] == "up" for h, was in zip(health, reconnects, strict=True))

    await eventually(listening_again, timeout=15, what="both buses listening again")
    status, body, _ = await pair.api_only.call("POST", f"/api/v1/calls/{started['call_id']}/unhold")
    assert status == 202, body


@pytest.mark.parametrize("pair", [True], ids=["leases"], indirect=True)
async def test_the_api_only_instance_follows_a_take_over(pair: Pair) -> None:
    """With leases: the owner stops, the standby takes the PBX over, and the same call is controlled through the
    API-only instance again, now on the standby — the CRM never learns which instance drives the PBX."""
    assert pair.standby is not None and not pair.standby.ctx.ownership.owns("main")
    pair.sim.customer(CUSTOMER).answer_after(0.02)
    status, started, _ = await pair.api_only.call("POST", "/api/v1/calls", {"extension": "1001", "number": CUSTOMER})
    assert status == 202, started
    await eventually(lambda: pair.sim.who_hears_whom().get("1001") == {CUSTOMER}, what="connected")
    await halt(pair.owner)
    await eventually(lambda: pair.standby is not None and pair.standby.ctx.ownership.owns("main"), timeout=10,
                     what="the standby took the PBX over")

    async def call_shown() -> bool:
        status, live, _ = await pair.api_only.call("GET", "/api/v1/live")
        return status == 200 and any(c["call_id"] == started["call_id"] for c in live["calls"])

    await eventually(call_shown, timeout=10, what="the standby's live view has the call (through the API-only one)")
    status, body, _ = await pair.api_only.call("POST", f"/api/v1/calls/{started['call_id']}/hold")
    assert status == 202, body
    await eventually(lambda: pair.sim.who_hears_whom().get(CUSTOMER) == {"moh"}, what="held by the standby")
    executed = pair.standby.ctx.health.snapshot()["forwarding"]["executed"]
    assert executed >= 2  # the live view and the hold, run on the standby for the API-only instance
