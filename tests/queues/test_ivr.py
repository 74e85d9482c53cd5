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


async def test_an_ivr_caller_whose_bridging_to_the_extension_fails_is_not_left_in_silence(world: World) -> None:
    """1003 answers, but Asterisk refuses to make the call's bridge (any id): the caller was left in our app,
    hearing nothing, until he hung up. Now the failure is on the call's timeline and the caller is hung up."""
    import re

    from asterisk_sim.faults import AriFault

    world.sim.phone("1003").answer_after(0.2)
    channel = await world.call_in("82")
    refused = world.sim.inject_ari_fault(AriFault("POST", re.escape(f"/bridges/cc-{channel}") + "(-[0-9a-f]+)?",
                                                  status=500, message="Unable to create bridge", times=10))
    await eventually(lambda: world.leftovers() == ([], []), timeout=10, what="caller and 1003 hung up")
    assert refused.hits == 2  # the call's id, then a fresh one
    kinds = {e["kind"]: e["data"] for e in await world.timeline(world.call_id(channel))}
    assert kinds.get("route_connect_failed") == {"extension": "1003"}, kinds
