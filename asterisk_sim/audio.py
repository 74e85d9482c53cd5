"""The audio-path model: who hears whom, from bridges, Local pairs, Echo, holds, MOH and snoop directions.

Each channel has a read side R (audio coming from its device/peer into the core) and a write side W (audio the
core sends to it). A snoop on T follows res_stasis_snoop: ``spy in`` = R(T) and ``spy out`` = W(T) feed the snoop,
``whisper out`` puts what the snoop receives into W(T) (T's device hears it), ``whisper in`` into R(T) (T's
peers hear it). Whispered audio is not spied again (audiohooks read before they write).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from asterisk_sim.model import Channel

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine

Node = tuple[str, str]  # ("R"|"W", channel id)
MOH = "moh"


def _edges(engine: Engine) -> dict[Node, list[tuple[Node, str]]]:
    """Directed edges with a kind: 'plain', 'spy' (not for whispered audio) or 'whisper' (marks audio)."""
    edges: dict[Node, list[tuple[Node, str]]] = {}

    def add(a: Node, b: Node, kind: str = "plain") -> None:
        edges.setdefault(a, []).append((b, kind))

    chans = engine.channels
    for ch in chans.values():
        if ch.is_local() and ch.peer is not None and ch.half == 1 and ch.peer.id in chans:
            add(("W", ch.id), ("R", ch.peer.id))
            add(("W", ch.peer.id), ("R", ch.id))
        if ch.echo:
            add(("R", ch.id), ("W", ch.id))
        spied = ch.spy_on
        if spied in chans:  # dialplan ChanSpy: the spy's device hears both directions of the target
            add(("R", spied), ("W", ch.id), "spy")
            add(("W", spied), ("W", ch.id), "spy")
            whisper = ch.spy_whisper
            if whisper in ("out", "both"):
                add(("R", ch.id), ("W", spied), "whisper")
            if whisper == "both":
                add(("R", ch.id), ("R", spied), "whisper")
        if ch.tech == "Snoop" and ch.snoop_target in chans:
            target = ch.snoop_target
            if ch.spy in ("in", "both"):
                add(("R", target), ("R", ch.id), "spy")
            if ch.spy in ("out", "both"):
                add(("W", target), ("R", ch.id), "spy")
            if ch.whisper in ("out", "both"):
                add(("W", ch.id), ("W", target), "whisper")
            if ch.whisper in ("in", "both"):
                add(("W", ch.id), ("R", target), "whisper")
    for bridge in engine.bridges.values():
        if bridge.bridge_type != "mixing":
            continue
        members = [chans[c] for c in bridge.channels if c in chans]
        for a in members:
            if a.on_hold or a.mute in ("in", "both"):
                continue
            for b in members:
                if b is not a and b.mute not in ("out", "both") and not b.on_hold and not b.ari_hold:
                    add(("R", a.id), ("W", b.id))
    return edges


def _sources(engine: Engine) -> list[tuple[str, Node]]:
    sources: list[tuple[str, Node]] = []
    for ch in engine.channels.values():
        if ch.tech == "PJSIP" and ch.party and ch.state == "Up":
            sources.append((ch.party, ("R", ch.id)))
        if ch.moh or ch.playing or ch.ari_hold:
            sources.append((MOH if ch.moh or ch.ari_hold else ch.playing or MOH, ("W", ch.id)))
    for bridge in engine.bridges.values():
        members = [engine.channels[c] for c in bridge.channels if c in engine.channels]
        if bridge.moh:
            sources.extend((MOH, ("W", m.id)) for m in members)
        for held in members:
            if held.on_hold and bridge.bridge_type == "mixing":
                sources.extend((MOH, ("W", m.id)) for m in members if m is not held)
    return sources


def _listeners(engine: Engine) -> dict[str, str]:
    """W node (channel id) → party whose ears it reaches (answered phone/customer channels)."""
    return {ch.id: ch.party for ch in engine.channels.values()
            if ch.tech == "PJSIP" and ch.party and ch.state == "Up"}


def who_hears_whom(engine: Engine) -> dict[str, set[str]]:
    """Map every party on an answered call to the set of parties (and ``moh``) it hears right now."""
    edges = _edges(engine)
    listeners = _listeners(engine)
    heard: dict[str, set[str]] = {party: set() for party in listeners.values()}
    for source, start in _sources(engine):
        seen: set[tuple[Node, bool]] = set()
        queue: deque[tuple[Node, bool]] = deque([(start, False)])
        while queue:
            node, whispered = queue.popleft()
            if (node, whispered) in seen:
                continue
            seen.add((node, whispered))
            if node[0] == "W" and node[1] in listeners and listeners[node[1]] != source:
                heard[listeners[node[1]]].add(source)
            for nxt, kind in edges.get(node, []):
                if kind == "spy" and whispered:
                    continue
                queue.append((nxt, whispered or kind == "whisper"))
    return heard


def party_of(ch: Channel) -> str | None:
    return ch.party if ch.tech == "PJSIP" else None
