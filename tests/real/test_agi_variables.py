"""The tagging hook's channel variables reach a real Asterisk 22's dialplan.

The hook hands them over in one ``EXEC MSet name=value,…`` (one AGI round trip instead of one ``SET VARIABLE``
each): this checks, on the channel itself, that Asterisk's MSet set every one as we sent it.
"""

from __future__ import annotations

import asyncio
import uuid

from tests.real.asterisk import RealAsterisk
from tests.real.phones import Phones
from tests.real.scenes import inbound_call
from tests.real.service import RunningService
from tests.waiting import eventually

CUSTOMER = "55501001"


async def test_the_inbound_hook_sets_its_variables_on_the_callers_channel(
        phones: Phones, service: RunningService, asterisk: RealAsterisk) -> None:
    agent = await phones.start("1001")
    customer = await phones.start(CUSTOMER)
    await inbound_call(customer, agent)
    status, channels = await asterisk.ari("GET", "/channels")
    assert status == 200, channels
    [caller] = [c for c in channels if c["caller"]["number"] == CUSTOMER]
    values = {}
    for name in ("CC_CALL_ID", "CC_PBX", "CC_DIRECTION", "CC_CALLER", "CC_DID", "CC_DEPARTMENT"):
        status, body = await asterisk.ari("GET", f"/channels/{caller['id']}/variable", variable=name)
        assert status == 200, (name, body)
        values[name] = body["value"]
    since = (customer.mark_line(), agent.mark_line())
    await agent.hangup()
    await asyncio.gather(customer.wait_state("DISCONNECTED", since=since[0]),
                         agent.wait_state("DISCONNECTED", since=since[1]))
    assert values["CC_DIRECTION"] == "inbound" and values["CC_CALLER"].endswith(CUSTOMER)
    assert values["CC_DID"].endswith("1001") and values["CC_DEPARTMENT"] == ""
    assert values["CC_PBX"] and uuid.UUID(values["CC_CALL_ID"])
    log = asterisk.log_path.read_text(errors="replace") if asterisk.log_path.exists() else ""
    assert "Could not find application (MSet)" not in log  # set by MSet, not by the SET VARIABLE fallback

    async def logged() -> bool:
        status, body = await service.request("GET", f"/api/v1/calls/{values['CC_CALL_ID']}")
        return status == 200 and body["call"]["direction"] == "inbound"

    await eventually(logged, timeout=15, what="the call logged under the CC_CALL_ID the dialplan got")
