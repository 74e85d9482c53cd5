"""What the queue's bridging relies on (ari_app/queues/bridging.py, README "The bridge's id"), on the real
Asterisk 22: an ``addChannel`` Asterisk does not answer in time (the channel's control queue is busy) keeps the
bridge it names alive after ``DELETE``; until that command has run, ``POST /bridges/<that id>`` answers 409
"already exists" and ``addChannel`` 404 "Bridge not found" — the pattern `bench real_queue` logged 656 times for
one caller — and after it has run too, for as long as the channel lives. A fresh id is made at once and takes
the channel."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid

import aiohttp

from tests.real.asterisk import RealAsterisk
from tests.waiting import eventually

APP = "cc-bridge-id-test"


async def test_a_bridge_id_stays_taken_while_an_unanswered_add_channel_holds_it(asterisk: RealAsterisk) -> None:
    await asterisk.set_extra_dialplan("[site-extra-internal]\nexten => hold,1,Answer()\n same => n,Wait(60)\n"
                                      " same => n,Hangup()\n[site-extra-trunk]\n")
    auth = base64.b64encode(f"{asterisk.site.ari_user}:{asterisk.site.ari_password}".encode()).decode()
    ws_url = asterisk.site.ari_url.replace("http", "ws", 1) + f"/events?app={APP}"
    tag = uuid.uuid4().hex[:8]
    channel, ghost, fresh = f"ccid-{tag}", f"cc-{tag}", f"cc-{tag}-fresh"
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as http, \
            http.ws_connect(ws_url) as ws:
        started = asyncio.Event()

        async def read() -> None:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT and '"StasisStart"' in message.data \
                        and channel in message.data:
                    started.set()

        reader = asyncio.create_task(read())
        try:
            status, body = await asterisk.ari("POST", "/channels", endpoint="Local/hold@from-internal", app=APP,
                                              channelId=channel)
            assert status == 200, body
            await asyncio.wait_for(started.wait(), 10)
            # the channel's control queue is busy for as long as this tone plays (it loops until stopped)
            status, body = await asterisk.ari("POST", f"/channels/{channel}/play/{channel}-ring", media="tone:ring")
            assert status == 201, body
            assert (await asterisk.ari("POST", f"/bridges/{ghost}", type="mixing", name=ghost))[0] == 200
            add = asyncio.create_task(asterisk.ari("POST", f"/bridges/{ghost}/addChannel", channel=channel))
            done, _ = await asyncio.wait({add}, timeout=1.0)
            assert not done, "Asterisk answered the addChannel while the channel was busy"
            assert (await asterisk.ari("DELETE", f"/bridges/{ghost}"))[0] == 204

            status, body = await asterisk.ari("POST", f"/bridges/{ghost}", type="mixing", name=ghost)
            assert status == 409, (status, body)
            status, body = await asterisk.ari("POST", f"/bridges/{ghost}/addChannel", channel=channel)
            assert (status, body.get("message")) == (404, "Bridge not found"), body
            status, body = await asterisk.ari("POST", f"/bridges/{fresh}", type="mixing", name=ghost)
            assert status == 200 and body["name"] == ghost, body

            # the tone stopped, the queued command runs — and is answered 204, though its bridge is gone; the id
            # stays taken after it (for the channel's life: it freed only after the hang-up here), so a call whose
            # bridging timed out once could never be bridged under that id again. A fresh id takes the channel.
            await asterisk.ari("DELETE", f"/playbacks/{channel}-ring")
            assert (await asyncio.wait_for(add, 10))[0] == 204
            status, body = await asterisk.ari("POST", f"/bridges/{ghost}", type="mixing", name=ghost)
            assert status == 409, (status, body)
            assert (await asterisk.ari("POST", f"/bridges/{fresh}/addChannel", channel=channel))[0] == 204

            async def in_fresh() -> bool:
                status, body = await asterisk.ari("GET", f"/bridges/{fresh}")
                return status == 200 and body["channels"] == [channel]

            await eventually(in_fresh, timeout=10, what="the channel in the bridge of a fresh id")
        finally:
            for path in (f"/bridges/{ghost}", f"/bridges/{fresh}", f"/channels/{channel}"):
                with contextlib.suppress(Exception):
                    await asterisk.ari("DELETE", path)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await asterisk.reset_extra_dialplan()
