"""Call flows on a real Asterisk 22 with SIP phones: queues, hold, transfers, recording, an Asterisk restart.

Customers (550010xx, context ``from-trunk``) reach a queue by dialling ``q<name>`` (the site's route into our
rendered ``callcenter-queue``); agents are phones 1001–1012. Every party plays its own tone and records what it
hears; each phase is judged per 100 ms frame (``tests/real/audio.py``: heard in ≥ 80 % of the frames, absent in
< 5 %). Music on hold is judged by level: most frames above −50 dBFS while no party's tone is heard. Rows are read
back from our API (the store).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.real.asterisk import RealAsterisk
from tests.real.audio import FRAME, RATE, SETTLE_SECONDS, Recording, describe
from tests.real.phones import Phone, Phones
from tests.real.service import RunningService
from tests.waiting import eventually

MakeService = Callable[..., Awaitable[RunningService]]
PHASE = 4.5          # seconds of audio per phase (the first SETTLE_SECONDS are skipped)
MUSIC_DBFS = -50.0   # a frame "has sound" above this (the noise floor is about -60 dBFS)
CUSTOMER = "55501001"
# Debian's music on hold has narrow peaks near 600 Hz in ~15 % of its frames: where a test listens for a party
# *through* the music, that party plays a tone the music lacks (0 % of frames at 1000, 2600 Hz)
MUSIC_FREE_HZ = 1000


def queue(name: str = "support", **settings: Any) -> dict[str, Any]:
    return {"queue": [{"name": name, "announce_position": False, **settings}]}


async def phase(*phones: Phone, seconds: float = PHASE) -> dict[Phone, tuple[float, float]]:
    """Let each phone record ``seconds`` more of the call; the (start, end) offsets of that stretch."""
    starts = {p: p.mark() for p in phones}
    await asyncio.gather(*(p.recorded_until(starts[p] + seconds) for p in phones))
    return {p: (starts[p], p.mark()) for p in phones}


def hears(listener: Phone, span: tuple[float, float], *parties: Phone,
          settle: float = SETTLE_SECONDS) -> dict[str, str]:
    """Which parties' tones ``listener`` heard in ``span``: {"1002": "heard", ...}."""
    verdicts = listener.recording.verdicts({p.ext: p.tone_hz for p in parties}, *span, settle=settle)
    return {name: v.word for name, v in verdicts.items()} | {"_": describe(verdicts)}


def words(result: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in result.items() if k != "_"}


def music_share(listener: Phone, span: tuple[float, float]) -> float:
    """Share of 100 ms frames with sound above MUSIC_DBFS (after the settle time)."""
    data = listener.recording.samples()
    first, last = int((span[0] + SETTLE_SECONDS) * RATE), min(int(span[1] * RATE), len(data))
    frames = [data[i:i + FRAME] for i in range(first, last - FRAME + 1, FRAME)]
    loud = [f for f in frames if 20 * math.log10(math.sqrt(sum(x * x for x in f) / len(f)) / 32768 + 1e-12)
            > MUSIC_DBFS]
    return len(loud) / len(frames) if frames else 0.0


async def calls(service: RunningService, **params: str) -> list[dict[str, Any]]:
    status, body = await service.request("GET", "/api/v1/calls", params={"limit": "50", **params})
    assert status == 200, body
    return list(body["items"])


async def the_call(service: RunningService, **match: Any) -> dict[str, Any]:
    """The one call whose row has every ``match`` value (``ended=True``: its row is closed)."""
    ended = match.pop("ended", None)
    found: list[dict[str, Any]] = []

    async def there() -> bool:
        found[:] = [c for c in await calls(service) if all(c.get(k) == v for k, v in match.items())
                    and (ended is None or bool(c.get("ended_at")) == ended)]
        return len(found) == 1

    try:
        await eventually(there, timeout=15, what=f"one call with {match} (ended={ended})")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the calls: {await calls(service)}") from None
    return found[0]


async def detail(service: RunningService, call_id: str) -> dict[str, Any]:
    status, body = await service.request("GET", f"/api/v1/calls/{call_id}")
    assert status == 200, body
    return dict(body)


async def queued_call(phones: Phones, service: RunningService, agent: Phone, customer: Phone,
                      name: str = "support") -> dict[str, Any]:
    """``customer`` calls queue ``name`` and ``agent`` (auto-answer) takes it; the call's live row."""
    since = agent.mark_line()
    await customer.call(f"q{name}")
    await agent.wait_state("CONFIRMED", since=since, timeout=20)
    row = await the_call(service, queue=name, extension=agent.ext, ended=False)

    async def connected() -> bool:   # the queue bridged the pair: from now on the call is ours to control
        return any(e["kind"] == "queue_answer" for e in (await detail(service, row["id"]))["events"])

    await eventually(connected, timeout=10, what="the queue connected caller and agent")
    return row


async def nothing_left(asterisk: RealAsterisk) -> None:
    """No channel and none of our bridges left in Asterisk."""
    async def clean() -> bool:
        _, channels = await asterisk.ari("GET", "/channels")
        _, bridges = await asterisk.ari("GET", "/bridges")
        return not channels and not [b for b in bridges if str(b.get("name", "")).startswith(("cc", "ccq"))]

    await eventually(clean, timeout=10, what="no channel or bridge of ours left in Asterisk")


# ------------------------------------------------------------------------------------------------------ queues

async def test_ringall_rings_every_agent_and_the_first_to_answer_talks_both_ways(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(strategy="ringall", members=["1001", "1002"]))
    slow = await phones.start("1001", auto_answer=False)
    agent = await phones.start("1002")
    customer = await phones.start(CUSTOMER)
    slow_since = slow.mark_line()
    row = await queued_call(phones, service, agent, customer)
    await slow.wait_line(r"Incoming call", since=slow_since, timeout=5, what="1001 rang too")

    spans = await phase(agent, customer)
    assert words(hears(customer, spans[customer], agent, slow)) == {"1002": "heard", "1001": "absent"}
    assert words(hears(agent, spans[agent], customer)) == {CUSTOMER: "heard"}

    await customer.hangup()
    done = await the_call(service, id=row["id"], ended=True)
    assert (done["status"], done["queue"], done["extension"]) == ("answered", "support", "1002"), \
        (done, await detail(service, row["id"]))
    assert done["billsec"] >= 3, done
    attempts = {a["extension"]: a["result"] for a in (await detail(service, row["id"]))["queue_attempts"]}
    assert attempts == {"1002": "answered", "1001": "cancelled"}, attempts
    await nothing_left(asterisk)


async def test_round_robin_hands_successive_callers_to_the_next_agent(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(strategy="round-robin", members=["1003", "1004"]))
    first, second = await phones.start("1003"), await phones.start("1004")
    customer = await phones.start(CUSTOMER)
    taken_by = []
    for agent, other in ((first, second), (second, first)):
        row = await queued_call(phones, service, agent, customer)
        spans = await phase(agent, customer)
        assert words(hears(customer, spans[customer], agent, other)) == {agent.ext: "heard", other.ext: "absent"}
        assert words(hears(agent, spans[agent], customer)) == {CUSTOMER: "heard"}
        hung_up = customer.mark_line()
        await customer.hangup()
        await customer.wait_state("DISCONNECTED", since=hung_up)
        taken_by.append((await the_call(service, id=row["id"], ended=True))["extension"])
    assert taken_by == ["1003", "1004"]
    await nothing_left(asterisk)


async def test_a_caller_hanging_up_while_agents_ring_is_abandoned_and_nothing_is_left(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(strategy="ringall", members=["1005"]))
    agent = await phones.start("1005", auto_answer=False)
    customer = await phones.start(CUSTOMER)
    since = agent.mark_line()
    await customer.call("qsupport")
    await agent.wait_line(r"Incoming call", since=since, timeout=10, what="the agent rings")
    row = await the_call(service, queue="support", ended=False)
    await customer.hangup()

    # the tracker closes the row as missed; the queue then says abandoned (ari_app/queues/README.md, 6.)
    done = await the_call(service, id=row["id"], ended=True, status="abandoned")
    assert (done["queue"], done["answered_at"]) == ("support", None), done
    attempts = {a["extension"]: a["result"] for a in (await detail(service, row["id"]))["queue_attempts"]}
    assert attempts == {"1005": "cancelled"}, attempts
    await agent.wait_state("DISCONNECTED", since=since)
    await nothing_left(asterisk)


async def test_an_agent_free_while_the_caller_hears_the_position_announcement_is_rung_and_connected(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    """Asterisk runs a channel's ARI bridge moves only after the playback on it ends: the agent waited in silence
    for the rest of the announcement, and for ever when the next one was due before the last had ended (every 3 s
    here, the announcement lasts 5 s; bench_real_queue lost callers so)."""
    service = await make_service({"queue": [{"name": "support", "strategy": "ringall", "members": ["1008"],
                                             "announce_position": True, "announce_every": 3}]})
    agent = await phones.start("1008")
    customer = await phones.start(CUSTOMER)
    status, body = await service.request("POST", "/api/v1/queues/support/members/1008/pause", json={"paused": True})
    assert status == 200, body
    log_start = asterisk.log_path.stat().st_size if asterisk.log_path.exists() else 0
    await customer.call("qsupport")

    async def announcing() -> bool:  # the first announcement (after 1 s, 5 s long) is playing
        with asterisk.log_path.open("rb") as log:
            log.seek(log_start)
            return b"Playing 'queue-youarenext" in log.read()

    await eventually(announcing, timeout=10, what="the position announcement playing to the caller")
    rung = agent.mark_line()
    status, body = await service.request("POST", "/api/v1/queues/support/members/1008/pause",
                                         json={"paused": False})
    assert status == 200, body
    await agent.wait_state("CONFIRMED", since=rung)
    row = await the_call(service, queue="support", extension="1008", ended=False)

    async def connected() -> bool:
        return any(e["kind"] == "queue_answer" and e["data"].get("connected")
                   for e in (await detail(service, row["id"]))["events"])

    await eventually(connected, timeout=10, what="the queue connected caller and agent")
    spans = await phase(agent, customer)
    assert words(hears(agent, spans[agent], customer)) == {CUSTOMER: "heard"}
    await customer.hangup()
    await the_call(service, id=row["id"], ended=True, status="answered")
    await nothing_left(asterisk)


async def test_after_max_wait_the_caller_overflows_to_an_extension_and_talks_to_it(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(strategy="ringall", members=["1006"], max_wait=3, ring_timeout=2,
                                       overflow="extension:1007"))
    await phones.start("1006", auto_answer=False)
    target = await phones.start("1007")
    customer = await phones.start(CUSTOMER)
    since = target.mark_line()
    await customer.call("qsupport")
    await target.wait_state("CONFIRMED", since=since, timeout=20)

    spans = await phase(target, customer)
    assert words(hears(customer, spans[customer], target)) == {"1007": "heard"}
    assert words(hears(target, spans[target], customer)) == {CUSTOMER: "heard"}
    await customer.hangup()
    row = await the_call(service, queue="support", ended=True, status="answered")
    tagged: list[dict[str, Any]] = []

    async def overflow_tagged() -> bool:
        tagged[:] = [c for c in await calls(service) if c["id"] == row["id"]]
        return tagged[0]["tags"].get("queue_overflow") == "extension:1007"

    await eventually(overflow_tagged, timeout=10, what="the queue_overflow tag on the call")
    events = [e["kind"] for e in (await detail(service, row["id"]))["events"]]
    assert "queue_leave" in events, events
    await nothing_left(asterisk)


# ------------------------------------------------------------------------------------------------ call control

async def test_hold_plays_music_to_the_customer_who_no_longer_hears_the_agent_and_resume_restores_both(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(members=["1008"]))
    agent = await phones.start("1008", tone_hz=MUSIC_FREE_HZ)
    customer = await phones.start(CUSTOMER)
    row = await queued_call(phones, service, agent, customer)
    await phase(agent, customer, seconds=1.0)

    assert (await service.request("POST", f"/api/v1/calls/{row['id']}/hold"))[0] == 202
    held = await phase(agent, customer)
    on_hold = hears(customer, held[customer], agent)
    assert words(on_hold) == {"1008": "absent"}, on_hold["_"]
    assert music_share(customer, held[customer]) >= 0.8, "the customer hears no music on hold"
    assert words(hears(agent, held[agent], customer)) == {CUSTOMER: "absent"}

    assert (await service.request("POST", f"/api/v1/calls/{row['id']}/unhold"))[0] == 202
    resumed = await phase(agent, customer)
    assert words(hears(customer, resumed[customer], agent)) == {"1008": "heard"}
    assert words(hears(agent, resumed[agent], customer)) == {CUSTOMER: "heard"}

    await agent.hangup()
    events = [e["kind"] for e in (await detail(service, (await the_call(service, id=row["id"], ended=True))["id"]))
              ["events"]]
    assert events.index("hold") < events.index("unhold"), events
    await nothing_left(asterisk)


async def test_recording_on_demand_writes_a_file_holding_both_parties(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(members=["1009"]))
    agent = await phones.start("1009")
    customer = await phones.start(CUSTOMER)
    row = await queued_call(phones, service, agent, customer)

    status, body = await service.request("POST", f"/api/v1/calls/{row['id']}/recording")
    assert status == 202, body
    await phase(agent, customer, seconds=PHASE)
    assert (await service.request("DELETE", f"/api/v1/calls/{row['id']}/recording"))[0] == 202
    await customer.hangup()

    done = await the_call(service, id=row["id"], ended=True)
    assert done["has_recording"], done
    # MixMonitor's layout under Asterisk's recording folder: YYYY/MM/DD/<pbx>-<linkedid>-<HHMMSS>.wav
    files: list[Path] = []

    def written() -> bool:
        files[:] = [f for f in asterisk.recordings.rglob(body["recording"]) if f.stat().st_size > 44 + RATE * 2 * 3]
        return len(files) == 1

    await eventually(written, timeout=5, what=f"the recording {body['recording']} under {asterisk.recordings}")
    assert files[0].relative_to(asterisk.recordings).parts[0] == done["started_at"][:4], files[0]
    heard = Recording(files[0]).verdicts({"agent": agent.tone_hz, "customer": customer.tone_hz}, 0.0, PHASE, settle=0.5)
    assert {k: v.word for k, v in heard.items()} == {"agent": "heard", "customer": "heard"}, describe(heard)
    await nothing_left(asterisk)


async def test_blind_transfer_hands_the_customer_to_another_extension(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(members=["1010"]))
    agent = await phones.start("1010")
    target = await phones.start("1011")
    customer = await phones.start(CUSTOMER)
    row = await queued_call(phones, service, agent, customer)

    agent_gone, target_since = agent.mark_line(), target.mark_line()
    status, body = await service.request("POST", f"/api/v1/calls/{row['id']}/transfer", json={"target": "1011"})
    assert status == 202, body
    await target.wait_state("CONFIRMED", since=target_since, timeout=15)
    await agent.wait_state("DISCONNECTED", since=agent_gone, timeout=10)
    spans = await phase(target, customer)
    assert words(hears(customer, spans[customer], target, agent)) == {"1011": "heard", "1010": "absent"}
    assert words(hears(target, spans[target], customer)) == {CUSTOMER: "heard"}

    await customer.hangup()
    events = (await detail(service, row["id"]))["events"]
    assert any(e["kind"] == "transfer" and e["data"].get("target") == "1011" for e in events), events
    await nothing_left(asterisk)


async def test_attended_transfer_consults_the_target_while_the_customer_hears_music_then_completes(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(members=["1012"]))
    agent = await phones.start("1012", tone_hz=MUSIC_FREE_HZ)
    target = await phones.start("1001", tone_hz=2600)
    customer = await phones.start(CUSTOMER)
    row = await queued_call(phones, service, agent, customer)

    target_since = target.mark_line()
    status, body = await service.request("POST", f"/api/v1/calls/{row['id']}/transfer",
                                         json={"target": "1001", "attended": True})
    assert status == 202, body
    await target.wait_state("CONFIRMED", since=target_since, timeout=15)
    consult = await phase(agent, target, customer)
    assert words(hears(agent, consult[agent], target, customer)) == {"1001": "heard", CUSTOMER: "absent"}
    assert words(hears(target, consult[target], agent, customer)) == {"1012": "heard", CUSTOMER: "absent"}
    assert words(hears(customer, consult[customer], agent, target)) == {"1012": "absent", "1001": "absent"}
    assert music_share(customer, consult[customer]) >= 0.8, "the customer hears no music while the agent consults"

    agent_gone = agent.mark_line()
    assert (await service.request("POST", f"/api/v1/calls/{row['id']}/transfer/complete"))[0] == 202
    await agent.wait_state("DISCONNECTED", since=agent_gone, timeout=10)
    after = await phase(target, customer)
    assert words(hears(customer, after[customer], target)) == {"1001": "heard"}
    assert words(hears(target, after[target], customer)) == {CUSTOMER: "heard"}

    await customer.hangup()
    done = await the_call(service, id=row["id"], ended=True)
    kinds = [e["kind"] for e in (await detail(service, done["id"]))["events"]]
    assert kinds.index("transfer_consult") < kinds.index("transfer"), kinds
    await nothing_left(asterisk)


# ---------------------------------------------------------------------------------------------------- restart

async def test_after_asterisk_restarts_mid_call_the_call_is_closed_and_the_next_caller_is_served(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(members=["1002"]))
    agent = await phones.start("1002")
    customer = await phones.start(CUSTOMER)
    row = await queued_call(phones, service, agent, customer)
    talk = await phase(agent, customer, seconds=3.0)
    assert words(hears(customer, talk[customer], agent, settle=0.5)) == {"1002": "heard"}

    agent_dropped, customer_dropped = agent.mark_line(), customer.mark_line()
    await asterisk.restart()
    await agent.wait_state("DISCONNECTED", since=agent_dropped)
    await customer.wait_state("DISCONNECTED", since=customer_dropped)
    done = await the_call(service, id=row["id"], ended=True)
    assert (done["status"], done["extension"]) == ("answered", "1002"), done
    assert done["billsec"] >= 3 and done["hangup_cause"], done

    await service.wait_connected(60)   # ARI and AMI back, our app registered again on the new Asterisk
    await agent.wait_online()
    await customer.wait_online()
    again = await queued_call(phones, service, agent, customer)
    assert again["id"] != row["id"]
    spans = await phase(agent, customer)
    assert words(hears(customer, spans[customer], agent)) == {"1002": "heard"}
    assert words(hears(agent, spans[agent], customer)) == {CUSTOMER: "heard"}
    await customer.hangup()
    assert (await the_call(service, id=again["id"], ended=True))["status"] == "answered"
    await nothing_left(asterisk)


async def test_a_call_orphaned_by_an_asterisk_crash_is_closed_with_a_cause_that_says_so(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service(queue(members=["1003"]))
    agent = await phones.start("1003")
    customer = await phones.start(CUSTOMER)
    row = await queued_call(phones, service, agent, customer)
    await phase(agent, customer, seconds=3.0)

    asterisk.kill()   # no hang-up event, no hangup handler: nothing tells the service how the call ended
    await asyncio.gather(agent.hangup_all(), customer.hangup_all())
    await asterisk.start()
    await service.wait_connected(60)
    done = await the_call(service, id=row["id"], ended=True)
    assert (done["status"], done["hangup_cause"]) == ("answered", "Asterisk restarted during the call"), done
    assert done["billsec"] >= 3, done
    await nothing_left(asterisk)
