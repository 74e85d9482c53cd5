"""A test picks ARI requests the same way for a fault (``AriFault``) and a held reply (``hold_replies``): the method
in any case, the path after ``/ari`` percent-decoded (``asterisk_sim.faults.Pick``)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from yarl import URL

from asterisk_sim.faults import AriFault
from asterisk_sim.simulator import Simulator
from tests.waiting import eventually

RECORDING = "2026/12/06/main-x"  # a recording's name has slashes: on the wire they are %2F


async def test_a_fault_and_a_held_reply_pick_one_request_by_its_decoded_path(lab_sim: Simulator) -> None:
    decoded = re.escape(f"/recordings/live/{RECORDING}/stop")
    fault = lab_sim.inject_ari_fault(AriFault("post", decoded, status=503, message="Asterisk is busy"))
    release = lab_sim.hold_replies("Post", decoded)
    url = URL(f"{lab_sim.ari_url}/recordings/live/{RECORDING.replace('/', '%2F')}/stop", encoded=True)
    auth = {"Authorization": aiohttp.encode_basic_auth("lab", "lab")}  # type: ignore[attr-defined]
    async with aiohttp.ClientSession(headers=auth) as http:
        reply = asyncio.create_task(http.post(url))
        try:
            await eventually(lambda: fault.hits == 1, what="the fault picked the request")
            assert not reply.done(), "the fault's reply was not held"
        finally:
            release.set()
        answered = await reply
        assert answered.status == 503 and "Asterisk is busy" in await answered.text()
