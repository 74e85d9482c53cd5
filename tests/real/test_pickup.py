"""Call pickup on a real Asterisk 22 with SIP phones (issue 17), both ways in and both kinds of call:

* ``*8`` and a ``Dial()`` call: 1001 calls 1002 through the site's ``Dial(PJSIP/1002,30)``; 1002 rings (it does
  not answer); 1003 dials ``*81002`` (our rendered feature code). The caller is moved into our app with an AMI
  Redirect, 1002's ringing leg is cancelled, and 1001 and 1003 hear each other's tones.
* the API and a queue call our app rings: the queue rings member 1004; 1005 asks ``POST
  /api/v1/extensions/1004/pickup``, its phone rings and answers, the queue connects it with the customer.

The rows say who answered.
"""

from __future__ import annotations

from tests.real.asterisk import RealAsterisk
from tests.real.phones import Phones
from tests.real.test_flows import CUSTOMER, MakeService, detail, hears, nothing_left, phase, the_call, words


async def test_a_phone_picks_up_a_colleagues_ringing_call_with_star8_and_they_talk(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    service = await make_service({"pickup": {"group": [{"name": "sales", "members": ["1001", "1002", "1003"]}]}})
    caller = await phones.start("1001")
    ringing = await phones.start("1002", auto_answer=False)
    picker = await phones.start("1003")

    rang = ringing.mark_line()
    await caller.call("1002")
    await ringing.wait_incoming(since=rang)
    row = await the_call(service, callee="1002", ended=False)

    since = picker.mark_line()
    await picker.call("*81002")
    await picker.wait_state("CONFIRMED", since=since, timeout=10)
    await ringing.wait_state("DISCONNECTED", since=rang, timeout=10)  # its ringing leg was cancelled
    await caller.wait_state("CONFIRMED", timeout=10)  # the caller is answered by the pickup

    spans = await phase(caller, picker)
    assert words(hears(caller, spans[caller], picker, ringing)) == {"1003": "heard", "1002": "absent"}
    assert words(hears(picker, spans[picker], caller)) == {"1001": "heard"}

    await caller.hangup()
    done = await the_call(service, id=row["id"], ended=True)
    assert (done["status"], done["extension"], done["tags"]["answered_by"], done["tags"]["picked_up_from"]) == (
        "answered", "1003", "1003", "1002"), done
    events = [(e["kind"], e["data"]) for e in (await detail(service, row["id"]))["events"]]
    assert [d for k, d in events if k == "picked_up"] == [
        {"by": "1003", "extension": "1002", "group": "sales", "via": "feature_code"}], events
    await nothing_left(asterisk)


async def test_the_api_rings_my_phone_and_answering_takes_a_customers_queue_call(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    """The API way in, and a call our app rings: a customer waits in queue ``support``, whose only member 1004
    rings; 1005 (same pickup group, no member) asks the API; its phone rings, auto-answers, takes the call."""
    service = await make_service({"pickup": {"group": [{"name": "desk", "members": ["1004", "1005"]}]},
                                  "queue": [{"name": "support", "members": ["1004"], "ring_timeout": 60,
                                             "announce_position": False}]})
    member = await phones.start("1004", auto_answer=False)
    picker = await phones.start("1005")
    customer = await phones.start(CUSTOMER)

    rang = member.mark_line()
    await customer.call("qsupport")
    await member.wait_incoming(since=rang)
    row = await the_call(service, queue="support", ended=False)

    since = picker.mark_line()
    status, body = await service.request("POST", "/api/v1/extensions/1004/pickup",
                                         token=await service.token("agent", "1005"))
    assert (status, body["call_id"]) == (202, row["id"]), body
    await picker.wait_state("CONFIRMED", since=since, timeout=10)
    await member.wait_state("DISCONNECTED", since=rang, timeout=10)

    spans = await phase(customer, picker)
    assert words(hears(customer, spans[customer], picker, member)) == {"1005": "heard", "1004": "absent"}
    assert words(hears(picker, spans[picker], customer)) == {CUSTOMER: "heard"}

    await picker.hangup()
    done = await the_call(service, id=row["id"], ended=True)
    assert (done["status"], done["queue"], done["extension"], done["tags"]["answered_by"]) == (
        "answered", "support", "1005", "1005"), done
    events = (await detail(service, row["id"]))
    assert [e["data"]["via"] for e in events["events"] if e["kind"] == "picked_up"] == ["api"], events
    assert {a["extension"]: a["result"] for a in events["queue_attempts"]} == {"1004": "cancelled"}, events
    await nothing_left(asterisk)


async def test_the_far_end_of_a_click_to_call_ringing_a_colleague_is_not_offered_and_refused_409(
        phones: Phones, make_service: MakeService, asterisk: RealAsterisk) -> None:
    """Our app dials a click-to-call's far end through ``Local/<n>@from-internal`` (whose ``Dial()`` rings 1007):
    on the real Asterisk that leg shares the click-to-call's linkedid (``originator``), so it is part of a call our
    app drives, and no flow of ours can hand it over: not in the pickup list, and a clear 409."""
    service = await make_service({"pickup": {"group": [{"name": "desk", "members": ["1007", "1008"]}]}})
    agent = await phones.start("1006")
    callee = await phones.start("1007", auto_answer=False)
    await phones.start("1008")
    rang = callee.mark_line()
    status, body = await service.request("POST", "/api/v1/calls", json={"extension": "1006", "number": "1007"},
                                         token=await service.token("agent", "1006"))
    assert status == 202, body
    call_id = body["call_id"]
    await callee.wait_incoming(since=rang)
    picker = await service.token("agent", "1008")
    status, listed = await service.request("GET", "/api/v1/pickup", token=picker)
    assert (status, listed["items"]) == (200, []), listed
    status, body = await service.request("POST", "/api/v1/extensions/1007/pickup", token=picker)
    assert status == 409 and body["error"]["code"] == "pickup_unavailable", body
    status, body = await service.request("DELETE", f"/api/v1/calls/{call_id}")  # every leg, the ringing one too
    assert status == 202, body
    await callee.wait_state("DISCONNECTED", since=rang)
    await agent.wait_state("DISCONNECTED")
    await nothing_left(asterisk)
