"""A legacy line in the live snapshot: ``GET /api/v1/live`` — what a reloaded page, a dashboard opened while the line
rings or a CRM fetches — shows what a caller-ID box reports now (ringing with the caller's number and the line,
answered, gone at its end), to whom may see the line's extension, with the ids the websocket's events use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from api.contract import LIVE_SCHEMAS
from tests.legacy.service import Running, SerialBox, add_people, legacy_service
from tests.live.contract import Contract
from tests.waiting import eventually

CONTRACT = Contract({"components": {"schemas": LIVE_SCHEMAS}})


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next event (not hello / heartbeat / pong)."""
    while True:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] not in ("hello", "heartbeat", "pong"):
            return data


async def events_of(running: Running, who: str, http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{running.base}/api/v1/events", headers=running.auth(who))
    hello = json.loads((await ws.receive(timeout=10)).data)
    assert hello["type"] == "hello"
    return ws


async def test_a_ringing_line_is_in_the_snapshot_with_its_caller_then_answered_then_gone(running: Running,
                                                                                       box: SerialBox) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await events_of(running, "front", http)
        box.send(b"L1C09121234567@\r\nL1R01@\r\n")
        ringer = box.ringing("1")
        ringing = await next_event(ws)
        assert ringing["type"] == "call.ringing"
        call_id = ringing["data"]["call_id"]

        live = await running.live("front")
        assert CONTRACT.errors("Live", live) == []
        assert [(c["call_id"], c["state"], c["caller"], c["caller_raw"], c["line"], c["extension"], c["source"],
                 c["pbx"]) for c in live["calls"]] == [
            (call_id, "ringing", "+989121234567", "09121234567", "1", "201", "cid", "shop")]
        assert [c["call_id"] for c in (await running.live("admin"))["calls"]] == [call_id]
        assert (await running.live("back"))["calls"] == []  # line 1 rings 201: not the back office's phone

        await ringer.stop()
        box.send(b"L1HF@\r\n")
        answered = await next_event(ws)
        assert (answered["type"], answered["data"]["call_id"], answered["data"]["extension"]) == (
            "call.answered", call_id, "201")
        [call] = (await running.live("front"))["calls"]
        assert (call["call_id"], call["state"], call["caller"]) == (call_id, "in_call", "+989121234567")
        assert call["answered_at"] == answered["data"]["answered_at"] is not None

        box.send(b"L1HND: T0012@\r\n")
        ended = await next_event(ws)
        assert (ended["type"], ended["data"]["ringing_call_id"]) == ("call.ended", call_id)
        assert (await running.live("front"))["calls"] == []
        await ws.close()


async def test_a_ring_that_stops_unanswered_leaves_the_snapshot_with_its_missed_call(running: Running,
                                                                                   box: SerialBox) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await events_of(running, "back", http)
        box.send(b"L2C02188776655@\r\nL2R01@\r\n")
        ringer = box.ringing("2")
        ringing = await next_event(ws)
        assert [c["call_id"] for c in (await running.live("back"))["calls"]] == [ringing["data"]["call_id"]]
        assert (await running.live("front"))["calls"] == []
        await ringer.stop()
        box.send(b"L2HND: T0000@\r\n")  # the box saw the line drop while it rang: the caller gave up
        missed = await next_event(ws)
        assert (missed["type"], missed["data"]["ringing_call_id"]) == ("call.missed", ringing["data"]["call_id"])
        assert (await running.live("back"))["calls"] == []
        await ws.close()


async def test_a_box_that_sends_the_number_after_the_first_ring_completes_the_same_ring(running: Running,
                                                                                     box: SerialBox) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await events_of(running, "front", http)
        box.send(b"L1R01@\r\n")
        ringer = box.ringing("1")
        first = await next_event(ws)
        assert (first["type"], first["data"]["caller"]) == ("call.ringing", "")
        box.send(b"L1C09121234567@\r\n")
        again = await next_event(ws)  # the screen pop can now show who calls
        assert (again["type"], again["data"]["call_id"], again["data"]["caller"]) == (
            "call.ringing", first["data"]["call_id"], "+989121234567")
        assert again["data"]["started_at"] == first["data"]["started_at"]
        assert [(c["call_id"], c["caller"]) for c in (await running.live("front"))["calls"]] == [
            (first["data"]["call_id"], "+989121234567")]
        await ringer.stop()
        await ws.close()


async def test_a_ring_in_progress_across_a_restart_is_not_carried_over_and_shows_again_at_the_next_ring(
        db_dsn: str, tmp_path: Path, box: SerialBox) -> None:
    """The choice: live legacy state is memory. The stopped service invents no end for a ring it did not see end
    (no missed call is stored for it); the restarted one shows no stale ring, and the line rings again on the
    page as soon as the box reports its next ring — without the caller's number, which the box sent only once."""
    async with legacy_service(db_dsn, tmp_path, box) as service:
        await add_people(service)
        async with aiohttp.ClientSession() as http:
            ws = await events_of(service, "admin", http)
            box.send(b"L1C09121234567@\r\nL1R01@\r\n")
            before = await next_event(ws)
            assert [c["call_id"] for c in (await service.live("admin"))["calls"]] == [before["data"]["call_id"]]
            await ws.close()
        tokens = service.tokens
    async with legacy_service(db_dsn, tmp_path, box) as service:
        service.tokens = tokens
        assert (await service.live("admin"))["calls"] == []
        async with aiohttp.ClientSession() as http:
            ws = await events_of(service, "front", http)
            box.send(b"L1R02@\r\n")
            ringer = box.ringing("1")
            after = await next_event(ws)
            assert after["type"] == "call.ringing" and after["data"]["call_id"] != before["data"]["call_id"]
            assert [(c["call_id"], c["line"], c["extension"], c["caller"])
                    for c in (await service.live("front"))["calls"]] == [(after["data"]["call_id"], "1", "201", "")]
            await ringer.stop()
            box.send(b"L1HF@\r\nL1HND: T0007@\r\n")
            assert (await next_event(ws))["type"] == "call.answered"
            ended = await next_event(ws)
            assert (ended["type"], ended["data"]["ringing_call_id"]) == ("call.ended", after["data"]["call_id"])
            await ws.close()
        async with service.ctx.store.pool.acquire() as conn:
            rows = await conn.fetch("SELECT status, caller_raw FROM calls WHERE pbx = 'shop'")
        assert [(r["status"], r["caller_raw"]) for r in rows] == [("answered", "")]


async def test_an_api_instance_without_the_legacy_role_shows_the_lines_of_the_instance_that_reads_them(
        db_dsn: str, tmp_path: Path, box: SerialBox) -> None:
    """``--roles legacy`` on one instance, ``--roles api`` on another, one database: the API's snapshot holds the
    other instance's live legacy calls (announced on the bus), with the ids of the events it forwards."""
    async with legacy_service(db_dsn, tmp_path, box, roles=("legacy",)), \
            legacy_service(db_dsn, tmp_path, box, roles=("api",)) as api, aiohttp.ClientSession() as http:
        await add_people(api)
        ws = await events_of(api, "front", http)
        box.send(b"L1C09121234567@\r\nL1R01@\r\n")
        ringer = box.ringing("1")
        ringing = await next_event(ws)
        call_id = ringing["data"]["call_id"]

        async def front_sees(state: str) -> bool:
            return [(c["call_id"], c["state"], c["line"], c["caller"]) for c in (await api.live("front"))["calls"]] \
                == [(call_id, state, "1", "+989121234567")]

        await eventually(lambda: front_sees("ringing"), what="the other instance's ring in the snapshot")
        assert (await api.live("back"))["calls"] == []
        await ringer.stop()
        box.send(b"L1HF@\r\n")
        assert (await next_event(ws))["type"] == "call.answered"
        await eventually(lambda: front_sees("in_call"), what="the answer in the snapshot")
        box.send(b"L1HND: T0004@\r\n")
        assert (await next_event(ws))["type"] == "call.ended"

        async def gone() -> bool:
            return (await api.live("front"))["calls"] == []

        await eventually(gone, what="the call gone from the snapshot")
        await ws.close()
