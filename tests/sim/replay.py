"""Replay a real-Asterisk capture (``../shared/asterisk/NN-*.jsonl``) against the simulator and diff the results.

What is compared, and every allowance (each one is a difference that is inherently run-specific):

* REST: method, path, query and body are sent as captured. The status code must be equal. Error bodies
  (``{"message": ...}`` / ``{"error": ...}``) must be equal word for word. Other JSON bodies must have the same
  keys (recursively; for lists, the keys of the first element) — values such as ids, timestamps and uniqueids
  are run-specific.
* Timing: the gap between two steps is the captured gap times the simulator's ``time_scale`` (the simulator
  scales every Wait/Playback/timeout the same way), with a small floor so events can settle. Before each REST
  step the replay also waits for the events the capture had seen by then (per subject), so a loaded machine
  that runs the simulator's timers late cannot send a step ahead of the events it followed in the capture.
* Events: grouped per websocket and per *subject* (a channel by its normalised name, a bridge/playback/recording
  by id). Within a subject the sequence of (type, key fields) must be equal: Asterisk orders events per channel,
  while the interleaving of different channels depends on thread scheduling, so it is not compared.
  Key fields: type, channel state, dialplan app of ChannelDialplan, variable and value of ChannelVarset,
  cause/soft, cause_txt, dialstatus, args, digit, duration_ms, playback/recording state.
* Names: channel-name counters (``-0000001f``) and snoop counters are renumbered by order of appearance,
  because the captures ran one after another on one Asterisk while each replay starts fresh. Uniqueid-style
  ids (``1795635579.2``) are replaced by the channel name they belong to.
* BRIDGEPEER: the value is compared as a set of normalised names (Asterisk's order comes from a hash
  container), and consecutive identical BRIDGEPEER re-emissions for one channel are collapsed into one (how
  many times Asterisk re-emits after a snoop attach/detach depends on framehook timing).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.shared import ASTERISK_CAPTURES
from tests.waiting import eventually

CAPTURES = ASTERISK_CAPTURES
_COUNTER = re.compile(r"^(?P<base>(?:Local|Snoop|PJSIP|Announcer|Recorder)/.+?)-(?P<n>[0-9a-f]{8})(?P<half>;[12])?$")
_UNIQUEID = re.compile(r"^\d{9,}\.\d+$")


def load(name: str) -> list[dict[str, Any]]:
    path = CAPTURES / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Namer:
    """Renumber channel-name counters by first appearance so two runs can be compared."""

    def __init__(self) -> None:
        self.map: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def name(self, raw: str) -> str:
        m = _COUNTER.match(raw)
        if not m:
            return raw
        key = m.group("base").split("/", 1)[0] + "|" + m.group("n")
        if m.group("base").startswith("Snoop/"):
            key = "Snoop|" + m.group("n")
        if key not in self.map:
            tech = key.split("|", 1)[0]
            self.counts[tech] = self.counts.get(tech, 0) + 1
            self.map[key] = str(self.counts[tech])
        base = m.group("base")
        if base.startswith("Snoop/"):
            base = "Snoop/" + _strip_uid(base[6:])
        return f"{base}-#{self.map[key]}{m.group('half') or ''}"


def _strip_uid(text: str) -> str:
    return "<uid>" if _UNIQUEID.match(text) else text


@dataclass
class Run:
    """What one side (capture or simulator) produced."""

    statuses: list[tuple[str, int, Any]] = field(default_factory=list)
    events: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def event_key(ev: dict[str, Any], namer: Namer) -> tuple[str, tuple[Any, ...]]:
    """(subject, comparable tuple) for one event."""
    etype = ev["type"]
    ch = ev.get("channel") or ev.get("peer")
    if ch is not None:
        subject = namer.name(ch["name"])
    elif "bridge" in ev:
        subject = "bridge:" + _strip_uid(ev["bridge"]["id"]) if not _looks_generated(ev["bridge"]["id"]) \
            else "bridge:<generated>"
    elif "playback" in ev:
        subject = "playback:" + ("<generated>" if _looks_generated(ev["playback"]["id"]) else ev["playback"]["id"])
    elif "recording" in ev:
        subject = "recording:" + ev["recording"]["name"]
    elif "endpoint" in ev:
        subject = "endpoint:" + ev["endpoint"]["resource"]
    else:
        subject = etype
    fields: list[Any] = [etype]
    if ch is not None:
        fields.append(ch.get("state"))
    if etype == "ChannelDialplan":
        fields.append(ev.get("dialplan_app"))
    if etype == "ChannelVarset":
        value = ev.get("value", "")
        if ev.get("variable") == "BRIDGEPEER":
            value = tuple(sorted(namer.name(v) for v in value.split(",") if v))
        fields.extend([ev.get("variable"), value])
    for key in ("cause", "soft", "cause_txt", "dialstatus", "args", "digit", "duration_ms"):
        if key in ev:
            fields.append((key, json.dumps(ev[key])))
    for key in ("playback", "recording"):
        if key in ev:
            fields.append(ev[key].get("state"))
    return subject, tuple(fields)


def _looks_generated(ident: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", ident))


def per_subject(events: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    namer = Namer()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for ev in events:
        subject, fields = event_key(ev, namer)
        seq = out.setdefault(subject, [])
        if fields[0] == "ChannelVarset" and fields[2] == "BRIDGEPEER" and seq and seq[-1] == fields:
            continue
        seq.append(fields)
    return out


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) <= {"message", "error"}:
            return value
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


class Replayer:
    """Drive the simulator through the REST/websocket steps of a capture."""

    def __init__(self, base_url: str, scale: float, skip: set[int] | None = None) -> None:
        self.base = base_url.rsplit("/ari", 1)[0]
        self.scale = scale
        self.skip = skip or set()
        self.ids: dict[str, str] = {}

    def learn(self, want: Any, got: Any) -> None:
        """Map generated ids of the capture (uniqueids, uuids) to the simulator's, from parallel replies."""
        if isinstance(want, dict) and isinstance(got, dict):
            ident, other = want.get("id"), got.get("id")
            generated = isinstance(ident, str) and (_UNIQUEID.match(ident) or _looks_generated(ident))
            if generated and isinstance(ident, str) and isinstance(other, str) and ident != other:
                self.ids[ident] = other
                if _UNIQUEID.match(ident) and _UNIQUEID.match(other):
                    a, n = ident.rsplit(".", 1)
                    b, m = other.rsplit(".", 1)
                    self.ids[f"{a}.{int(n) + 1}"] = f"{b}.{int(m) + 1}"

    def _map(self, text: str) -> str:
        for old, new in self.ids.items():
            text = re.sub(r"(?<![\w.])" + re.escape(old) + r"(?![\w.])", new, text)
        return text

    async def run(self, records: list[dict[str, Any]]) -> Run:
        run = Run()
        sockets: dict[int, aiohttp.ClientWebSocketResponse] = {}
        readers: list[asyncio.Task[None]] = []
        last_t = 0.0
        async with aiohttp.ClientSession() as session:
            for index, rec in enumerate(records):
                t = rec.get("t_sent", rec.get("t", last_t))
                if rec["kind"] in ("rest", "ws") and t > last_t:
                    await asyncio.sleep(max(0.004, (t - last_t) * self.scale))
                    last_t = t
                if rec["kind"] == "rest" or rec.get("action") == "client_close":  # (an open's t is when it was done)
                    await self._catch_up(records, t, run)
                if index in self.skip:
                    continue
                if rec["kind"] == "ws" and rec.get("action") == "open":
                    url = self.base.replace("http", "ws") + "/ari/events?" + rec["url"].split("?", 1)[1]
                    ws = await session.ws_connect(url)
                    sockets[rec["conn"]] = ws
                    run.events[rec["conn"]] = []
                    readers.append(asyncio.create_task(self._read(ws, run.events[rec["conn"]])))
                elif rec["kind"] == "ws" and rec.get("action") == "client_close" and rec.get("conn") in sockets:
                    await asyncio.sleep(0.05)
                    await sockets[rec["conn"]].close()
                elif rec["kind"] == "rest":
                    result = await self._rest(session, rec)
                    self.learn(rec["response"], result[2])
                    run.statuses.append(result)
            await asyncio.sleep(0.2)
            for ws in sockets.values():
                await ws.close()
            for reader in readers:
                reader.cancel()
        return run

    async def _catch_up(self, records: list[dict[str, Any]], t: float, run: Run) -> None:
        """Before a step: wait for the events the capture saw before it (a loaded machine delays the simulator's
        chained dialplan timers more than the replay's one sleep), then keep the captured gap after the last one.

        Events are counted per subject, as ``diff`` compares them; if the simulator never sends one, the step goes
        ahead after a bound and ``diff`` names what is missing.
        """
        before = [rec for rec in records if rec["kind"] == "event" and rec.get("t", 0.0) < t]
        if not before:
            return
        want = {conn: {subject: len(seq) for subject, seq in per_subject(
            [rec["event"] for rec in before if rec["conn"] == conn]).items()} for conn in {r["conn"] for r in before}}

        def caught_up() -> bool:
            for conn, counts in want.items():
                got = per_subject(run.events.get(conn, []))
                if any(len(got.get(subject, [])) < n for subject, n in counts.items()):
                    return False
            return True

        if caught_up():
            return
        try:
            await eventually(caught_up, timeout=5.0, what=f"the events captured before t={t}")
        except AssertionError:
            pass  # the simulator did not send them: go on, and let diff() show which are missing
        last_event = max(rec.get("t", 0.0) for rec in before)
        await asyncio.sleep(max(0.004, (t - last_event) * self.scale))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, sink: list[dict[str, Any]]) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                sink.append(json.loads(msg.data))

    async def _rest(self, session: aiohttp.ClientSession, rec: dict[str, Any]) -> tuple[str, int, Any]:
        headers = {}
        user = rec.get("auth_user", "lab:lab")
        if user is not None:
            import base64
            token = base64.b64encode((user if ":" in user else f"{user}:wrong").encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        body = rec.get("body")
        data = None
        if isinstance(body, str):
            data = body
            headers["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        url = self.base + self._map(rec["path"])
        query = {k: self._map(v) for k, v in (rec.get("query") or {}).items()}
        async with session.request(rec["method"], url, params=query or None, data=data,
                                   headers=headers) as resp:
            raw = await resp.read()
            parsed: Any
            if raw and resp.content_type.startswith(("audio/", "application/octet")):
                parsed = {"binary_length": len(raw), "first_16_bytes_hex": raw[:16].hex()}
            else:
                text = raw.decode(errors="replace") if raw else ""
                try:
                    parsed = json.loads(text) if text else None
                except ValueError:
                    parsed = text
        return f"{rec['method']} {rec['path']}", resp.status, parsed


def captured(records: list[dict[str, Any]]) -> Run:
    run = Run()
    for rec in records:
        if rec["kind"] == "rest":
            run.statuses.append((f"{rec['method']} {rec['path']}", rec["status"], rec["response"]))
        elif rec["kind"] == "event":
            run.events.setdefault(rec["conn"], []).append(rec["event"])
        elif rec["kind"] == "ws" and rec.get("action") == "open":
            run.events.setdefault(rec["conn"], [])
    return run


def diff(expected: Run, actual: Run, skip_rest: frozenset[int] = frozenset()) -> list[str]:
    """Differences; ``skip_rest`` = indexes (among the REST records) whose reply is not compared."""
    problems: list[str] = []
    pairs = zip(expected.statuses, actual.statuses, strict=False)
    for index, ((what, status, body), (_, got_status, got_body)) in enumerate(pairs):
        if index in skip_rest:
            continue
        if status != got_status:
            problems.append(f"{what}: status {got_status} != captured {status} ({got_body!r:.120})")
        elif shape(body) != shape(got_body) and not isinstance(body, str):
            problems.append(f"{what}: body {json.dumps(got_body)[:200]} != captured shape {json.dumps(body)[:200]}")
    for conn, events in expected.events.items():
        want = per_subject(events)
        got = per_subject(actual.events.get(conn, []))
        for subject in sorted(set(want) | set(got)):
            if want.get(subject) != got.get(subject):
                problems.append(_seq_diff(conn, subject, want.get(subject, []), got.get(subject, [])))
    return problems


def _seq_diff(conn: int, subject: str, want: list[tuple[Any, ...]], got: list[tuple[Any, ...]]) -> str:
    lines = [f"conn {conn} {subject}:"]
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        mark = "  " if w == g else "!!"
        lines.append(f"   {mark} want {w}\n      got  {g}")
    return "\n".join(lines)


def elapsed(start: float) -> float:
    return time.monotonic() - start
