"""Call pickup (issue 17) on the simulator: ``*8<ext>`` and ``POST /api/v1/extensions/{ext}/pickup``.

The ARI component runs as the service runs it (ARI app, AMI watcher, the pickup plug-in), the API on a real
socket with a token per phone, and the simulator runs our rendered dialplan: the ``*8`` feature code in
``[callcenter-monitor]`` and ``[callcenter-pickup-arrival]``, which the AMI Redirect of the caller reaches.
Groups: ``sales`` = 1001, 1002, 1003 (members), 1005 a picker only; 1004 is in no group. Queue ``support``
rings 1002 (customers dial ``q<queue>``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ari_app.component import run
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import Config, parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store
from dialplan.render import render_all
from tests.apiharness import Who, serve
from tests.waiting import eventually

CUSTOMER = "0501234567"
PHONES = ["1001", "1002", "1003", "1004", "1005"]
SITE = """
[from-internal]
include => callcenter-monitor
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()

[from-trunk]
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _q.,1,Goto(callcenter-queue,${EXTEN:1},1)

"""


def config_for(ari_url: str, ami_port: int) -> Config:
    return parse_config({
        "pickup": {"group": [{"name": "sales", "members": ["1001", "1002", "1003"], "pickers": ["1005"]}]},
        "queue": [{"name": "support", "members": ["1002"], "ring_timeout": 60, "announce_position": False}],
        "pbx": [{"key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
                 "extension_lengths": [4],
                 "ari": {"url": ari_url, "username": "cc", "password": "pw", "app": "callcenter"},
                 "ami": {"port": ami_port, "username": "cc", "secret": "pw"}}]}, env={})


@dataclass
class Office:
    sim: Simulator
    ctx: ServiceContext
    client: TestClient
    tokens: dict[str, str]
    store: CallStore

    async def pickup(self, picker: str, target: str) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post(f"/api/v1/extensions/{target}/pickup",
                                      headers={"Authorization": f"Bearer {self.tokens[picker]}"})
        return resp.status, await resp.json()

    async def pickable(self, picker: str) -> list[dict[str, Any]]:
        resp = await self.client.get("/api/v1/pickup", headers={"Authorization": f"Bearer {self.tokens[picker]}"})
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["items"])

    async def row(self, call_id: uuid.UUID) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def ended() -> bool:
            row = await self.store.get_call(call_id)
            found.update(row or {})
            return bool(row and row["ended_at"])

        await eventually(ended, what="the call's row ended")
        return found

    async def timeline(self, call_id: uuid.UUID) -> list[dict[str, Any]]:
        """The call's timeline once its hang-up line is in (the row and the timeline are separate writes)."""
        found: list[dict[str, Any]] = []

        async def complete() -> bool:
            found[:] = [dict(e) for e in await self.store.call_events(call_id)]
            return "hangup" in {e["kind"] for e in found}

        await eventually(complete, what="the call's hang-up in its timeline")
        return found


@pytest.fixture
async def office(store: CallStore, tmp_path: Path) -> AsyncIterator[Office]:
    rendered = render_all(config_for("http://127.0.0.1:8088/ari", 5038))["extensions_callcenter.conf"]
    async with Simulator(SimConfig(user="cc", password="pw", phones=PHONES, dialplan_text=SITE + rendered,
                                   ami_port=0, auto_register=True, recordings_dir=str(tmp_path / "rec"))) as sim:
        config = config_for(sim.ari_url, sim.ami_port)
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
        try:
            async with run(ctx) as provided:
                ctx.ports.wire(provided)  # as the composition root does
                pbx = ctx.ports.live.pbxs["main"]  # type: ignore[union-attr]
                assert await pbx.client.wait_connected(5)
                await eventually(lambda: pbx.ami is not None and pbx.ami.connected, what="AMI logged in")
                await eventually(lambda: all(pbx.state.extensions.get(e) and pbx.state.extensions[e].registered
                                             for e in PHONES), what="phones registered in the live state")
                api = await serve(ctx, tokens=[Who(ext, "agent", ext) for ext in PHONES])
                try:
                    yield Office(sim, ctx, api.client, api.tokens, store)
                finally:
                    await api.close()
        finally:
            await writer.close()


async def ringing_at(office: Office, target: str, caller: str, did: str = "") -> uuid.UUID:
    """``caller`` (an extension, or the customer over the trunk) calls ``target``, which rings and rings."""
    office.sim.phone(target).never_answer()
    if caller == CUSTOMER:
        await office.sim.inbound_call(caller=CUSTOMER, did=did or target)
    else:
        await office.sim.phone(caller).dial(target)
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        found[:] = [c for c in await office.pickable("1003") if c["extension"] == target]
        return bool(found)

    await eventually(listed, what=f"a call ringing at {target} in 1003's pickup list")
    return uuid.UUID(found[0]["call_id"])


def talking(office: Office, a: str, b: str) -> bool:
    heard = office.sim.who_hears_whom()
    return heard.get(a) == {b} and heard.get(b) == {a}


async def test_star8_picks_up_a_colleagues_ringing_internal_call(office: Office) -> None:
    call_id = await ringing_at(office, "1002", "1001")
    await office.sim.phone("1003").dial("*81002")
    await eventually(lambda: talking(office, "1003", "1001"), what="1003 and 1001 talk")
    await eventually(lambda: not office.sim.phone("1002").channels(), what="1002 stops ringing")
    assert await office.pickable("1003") == []
    await office.sim.phone("1001").hangup()
    await eventually(lambda: not office.sim.channels() and not office.sim.bridges(), what="nothing left")
    row = await office.row(call_id)
    assert (row["status"], row["direction"], row["extension"]) == ("answered", "internal", "1003")
    assert row["tags"]["answered_by"] == "1003" and row["tags"]["picked_up_from"] == "1002"
    picked = [e for e in await office.timeline(call_id) if e["kind"] == "picked_up"]
    assert [(e["data"]["by"], e["data"]["extension"], e["data"]["via"], e["data"]["group"]) for e in picked] == [
        ("1003", "1002", "feature_code", "sales")]


async def test_the_api_rings_my_phone_and_answering_takes_the_customers_call(office: Office) -> None:
    call_id = await ringing_at(office, "1002", CUSTOMER)
    office.sim.phone("1005").answer_after(0)  # a picker of the group (the team lead), not a member
    status, body = await office.pickup("1005", "1002")
    assert (status, body["call_id"], body["answer_at"]) == (202, str(call_id), "1005")
    await eventually(lambda: talking(office, "1005", CUSTOMER), what="the customer talks with 1005")
    await eventually(lambda: not office.sim.phone("1002").channels(), what="the ringing leg at 1002 cancelled")
    await office.sim.phone("1005").hangup()
    await eventually(lambda: not office.sim.channels(), what="the customer is hung up with 1005")
    row = await office.row(call_id)
    assert (row["status"], row["direction"], row["extension"]) == ("answered", "inbound", "1005")
    assert row["tags"]["answered_by"] == "1005"
    kinds = [e["kind"] for e in await office.timeline(call_id)]
    assert kinds.index("ring") < kinds.index("picked_up") < kinds.index("hangup")


async def test_a_picker_who_answers_before_asterisk_s_reply_to_ringing_him_keeps_the_call(
        office: Office, caplog: pytest.LogCaptureFixture) -> None:
    """The picker's phone answers at once; on a slow Asterisk his channel's StasisStart (the answer: the pickup
    goes through) comes before the reply to ringing it. The reply then marked him as still ringing for the pickup,
    and the next event anywhere — nothing left ringing at 1002 — hung his phone up, the customer left alone."""
    caplog.set_level(logging.INFO, logger="callcenter.ari.pickup")
    await ringing_at(office, "1002", CUSTOMER)
    office.sim.phone("1005").answer_after(0)
    ring_reply = office.sim.hold_replies("POST", r"/channels")
    asked = asyncio.create_task(office.pickup("1005", "1002"))
    try:
        await eventually(lambda: talking(office, "1005", CUSTOMER), what="the customer talks with 1005")
        await eventually(lambda: not office.sim.phone("1002").channels(), what="the ringing leg at 1002 cancelled")
    finally:
        ring_reply.set()
    assert (await asked)[0] == 202
    office.sim.phone("1004").answer_after(0.02)  # any later events: another call in the office
    await office.sim.phone("1001").dial("1004")
    state = office.ctx.ports.live.pbxs["main"].state  # type: ignore[union-attr]
    await eventually(lambda: state.extensions["1004"].state == "in_call", what="1001's call to 1004 in the live state")
    assert "event=pickup_picker_released" not in caplog.text
    assert talking(office, "1005", CUSTOMER)
    await office.sim.phone("1005").hangup()
    await office.sim.phone("1001").hangup()
    await eventually(lambda: not office.sim.channels(), what="everyone hung up")


async def test_my_phone_stops_ringing_for_a_pickup_when_the_caller_gives_up(office: Office) -> None:
    await ringing_at(office, "1002", CUSTOMER)
    office.sim.phone("1003").never_answer()
    status, _body = await office.pickup("1003", "1002")
    assert status == 202
    await eventually(lambda: bool(office.sim.phone("1003").channels()), what="my phone rings for the pickup")
    await office.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not office.sim.channels(), what="1002 and my phone stop ringing")


async def test_pickup_outside_my_groups_is_refused_403_and_the_call_rings_on(office: Office) -> None:
    await ringing_at(office, "1002", "1001")
    status, body = await office.pickup("1004", "1002")
    assert status == 403 and body["error"]["code"] == "not_in_pickup_group", body
    assert await office.pickable("1004") == []
    assert not office.sim.phone("1004").channels()  # refused before its phone rang
    await office.sim.phone("1004").dial("*81002")  # the feature code: refused with a prompt, hung up
    await eventually(lambda: not office.sim.phone("1004").channels(), what="1004 hung up after the prompt")
    assert [c["extension"] for c in await office.pickable("1003")] == ["1002"]


async def test_nothing_ringing_or_already_answered_is_409(office: Office) -> None:
    status, body = await office.pickup("1003", "1002")
    assert status == 409 and body["error"]["code"] == "nothing_ringing", body
    status, body = await office.pickup("1003", "1003")
    assert status == 409 and body["error"]["code"] == "own_extension", body
    office.sim.phone("1002").answer_after(0)
    await office.sim.phone("1001").dial("1002")
    await eventually(lambda: talking(office, "1001", "1002"), what="1002 answered itself")
    status, body = await office.pickup("1003", "1002")
    assert status == 409 and "already answered" in body["error"]["message"], body
    assert talking(office, "1001", "1002")


async def test_a_token_without_an_extension_cannot_pick_up(office: Office) -> None:
    _row, secret = await token_store.create_token(office.store.pool, role="admin", name="no phone")
    resp = await office.client.post("/api/v1/extensions/1002/pickup", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "no_extension"


async def test_star8_takes_a_queue_call_ringing_a_member_and_the_queue_connects_the_picker(office: Office) -> None:
    call_id = await ringing_at(office, "1002", CUSTOMER, did="qsupport")  # our app rings 1002 (POST /channels)
    await office.sim.phone("1003").dial("*81002")  # 1003 is no member of the queue, but in 1002's pickup group
    await eventually(lambda: talking(office, "1003", CUSTOMER), what="the customer talks with 1003")
    await eventually(lambda: not office.sim.phone("1002").channels(), what="the member stops ringing")
    await office.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not office.sim.channels(), what="1003 hung up with the customer")

    async def logged_whole() -> bool:  # the queue's attempt line lands after the hang-up, by a moment under load
        kinds = [e["kind"] for e in await office.timeline(call_id)]
        return "hangup" in kinds and "queue_attempt" in kinds

    await eventually(logged_whole, what="the call's end and the member's attempt on the timeline")
    row = await office.row(call_id)
    assert (row["status"], row["queue"], row["extension"], row["tags"]["answered_by"]) == (
        "answered", "support", "1003", "1003"), row
    timeline = await office.timeline(call_id)
    kinds = [e["kind"] for e in timeline]
    assert kinds.index("queue_join") < kinds.index("picked_up") < kinds.index("queue_answer") < kinds.index("hangup")
    attempts = [(e["data"]["extension"], e["data"]["result"]) for e in timeline if e["kind"] == "queue_attempt"]
    assert attempts == [("1002", "cancelled")]


async def test_the_far_end_of_a_click_to_call_ringing_a_colleague_is_not_offered_and_refused_409(
        office: Office) -> None:
    office.sim.phone("1001").answer_after(0)
    office.sim.phone("1002").never_answer()
    resp = await office.client.post("/api/v1/calls", json={"extension": "1001", "number": "1002"},
                                    headers={"Authorization": f"Bearer {office.tokens['1001']}"})
    assert resp.status == 202, await resp.text()
    await eventually(lambda: bool(office.sim.phone("1002").channels()), what="1002 rings for 1001's click-to-call")
    assert await office.pickable("1003") == []
    status, body = await office.pickup("1003", "1002")
    assert status == 409 and body["error"]["code"] == "pickup_unavailable", body
    assert office.sim.phone("1002").channels() and not office.sim.phone("1003").channels()
