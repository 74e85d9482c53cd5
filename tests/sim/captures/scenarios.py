"""The call-flow scenarios recorded from the real Asterisk (``record.py``) and replayed on the simulator
(``tests/sim/test_replay_sip_flows.py``): the same steps drive either, through a ``Rig`` (phones and time).

* ``dial_redirect`` — AMI ``Redirect`` of the callee, then of the caller, of a ``Dial()`` call between two
  phones, into ``Stasis(lab-test,parked,<n>)``: ARI (subscribeAll) and AMI events.
* ``queue`` — what ``ari_app.queues`` does with real phones: a caller in a holding bridge with music, agents
  rung with ``POST /channels`` (busy, declined, unregistered, no answer, answered), the answered pair bridged,
  ARI hold of the agent, a bridge recording, the agent hanging up; a caller abandoning while an agent rings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

import aiohttp

APP, ARI_USER, ARI_PASSWORD = "lab-test", "lab", "lab"
AUTH = {"Authorization": aiohttp.encode_basic_auth(ARI_USER, ARI_PASSWORD)}  # type: ignore[attr-defined]


class Rig(Protocol):
    """The phones and the clock of one run (real pjsua phones, or the simulator's)."""

    async def call(self, ext: str, number: str) -> None: ...
    async def answer(self, ext: str) -> None: ...
    async def hangup(self, ext: str) -> None: ...
    async def sleep(self, seconds: float) -> None: ...


class Recorder:
    """REST, websocket and AMI traffic, written one JSON object a line with ``t`` relative to the start."""

    def __init__(self, ari_url: str, ami_port: int, out: TextIO, pump: Callable[[], None] = lambda: None) -> None:
        self.ari_url, self.ami_port, self.pump = ari_url, ami_port, pump
        self.out = out
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.ami_messages: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession | None = None
        self.ami_writer: asyncio.StreamWriter | None = None
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def t(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.write({"t": self.t(), "kind": "note", "text": text})

    async def rest(self, method: str, path: str, record: bool = True, body: Any = None,
                   **query: Any) -> tuple[int, Any]:
        assert self.http is not None
        q = {k: str(v) for k, v in query.items() if v is not None}
        sent = self.t()
        async with self.http.request(method, self.ari_url + path, params=q or None, json=body,
                                     headers=AUTH) as resp:
            raw = await resp.read()
            text = raw.decode(errors="replace")
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            if record:
                self.write({"t": self.t(), "t_sent": sent, "kind": "rest", "method": method, "path": "/ari" + path,
                            "query": q, "body": body, "status": resp.status, "response": parsed,
                            "content_type": resp.content_type if raw else None})
            return resp.status, parsed

    async def ws_open(self, conn: int, query: str) -> aiohttp.ClientWebSocketResponse:
        assert self.http is not None
        url = self.ari_url.replace("http", "ws") + f"/events?{query}&api_key={ARI_USER}:{ARI_PASSWORD}"
        ws = await self.http.ws_connect(url)
        self.write({"t": self.t(), "kind": "ws", "conn": conn, "action": "open", "url": url, "status": 101,
                    "headers": {}})

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    event = json.loads(msg.data)
                    self.events.append(event)
                    self.write({"t": self.t(), "kind": "event", "conn": conn, "event": event})

        self.tasks.append(asyncio.create_task(read()))
        return ws

    async def ws_close(self, conn: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.close()
        self.write({"t": self.t(), "kind": "ws", "conn": conn, "action": "client_close", "code": 1000})

    async def ami_open(self) -> None:
        reader, self.ami_writer = await asyncio.open_connection("127.0.0.1", self.ami_port)
        banner = await reader.readline()
        self.write({"t": self.t(), "kind": "ami_in", "text": banner.decode()})

        async def read() -> None:
            while True:
                try:
                    block = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                text = block.decode(errors="replace")
                self.ami_messages.append(text)
                self.write({"t": self.t(), "kind": "ami_in", "text": text})

        self.tasks.append(asyncio.create_task(read()))

    def ami_send(self, fields: list[tuple[str, str]]) -> None:
        assert self.ami_writer is not None
        text = "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
        self.write({"t": self.t(), "kind": "ami_out", "text": text})
        self.ami_writer.write(text.encode())

    async def until(self, what: str, check: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.05)
        raise TimeoutError(what)

    def event(self, kind: str, **match: Any) -> dict[str, Any] | None:
        for e in self.events:
            if e.get("type") != kind:
                continue
            if all(_get(e, k) == v if not callable(v) else v(_get(e, k)) for k, v in match.items()):
                return e
        return None

    async def channel(self, prefix: str) -> dict[str, Any] | None:
        _, chans = await self.rest("GET", "/channels", record=False)
        return next((c for c in chans if c["name"].startswith(prefix)), None)

    async def online(self, ext: str) -> bool:
        status, ep = await self.rest("GET", f"/endpoints/PJSIP/{ext}", record=False)
        return status == 200 and ep.get("state") == "online"


def _get(event: dict[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# --------------------------------------------------------------------------------------------------------
DIAL_REDIRECT_PLAN = """
[internal]
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _2XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
[parked]
exten => _X.,1,Stasis(lab-test,parked,${EXTEN})
 same => n,Hangup()
"""


async def dial_redirect(rec: Recorder, rig: Rig) -> None:
    rec.note("Scenario sip-dial-redirect: phones 1001 and 2001 (pjsua 2.17, auto-answer 200) on chan_pjsip. "
             "2001 dials 1001 (Dial(PJSIP/1001,30)); once bridged, AMI Redirect of the CALLEE PJSIP/1001-* to "
             "parked,42,1 (Stasis(lab-test,parked,42)); then a second call and AMI Redirect of the CALLER "
             "PJSIP/2001-* to parked,43,1. ARI websocket with subscribeAll=true; AMI with Events: on. "
             "-- captured against Asterisk 22.10.1 (built from source, chan_pjsip, bundled pjproject 2.17).")
    await rec.ami_open()
    rec.ami_send([("Action", "Login"), ("Username", ARI_USER), ("Secret", ARI_PASSWORD), ("Events", "on"),
                  ("ActionID", "1")])
    ws = await rec.ws_open(1, f"app={APP}&subscribeAll=true")
    for which, target, exten in (("callee", "PJSIP/1001-", "42"), ("caller", "PJSIP/2001-", "43")):
        rec.note(f"2001 dials 1001; then AMI Redirect of the {which}")
        await rig.call("2001", "1001")

        async def bridged() -> bool:
            _, bridges = await rec.rest("GET", "/bridges", record=False)
            return any(len(b["channels"]) == 2 for b in bridges)

        await rec.until("bridged", bridged)
        await rig.sleep(2.0)
        chan = await rec.channel(target)
        assert chan is not None
        rec.ami_send([("Action", "Redirect"), ("Channel", chan["name"]), ("Context", "parked"), ("Exten", exten),
                      ("Priority", "1"), ("ActionID", f"redirect-{which}")])
        await rec.until("StasisStart", lambda c=chan: rec.event("StasisStart", channel__id=c["id"]))
        await rig.sleep(2.0)
        rec.note(f"the redirected {which} is in Stasis; hang it up over ARI")
        await rec.rest("DELETE", f"/channels/{chan['id']}")
        await rec.until("gone", lambda c=chan: rec.event("ChannelDestroyed", channel__id=c["id"]))
        await rig.sleep(1.5)
    await rec.ws_close(1, ws)
    rec.ami_send([("Action", "Logoff"), ("ActionID", "9")])
    await rig.sleep(0.5)


async def dial_pickup(rec: Recorder, rig: Rig) -> None:
    """What ``ari_app.pickup`` does to a ``Dial()`` call that rings: the caller leaves Dial() for our app."""
    rec.note("Scenario sip-dial-pickup: phones 1001 (pjsua 2.17, no auto-answer: it rings) and 2001 on chan_pjsip. "
             "2001 dials 1001 (Dial(PJSIP/1001,30)); while 1001 rings, AMI Redirect of the CALLER PJSIP/2001-* to "
             "parked,44,1 (Stasis(lab-test,parked,44)), as a pickup does; the app answers it, then hangs it up. "
             "ARI websocket with subscribeAll=true; AMI with Events: on. "
             "-- captured against Asterisk 22.10.1 (built from source, chan_pjsip, bundled pjproject 2.17).")
    await rec.ami_open()
    rec.ami_send([("Action", "Login"), ("Username", ARI_USER), ("Secret", ARI_PASSWORD), ("Events", "on"),
                  ("ActionID", "1")])
    ws = await rec.ws_open(1, f"app={APP}&subscribeAll=true")
    rec.note("2001 dials 1001, which rings")
    await rig.call("2001", "1001")
    await rec.until("1001 rung", lambda: rec.event("Dial", peer__name=lambda n: str(n).startswith("PJSIP/1001-")))
    await rig.sleep(1.5)
    caller = await rec.channel("PJSIP/2001-")
    assert caller is not None
    rec.ami_send([("Action", "Redirect"), ("Channel", caller["name"]), ("Context", "parked"), ("Exten", "44"),
                  ("Priority", "1"), ("ActionID", "redirect-caller")])
    await rec.until("StasisStart", lambda: rec.event("StasisStart", channel__id=caller["id"]))
    await rig.sleep(1.0)
    rec.note("the caller is in Stasis and 1001 no longer rings; answer the caller, then hang it up over ARI")
    await rec.rest("POST", f"/channels/{caller['id']}/answer")
    await rig.sleep(1.0)
    await rec.rest("DELETE", f"/channels/{caller['id']}")
    await rec.until("gone", lambda: rec.event("ChannelDestroyed", channel__id=caller["id"]))
    await rig.sleep(1.5)
    await rec.ws_close(1, ws)
    rec.ami_send([("Action", "Logoff"), ("ActionID", "9")])
    await rig.sleep(0.5)


# --------------------------------------------------------------------------------------------------------
QUEUE_PLAN = """
[internal]
exten => 500,1,NoOp(queue entry)
 same => n,Stasis(lab-test,queue,support)
 same => n,Hangup()
"""


async def queue(rec: Recorder, rig: Rig) -> None:
    rec.note("Scenario sip-queue: what ari_app.queues does, with real phones (pjsua 2.17 on chan_pjsip). "
             "Caller 2001 dials 500 = Stasis(lab-test,queue,support). Agents: 1001 answers by hand (rings first), "
             "1002 auto-answers 486 Busy Here, 1003 never answers, 1004 auto-answers 603 Decline, 1005 is not "
             "registered. ARI websocket app=lab-test (no subscribeAll). "
             "-- captured against Asterisk 22.10.1 (built from source, chan_pjsip, bundled pjproject 2.17).")
    ws = await rec.ws_open(1, f"app={APP}")

    async def caller_joins(n: int) -> dict[str, Any]:
        rec.note(f"call {n}: 2001 dials 500; the app answers, sets CC_ vars, holding bridge with MOH, announcement")
        before = len([e for e in rec.events if e["type"] == "StasisStart"])
        await rig.call("2001", "500")
        start = await rec.until("caller StasisStart", lambda: [e for e in rec.events
                                                              if e["type"] == "StasisStart"][before:])
        cid = start[0]["channel"]["id"]
        await rec.rest("POST", f"/channels/{cid}/answer")
        rec.mark(f"call{n}_answer")
        await rec.rest("POST", f"/channels/{cid}/variable", variable="CC_QUEUE", value="support")
        await rec.rest("POST", "/bridges/ccq-hold-support", type="holding", name="ccq-hold-support")
        await rec.rest("POST", "/bridges/ccq-hold-support/moh", mohClass="default")
        await rec.rest("POST", "/bridges/ccq-hold-support/addChannel", channel=cid)
        await rec.rest("POST", f"/channels/{cid}/play",
                       media="sound:queue-thereare,digits:1,sound:queue-callswaiting")
        return dict(start[0]["channel"])

    async def ring(caller: dict[str, Any], ext: str, n: int, timeout: int = 15) -> tuple[str, int]:
        cid = f"ccq-{caller['id']}-{ext}-{n}"
        status, _ = await rec.rest(
            "POST", "/channels", body={"variables": {"CC_ROLE": "agent", "CC_QUEUE": "support"}},
            endpoint=f"PJSIP/{ext}", app=APP, appArgs="queue-agent,support", channelId=cid,
            originator=caller["id"], callerId='"2001" <2001>', timeout=timeout)
        return cid, status

    caller = await caller_joins(1)
    await rig.sleep(2.0)
    for ext, what in (("1002", "busy (486)"), ("1004", "declined (603)")):
        rec.note(f"ring {ext}: {what}")
        cid, status = await ring(caller, ext, 1)
        if status < 300:
            await rec.until(f"{ext} gone", lambda cid=cid: rec.event("ChannelDestroyed", channel__id=cid))
        await rig.sleep(1.0)
    rec.note("ring 1005: endpoint exists, phone not registered")
    await ring(caller, "1005", 1)
    await rig.sleep(1.0)
    rec.note("ring 1003 with timeout=4: never answered")
    cid, _ = await ring(caller, "1003", 1, timeout=4)
    await rec.until("1003 gone", lambda: rec.event("ChannelDestroyed", channel__id=cid), timeout=10)
    await rig.sleep(1.0)
    rec.note("ring 1001: it rings 2 s, then the agent answers by hand")
    agent_cid, _ = await ring(caller, "1001", 1)
    await rig.sleep(2.0)
    await rig.answer("1001")
    await rec.until("agent StasisStart", lambda: rec.event("StasisStart", channel__id=agent_cid))
    rec.mark("answered")
    rec.note("answered: caller out of the holding bridge, both into the mixing bridge cc-<caller id>")
    await rec.rest("POST", "/bridges/ccq-hold-support/removeChannel", channel=caller["id"])
    bridge = f"cc-{caller['id']}"
    await rec.rest("POST", f"/bridges/{bridge}", type="mixing", name=bridge)
    await rec.rest("POST", f"/bridges/{bridge}/addChannel", channel=f"{caller['id']},{agent_cid}")
    await rec.rest("POST", f"/channels/{caller['id']}/variable", variable="CC_ROLE", value="customer")
    await rec.rest("DELETE", "/bridges/ccq-hold-support")
    await rig.sleep(3.0)
    rec.note("ARI hold on the agent's channel for 4 s, then unhold (who hears the music: see the note after)")
    rec.mark("hold")
    await rec.rest("POST", f"/channels/{agent_cid}/hold")
    await rig.sleep(4.0)
    rec.mark("unhold")
    await rec.rest("DELETE", f"/channels/{agent_cid}/hold")
    await rig.sleep(3.0)
    rec.note("bridge recording for 3 s")
    await rec.rest("POST", f"/bridges/{bridge}/record", name="lab-sip-queue", format="wav", ifExists="overwrite",
                   beep="false")
    await rig.sleep(3.0)
    await rec.rest("POST", "/recordings/live/lab-sip-queue/stop")
    await rig.sleep(1.0)
    rec.mark("hangup")
    rec.note("the agent hangs up (BYE from 1001); the app then hangs up the caller and destroys the bridge")
    await rig.hangup("1001")
    await rec.until("agent gone", lambda: rec.event("ChannelDestroyed", channel__id=agent_cid))
    await rec.rest("DELETE", f"/channels/{caller['id']}", reason="normal")
    await rec.rest("DELETE", f"/bridges/{bridge}")
    await rig.sleep(1.5)

    caller = await caller_joins(2)
    await rig.sleep(1.0)
    rec.note("ring 1001 (not answered); the caller hangs up (BYE from 2001) while it rings; the app cancels the ring")
    agent_cid, _ = await ring(caller, "1001", 2)
    await rig.sleep(2.0)
    await rig.hangup("2001")
    await rec.until("caller gone", lambda: rec.event("StasisEnd", channel__id=caller["id"]))
    rec.mark("call2_end")
    await rig.sleep(0.3)
    await rec.rest("DELETE", f"/channels/{agent_cid}", reason="normal")
    await rec.rest("DELETE", "/bridges/ccq-hold-support")
    await rig.sleep(1.5)
    await rec.ws_close(1, ws)




# --------------------------------------------------------------------------------------------------------
CONFERENCE_PLAN = """
[internal]
exten => 500,1,NoOp(nothing dials in)
 same => n,Hangup()
"""


async def conference(rec: Recorder, rig: Rig) -> None:
    rec.note("Scenario sip-conference: what ari_app's conference does to a mixing bridge, with real phones (pjsua "
             "2.17 on chan_pjsip, auto-answer 200). 1001..1004 are rung with POST /channels into the app and added "
             "one by one to the mixing bridge cc-conf (four parties); 2001 is rung into a second mixing bridge "
             "cc-held (a held call) and moved into cc-conf by addChannel (a merge: five parties); conf-1002 is "
             "removed with DELETE /channels (the API's remove); 1003 hangs up by itself (BYE); the rest are hung "
             "up and the bridges destroyed. ARI websocket app=lab-test (no subscribeAll). "
             "-- captured against Asterisk 22.10.1 (built from source, chan_pjsip, bundled pjproject 2.17).")
    ws = await rec.ws_open(1, f"app={APP}")

    async def ring_into(ext: str, bridge: str) -> str:
        cid = f"conf-{ext}"
        await rec.rest("POST", "/channels", endpoint=f"PJSIP/{ext}", app=APP, appArgs="party", channelId=cid,
                       callerId='"1001" <1001>', timeout=15)
        await rec.until(f"{ext} answered", lambda: rec.event("StasisStart", channel__id=cid))
        await rec.rest("POST", f"/bridges/{bridge}/addChannel", channel=cid)
        await rec.until(f"{ext} in {bridge}", lambda: rec.event("ChannelEnteredBridge", channel__id=cid,
                                                                bridge__id=bridge))
        return cid

    await rec.rest("POST", "/bridges/cc-conf", type="mixing", name="cc-conf")
    for ext in ("1001", "1002", "1003", "1004"):
        rec.note(f"ring {ext}; it answers; add it to cc-conf")
        await ring_into(ext, "cc-conf")
        await rig.sleep(1.0)
    rec.note("2001 into a second bridge cc-held, then moved into cc-conf (the merge of a held call)")
    await rec.rest("POST", "/bridges/cc-held", type="mixing", name="cc-held")
    held = await ring_into("2001", "cc-held")
    await rig.sleep(1.0)
    await rec.rest("POST", "/bridges/cc-conf/addChannel", channel=held)
    await rec.until("2001 in cc-conf", lambda: rec.event("ChannelEnteredBridge", channel__id=held,
                                                         bridge__id="cc-conf"))
    await rec.rest("DELETE", "/bridges/cc-held")
    await rig.sleep(2.0)
    rec.note("remove conf-1002: DELETE /channels/conf-1002 while it is in the five-party bridge")
    await rec.rest("DELETE", "/channels/conf-1002", reason="normal")
    await rec.until("1002 gone", lambda: rec.event("StasisEnd", channel__id="conf-1002"))
    await rig.sleep(2.0)
    rec.note("1003 hangs up by itself (BYE)")
    await rig.hangup("1003")
    await rec.until("1003 gone", lambda: rec.event("StasisEnd", channel__id="conf-1003"))
    await rig.sleep(2.0)
    rec.note("the rest hung up, the bridge destroyed")
    for cid in ("conf-1001", "conf-1004", held):
        await rec.rest("DELETE", f"/channels/{cid}", reason="normal")
        await rec.until(f"{cid} gone", lambda cid=cid: rec.event("StasisEnd", channel__id=cid))
    await rec.rest("DELETE", "/bridges/cc-conf")
    await rig.sleep(1.5)
    await rec.ws_close(1, ws)
