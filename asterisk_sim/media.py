"""Playbacks, recordings (real WAV files), MOH, DTMF and snoop channels."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from asterisk_sim.bridgepeer import refresh_bridgepeer
from asterisk_sim.core import EngineCore
from asterisk_sim.core_sounds import CORE_SOUNDS_EN
from asterisk_sim.model import Bridge, Channel, ari_time

# The sounds a real Asterisk 22 with Debian's core English set can play, with their lengths (seconds).
# Anything else is "not found" (Asterisk: 201, then PlaybackFinished failed; GET /sounds/{id} 404).
SOUNDS: dict[str, float] = dict(CORE_SOUNDS_EN)
KNOWN_SCHEMES = {"sound", "recording", "tone", "digits", "number", "characters"}
FORMATS = {"wav", "gsm", "ulaw", "alaw", "sln", "wav49", "g722", "slin"}
# indications.conf's tone names (ast_get_indication_tone); a ``tone:`` that is none of them must be a tone list
TONE_NAMES = {"dial", "busy", "ring", "congestion", "callwaiting", "dialrecall", "record", "info", "stutter"}
_TONE_LIST = re.compile(r"!?\d+([+*]\d+)?(/\d+)?(,!?\d+([+*]\d+)?(/\d+)?)*")
FOREVER = float("inf")


def tone_playable(uri: str) -> bool:
    """What ``ast_control_tone`` accepts: ``<name or tone list>[;tonezone=<zone>]`` (main/app.c parse_tone_uri; an
    unknown zone falls back to the channel's, any other ``;`` part fails, and so does a list that does not
    parse)."""
    tone, _, rest = uri.partition(";")
    if rest and not rest.startswith("tonezone="):
        return False
    return tone in TONE_NAMES or bool(_TONE_LIST.fullmatch(tone))


@dataclass
class Playback:
    id: str
    media: list[str]
    target_uri: str
    language: str = "en"
    state: str = "queued"
    index: int = 0
    task: asyncio.Task[None] | None = None
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    seq: int = 0            # ARI ids can repeat: the store key is id#seq
    silent: bool = False    # an unknown scheme: no PlaybackFinished ever (capture 09)
    finished: bool = False

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "media_uri": self.media[self.index]}
        if self.index + 1 < len(self.media):
            data["next_media_uri"] = self.media[self.index + 1]
        data.update({"target_uri": self.target_uri, "language": self.language, "state": self.state})
        return data


@dataclass
class Recording:
    name: str
    format: str
    target_uri: str
    path: str
    state: str = "queued"
    started: float = field(default_factory=time.monotonic)
    muted: bool = False
    max_duration: float = 0.0
    task: asyncio.Task[None] | None = None
    cause: str | None = None
    finished: bool = False

    def json(self, finished: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "format": self.format, "state": self.state,
                                "target_uri": self.target_uri}
        if self.cause:
            data["cause"] = self.cause
        if finished and self.state == "done":
            data["duration"] = max(1, round(time.monotonic() - self.started))
        return data


def write_wav(path: str, seconds: float) -> None:
    """A real 16-bit 8 kHz mono PCM file of silence, like Asterisk's ``wav`` format."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    frames = max(1, int(seconds * 8000))
    data = b"\x00\x00" * frames
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as handle:
        handle.write(header + data)


class MediaOps:
    """Media on channels and bridges: the engine's ``media_ops``; it owns the live playbacks and recordings."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.playbacks: dict[str, Playback] = {}
        self.live_recordings: dict[str, Recording] = {}
        self.playback_seq = 0  # orders the playbacks queued on one channel or bridge

    def sound_duration(self, media: str) -> float | None:
        name = media.split(":", 1)[1] if media.startswith("sound:") else media
        if media.startswith("tone:"):  # a tone plays until stopped or hung up (ast_control_tone loops)
            return FOREVER if tone_playable(media.split(":", 1)[1]) else None
        if media.startswith(("digits:", "number:", "characters:")):
            return 1.0
        if media.startswith("recording:"):
            path = os.path.join(self.core.config.recordings_dir, name + ".wav")
            return 1.0 if os.path.exists(path) else None
        return SOUNDS.get(name)

    # ---- playbacks
    def playback_event(self, pb: Playback, etype: str) -> None:
        kind, _, target = pb.target_uri.partition(":")
        event = {"type": etype, "timestamp": ari_time(), "playback": pb.json()}
        if kind == "channel":
            self.core.router.publish(event, channel_ids=(target,))
        else:
            self.core.router.publish(event, bridge_ids=(target,))

    def start_playback(self, target_uri: str, media: list[str], playback_id: str | None,
                       language: str = "en") -> Playback:
        pb = Playback(id=playback_id or self.core.new_uuid(), media=media, target_uri=target_uri, language=language)
        pb.paused.set()
        self.playback_seq += 1
        pb.seq = self.playback_seq
        if pb.id in self.playbacks:  # a duplicate playbackId is accepted; keep the earlier one reachable too
            self.playbacks[f"{pb.id}#{pb.seq}"] = self.playbacks.pop(pb.id)
        self.playbacks[pb.id] = pb
        pb.task = self.core.spawn(self._play(pb))
        return pb

    async def _play(self, pb: Playback) -> None:
        kind, _, target = pb.target_uri.partition(":")
        ahead = [p.task for p in self.playbacks.values() if p is not pb and p.target_uri == pb.target_uri
                 and p.task is not None and not p.task.done() and p.seq < pb.seq]
        if ahead:  # playbacks on one channel/bridge are queued, one after the other
            await asyncio.wait(ahead)
        if kind == "bridge" and target in self.core.bridges and self.core.bridges[target].bridge_type == "mixing":
            bridge = self.core.bridges[target]
            bridge.announcers.append(f"Announcer/ARI-{self.core.counters.suffix('Announcer')};2")
            refresh_bridgepeer(self.core, bridge)
        try:
            for index, media in enumerate(pb.media):
                pb.index = index
                pb.state = "playing"
                self.playback_event(pb, "PlaybackStarted")
                if media.split(":", 1)[0] not in KNOWN_SCHEMES:
                    pb.silent = True  # unknown scheme: no Finished ever (09)
                    pb.state = "failed"
                    break
                duration = self.sound_duration(media)
                if duration is None:
                    pb.state = "failed"
                    break
                self._audible(pb, media)
                await self._play_for(pb, duration)
                if pb.state != "playing":
                    break
                if index + 1 < len(pb.media):
                    pb.state = "continuing"
                    self.playback_event(pb, "PlaybackContinuing")
            else:
                pb.state = "done"
        except asyncio.CancelledError:
            if pb.state not in ("done", "failed"):
                pb.state = "failed"
        finally:
            self._finish_playback(pb, pb.state)

    def _audible(self, pb: Playback, media: str | None) -> None:
        """Make a playing sound part of the audio model (channel: its device hears it; bridge: every member)."""
        kind, _, target = pb.target_uri.partition(":")
        if kind == "channel" and target in self.core.channels:
            self.core.channels[target].playing = media
        elif kind == "bridge" and target in self.core.bridges:
            for member in self.core.bridge_members(self.core.bridges[target]):
                member.playing = media
        self.core.audio_changed()

    def _finish_playback(self, pb: Playback, state: str) -> None:
        """Emit PlaybackFinished exactly once (a hang-up finishes it at once, before StasisEnd)."""
        if pb.finished:
            return
        pb.finished = True
        pb.state = state
        self._audible(pb, None)
        kind, _, target = pb.target_uri.partition(":")
        if pb.task is not None and pb.task is not asyncio.current_task():
            pb.task.cancel()
        if self.playbacks.get(pb.id) is pb:
            self.playbacks.pop(pb.id, None)
        if kind == "bridge" and target in self.core.bridges:
            self.core.bridges[target].announcers = [a for a in self.core.bridges[target].announcers
                                               if not a.startswith("Announcer/ARI-")]
        if not pb.silent:
            self.playback_event(pb, "PlaybackFinished")

    async def _play_for(self, pb: Playback, duration: float) -> None:
        remaining = duration if duration == FOREVER else duration * self.core.config.time_scale
        while remaining > 0 and pb.state in ("playing", "paused"):
            await pb.paused.wait()
            if pb.state != "playing":
                return
            step = min(remaining, 0.05)
            await asyncio.sleep(step)
            if pb.paused.is_set():
                remaining -= step

    def control_playback(self, pb: Playback, operation: str) -> bool:
        if operation == "pause":
            pb.paused.clear()
            pb.state = "paused"
        elif operation == "unpause":
            pb.state = "playing"
            pb.paused.set()
            self.playback_event(pb, "PlaybackStarted")
        elif operation in ("restart", "reverse", "forward"):
            return True
        else:
            return False
        return True

    def stop_playback(self, pb: Playback) -> None:
        pb.state = "done"
        pb.paused.set()
        if pb.task is not None:
            pb.task.cancel()

    # ---- recordings
    def recording_event(self, rec: Recording, etype: str) -> None:
        kind, _, target = rec.target_uri.partition(":")
        event = {"type": etype, "timestamp": ari_time(), "recording": rec.json(finished=etype == "RecordingFinished")}
        if kind == "channel":
            self.core.router.publish(event, channel_ids=(target,))
        else:
            self.core.router.publish(event, bridge_ids=(target,))

    def recording_path(self, name: str, fmt: str) -> str:
        return os.path.join(self.core.config.recordings_dir, f"{name}.{fmt}")

    def start_recording(self, target_uri: str, name: str, fmt: str, max_duration: float) -> Recording:
        rec = Recording(name=name, format=fmt, target_uri=target_uri, path=self.recording_path(name, fmt),
                        max_duration=max_duration)
        self.live_recordings[name] = rec
        kind, _, target = target_uri.partition(":")
        ch = self.core.channels.get(target) if kind == "channel" else None
        if ch is not None and ch.bridge_id:
            rec.state = "failed"
            rec.cause = "Cannot record channel while in bridge"
            self.live_recordings.pop(name, None)
            self.core.spawn(self._fail_later(rec))
            return rec
        rec.task = self.core.spawn(self._record(rec))
        return rec

    async def _fail_later(self, rec: Recording) -> None:
        await asyncio.sleep(0)
        self.recording_event(rec, "RecordingFailed")

    async def _record(self, rec: Recording) -> None:
        kind, _, target = rec.target_uri.partition(":")
        bridge = self.core.bridges.get(target) if kind == "bridge" else None
        if bridge is not None:
            bridge.announcers.append(f"Recorder/ARI-{self.core.counters.suffix('Local')};2")
            bridge.technology = "softmix"
            refresh_bridgepeer(self.core, bridge)
        await asyncio.sleep(0)
        rec.state = "recording"
        self.recording_event(rec, "RecordingStarted")
        with contextlib.suppress(asyncio.CancelledError):
            await self.core.sleep(rec.max_duration or 10 ** 9)
        self._finish_recording(rec)

    def _finish_recording(self, rec: Recording, discard: bool = False) -> None:
        """Write the file and emit RecordingFinished once (at once on hang-up, before StasisEnd)."""
        if rec.finished:
            return
        rec.finished = True
        if rec.state in ("recording", "paused", "queued"):
            rec.state = "done"
        self.live_recordings.pop(rec.name, None)
        if rec.state == "done" and not discard:
            write_wav(rec.path, max(0.1, time.monotonic() - rec.started))
        kind, _, target = rec.target_uri.partition(":")
        bridge = self.core.bridges.get(target) if kind == "bridge" else None
        if bridge is not None and not bridge.destroyed:
            bridge.announcers = [a for a in bridge.announcers if not a.startswith("Recorder/")]
            refresh_bridgepeer(self.core, bridge)
        self.recording_event(rec, "RecordingFinished")

    def stop_recording(self, rec: Recording, discard: bool = False) -> None:
        self._finish_recording(rec, discard)
        if rec.task is not None and rec.task is not asyncio.current_task():
            rec.task.cancel()

    # ---- stop everything on a leaving channel / bridge
    def stop_media(self, ch: Channel) -> None:
        uri = f"channel:{ch.id}"
        for pb in list(self.playbacks.values()):
            if pb.target_uri == uri:
                self._finish_playback(pb, "failed")
        for rec in list(self.live_recordings.values()):
            if rec.target_uri == uri:
                self.stop_recording(rec)
        ch.moh = False
        ch.on_hold = False
        ch.ari_hold = False

    def stop_bridge_media(self, bridge: Bridge) -> None:
        uri = f"bridge:{bridge.id}"
        for pb in list(self.playbacks.values()):
            if pb.target_uri == uri and pb.task is not None:
                pb.task.cancel()
        for rec in list(self.live_recordings.values()):
            if rec.target_uri == uri:
                self.stop_recording(rec)

    def bridge_moh(self, bridge: Bridge, on: bool) -> None:
        bridge.moh = on
        if bridge.bridge_type == "mixing":
            bridge.announcers = [a for a in bridge.announcers if not a.startswith("Announcer/ARI_MOH-")]
            if on:
                bridge.announcers.append(f"Announcer/ARI_MOH-{self.core.counters.suffix('Announcer')};2")
                refresh_bridgepeer(self.core, bridge)
        self.core.audio_changed()

    # ---- DTMF
    async def send_dtmf(self, ch: Channel, digits: str, between_ms: int, duration_ms: int) -> None:
        """``ch`` sends ``digits`` toward its far side (the other Local half, the phone, the bridge peer)."""
        for digit in digits:
            if digit == ",":
                await self.core.sleep(0.5)
                continue
            await self.core.sleep(duration_ms / 1000)
            target = ch.peer if ch.is_local() and ch.peer is not None else None
            if target is not None and not target.destroyed:
                self.receive_dtmf(target, digit, duration_ms)
            else:
                self.core.notify("DtmfToDevice", (ch, digit))
            await self.core.sleep(between_ms / 1000)

    def receive_dtmf(self, ch: Channel, digit: str, duration_ms: int, depth: int = 0) -> None:
        """``ch`` reads a digit; a bridge passes it on to the other members, a Local pair to its other half."""
        self.core.channel_event(ch, "ChannelDtmfReceived", post={"digit": digit, "duration_ms": duration_ms})
        ch.dtmf.put_nowait(digit)
        self.core.notify("DtmfReceived", (ch, digit))
        if depth > 4 or not ch.bridge_id or ch.bridge_id not in self.core.bridges:
            return
        for member in self.core.bridge_members(self.core.bridges[ch.bridge_id]):
            if member is ch:
                continue
            if member.is_local() and member.peer is not None and not member.peer.destroyed:
                self.receive_dtmf(member.peer, digit, duration_ms, depth + 1)
            else:
                self.core.notify("DtmfToDevice", (member, digit))
