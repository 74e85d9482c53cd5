"""The IVR hand-off: Stasis(app,ivr,<choice>) routed by the [ivr] table."""

from __future__ import annotations

from tests.queues.conftest import World, eventually

CALLER = "+972541112233"


async def test_ivr_choice_to_a_queue_reaches_a_queue_agent(world: World) -> None:
    world.sim.phone("1001").answer_after(0.2)
    world.sim.phone("1002").never_answer()
    channel = await world.call_in("81")
    await eventually(lambda: "1001" in world.hears(CALLER), what="caller reaches 1001 through the support queue")
    row = await world.row(world.call_id(channel))
    assert row is not None and row["queue"] == "support"


async def test_ivr_choice_to_an_extension_dials_and_bridges_it(world: World) -> None:
    world.sim.phone("1003").answer_after(0.2)
    channel = await world.call_in("82")
    await eventually(lambda: world.hears(CALLER) == {"1003"} and world.hears("1003") == {CALLER},
                     what="caller and 1003 hear each other")
    await world.sim.phone("1003").hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="caller hung up with the extension")
    row = await world.row(world.call_id(channel))
    assert row is not None and row["extension"] == "1003" and row["answered_at"] is not None


async def test_ivr_choice_to_a_number_dials_out_with_the_outside_line_prefix(world: World) -> None:
    world.sim.customer("0501234567").answer_after(0.2)
    channel = await world.call_in("83")
    await eventually(lambda: "0501234567" in world.hears(CALLER), what="caller talks to the outside number")
    kinds = {e["kind"]: e["data"] for e in await world.timeline(world.call_id(channel))}
    assert kinds["route_dial"]["endpoint"] == "Local/90501234567@from-internal"
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="all cleared")


async def test_an_unknown_ivr_choice_is_told_invalid_and_hung_up(world: World) -> None:
    channel = await world.call_in("89")

    def told_invalid() -> bool:
        return any(e.get("type") == "PlaybackStarted" and e["playback"]["target_uri"] == f"channel:{channel}"
                   and "pbx-invalid" in e["playback"]["media_uri"] for e in world.events)

    await eventually(told_invalid, what="invalid-option prompt on the caller's channel")
    await eventually(lambda: world.leftovers() == ([], []), what="caller hung up after the prompt")
    kinds = {e["kind"]: e["data"] for e in await world.timeline(world.call_id(channel))}
    assert kinds["ivr"] == {"choice": "9", "data": "", "target": ""}
