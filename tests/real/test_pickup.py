"""Call pickup on a real Asterisk 22 with SIP phones (issue 17): 1001 calls 1002 through the site's
``Dial(PJSIP/1002,30)``; 1002 rings (it does not answer); 1003 dials ``*81002`` (our rendered feature code).
The caller is moved into our app with an AMI Redirect, 1002's ringing leg is cancelled, and 1001 and 1003 hear
each other's tones. The row says who answered.
"""

from __future__ import annotations

from tests.real.asterisk import RealAsterisk
from tests.real.phones import Phones
from tests.real.test_flows import MakeService, detail, hears, nothing_left, phase, the_call, words


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
