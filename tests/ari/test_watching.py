"""Calls that never enter our app are still seen: screen pop, missed calls, internal and outbound calls."""

from __future__ import annotations

from callcenter.domain import call_id_for

from .conftest import World, eventually


def states(world: World) -> dict[str, str]:
    return {e["extension"]: e["state"] for e in world.calls.snapshot_now()["extensions"]}


async def test_inbound_call_pops_the_screen_then_logs_answered_inbound(world: World) -> None:
    sub = world.bus.subscribe("call.", "extension.", "trunk.")
    world.sim.phone("1001").answer_after(0.1)
    trunk_channel = await world.sim.inbound_call(caller="0521234567", did="5550100", caller_name="Dana")
    ringing = (await sub.get(timeout=3))
    while ringing.topic != "call.ringing":
        ringing = await sub.get(timeout=3)
    assert ringing.data["extension"] == "1001" and ringing.data["caller_raw"] == "0521234567"
    assert ringing.data["caller"] == "+972521234567" and ringing.data["direction"] == "inbound"
    assert ringing.data["callee_raw"] == "5550100"
    assert ringing.data["call_id"] == str(call_id_for("main", trunk_channel))
    await eventually(lambda: states(world).get("1001") == "in_call", what="1001 in call")
    assert [(t["name"], t["calls_in_use"]) for t in world.calls.snapshot_now()["trunks"]] == [("trunk", 1)]
    busy = next(e for e in world.calls.snapshot_now()["extensions"] if e["number"] == "1001")
    assert busy["registration"] == "registered" and busy["call"]["peer"] == "+972521234567"
    await world.sim.customer("0521234567").hangup()
    await eventually(lambda: states(world).get("1001") == "idle", what="1001 idle again")
    call_id = call_id_for("main", trunk_channel)
    row = await world.row(call_id)
    assert row is not None
    assert (row["direction"], row["status"], row["extension"], row["trunk"]) == ("inbound", "answered", "1001", "trunk")
    assert row["caller"] == "+972521234567" and row["callee_raw"] == "5550100" and row["ended_at"] is not None
    kinds = await world.timeline(call_id)
    assert kinds[:2] == ["ring", "answer"] and kinds[-1] == "hangup"
    topics = [ringing.topic]
    while not sub.queue.empty():
        topics.append(sub.queue.get_nowait().topic)
    assert {"call.answered", "call.ended", "extension.state", "trunk.usage"} <= set(topics)


async def test_unanswered_inbound_call_is_missed(world: World) -> None:
    sub = world.bus.subscribe("call.missed")
    world.sim.phone("1001").never_answer()
    trunk_channel = await world.sim.inbound_call(caller="0521111111", did="5550100")
    await eventually(lambda: states(world).get("1001") == "ringing", what="1001 ringing")
    await world.sim.customer("0521111111").hangup()
    missed = await sub.get(timeout=3)
    assert missed.data["call_id"] == str(call_id_for("main", trunk_channel))
    row = await world.row(call_id_for("main", trunk_channel))
    assert row is not None and row["status"] == "missed" and row["direction"] == "inbound"


async def test_extension_to_extension_call_is_internal(world: World) -> None:
    world.sim.phone("1002").answer_after(0.05)
    channel = await world.sim.phone("1001").dial("1002")
    await eventually(lambda: states(world).get("1002") == "in_call", what="1002 answered")
    await world.sim.phone("1001").hangup()
    await eventually(lambda: states(world).get("1001") == "idle", what="over")
    row = await world.row(call_id_for("main", channel))
    assert row is not None
    assert (row["direction"], row["status"], row["extension"], row["callee_raw"]) == ("internal", "answered", "1001",
                                                                                      "1002")


async def test_extension_dialling_out_through_the_trunk_is_outbound(world: World) -> None:
    world.sim.customer("0501234567").answer_after(0.05)
    channel = await world.sim.phone("1003").dial("90501234567")
    assert states(world).get("1003") in ("idle", "in_call")  # dialling out is busy, never "ringing"
    await eventually(lambda: [c["status"] for c in world.calls.snapshot_now()["calls"]] == ["in_progress"],
                     what="1003 connected")
    assert states(world)["1003"] == "in_call"
    await world.sim.phone("1003").hangup()
    await eventually(lambda: states(world).get("1003") == "idle", what="over")
    row = await world.row(call_id_for("main", channel))
    assert row is not None
    assert (row["direction"], row["status"], row["extension"], row["trunk"]) == ("outbound", "answered", "1003",
                                                                                 "trunk")
    assert row["callee"] == "+972501234567"


async def test_registration_changes_show_on_the_live_view(world: World) -> None:
    assert states(world) == {"1001": "idle", "1002": "idle", "1003": "idle", "1004": "unregistered"}
    await world.sim.phone("1004").register()
    await eventually(lambda: states(world).get("1004") == "idle", what="1004 registered")
    await world.sim.phone("1001").unregister()
    await eventually(lambda: states(world).get("1001") == "unregistered", what="1001 unregistered")


async def test_a_phone_putting_its_call_on_hold_shows_on_hold_and_in_the_timeline(world: World) -> None:
    world.sim.phone("1001").answer_after(0.02)
    trunk_channel = await world.sim.inbound_call(caller="0521234567", did="5550100")
    await eventually(lambda: [c["status"] for c in world.calls.snapshot_now()["calls"]] == ["in_progress"],
                     what="answered")
    await world.sim.phone("1001").hold()
    await eventually(lambda: states(world).get("1001") == "on_hold", what="1001 on hold")
    await world.sim.phone("1001").unhold()
    await eventually(lambda: states(world).get("1001") == "in_call", what="1001 back in call")
    await world.sim.customer("0521234567").hangup()
    await eventually(lambda: states(world).get("1001") == "idle", what="over")
    kinds = await world.timeline(call_id_for("main", trunk_channel))
    assert kinds == ["ring", "answer", "hold", "unhold", "hangup"]
