"""The ARI moves monitoring is made of: bridges, snoop channels, prompts, hang-ups — and waiting for events.

Real Asterisk facts this respects (DESIGN §10, captures 05 and sip-monitor-session): a snoop channel
can be bridged only after its own StasisStart, which may arrive before the REST reply, so the waiter
is registered before the request; a hung-up snoop never sends ChannelDestroyed (StasisEnd is its end).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from ari_app.client import AriError

log = logging.getLogger("callcenter.ari.monitor")

SNOOP_START_TIMEOUT = 5.0
PROMPT_TIMEOUT = 15.0


class AriRest(Protocol):
    """What monitoring needs of the ARI client (``ari_app.client.AriClient`` has it; failures are
    :class:`ari_app.client.AriError`)."""

    async def get(self, path: str, **params: Any) -> Any: ...

    async def post(self, path: str, **params: Any) -> Any: ...

    async def delete(self, path: str, **params: Any) -> Any: ...


class Waiters:
    """Futures keyed by what they wait for (``start:<channel id>``, ``playback:<id>``), resolved by events."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def expect(self, key: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._futures[key] = future
        return future

    def resolve(self, key: str, event: dict[str, Any]) -> bool:
        future = self._futures.pop(key, None)
        if future is None or future.done():
            return False
        future.set_result(event)
        return True

    def fail(self, key: str, exc: BaseException) -> None:
        future = self._futures.pop(key, None)
        if future is not None and not future.done():
            future.set_exception(exc)

    def forget(self, key: str) -> None:
        future = self._futures.pop(key, None)
        if future is not None and not future.done():
            future.cancel()


class LiveSource(Protocol):
    """Channels and bridges as ARI JSON, fresh enough to pick the target (live state, or REST)."""

    async def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]: ...


class RestLiveSource:
    """``GET /channels`` + ``GET /bridges`` (every bridge, Dial() ones included) side by side."""

    def __init__(self, ari: AriRest) -> None:
        self.ari = ari

    async def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        channels, bridges = await asyncio.gather(self.ari.get("/channels"), self.ari.get("/bridges"))
        return list(channels or []), list(bridges or [])


Snapshot = tuple[list[dict[str, Any]], list[dict[str, Any]]]


class SharedSnapshots:
    """One ``GET /channels`` + ``GET /bridges`` shared by the attempts that ask at once, each still answered by
    lists Asterisk began to send *after* it asked (a refusal is decided on what Asterisk says now, not on a reply
    begun before the state we checked). At most one fetch runs and one waits: who asks while one runs joins the
    next. With 20 set-ups at once, every refused one listed the whole PBX (hundreds of channels): 17 pairs of lists
    in one round of bench ``real_queue`` slowed every other set-up's snoop (213 ms at the median instead of 40)."""

    def __init__(self, source: LiveSource) -> None:
        self.source = source
        self.fetches = 0
        self._running: asyncio.Future[Snapshot] | None = None
        self._next: asyncio.Future[Snapshot] | None = None  # not begun yet: whoever asks now may join it

    async def snapshot(self) -> Snapshot:
        if self._next is None:
            self._next = asyncio.ensure_future(self._fetch_after(self._running))
            self._next.add_done_callback(_retrieve)
        return await asyncio.shield(self._next)

    async def _fetch_after(self, running: asyncio.Future[Snapshot] | None) -> Snapshot:
        if running is not None:
            await asyncio.wait([running])
        me = self._next
        self._running, self._next = me, None  # begun: later askers wait for the one after
        try:
            self.fetches += 1
            return await self.source.snapshot()
        finally:
            if self._running is me:
                self._running = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # every waiter got it; nobody may be left to


def _log_late_failure(request: asyncio.Future[Any]) -> None:
    """A snoop request that failed after its channel's StasisStart (or after we stopped waiting)."""
    if not request.cancelled() and request.exception() is not None:
        log.warning("event=monitor_snoop_late_failure error=%s", request.exception())


class Mechanics:
    """ARI operations with the waiting and the error tolerance monitoring needs."""

    def __init__(self, ari: AriRest, app: str) -> None:
        self.ari = ari
        self.app = app
        self.waiters = Waiters()
        # a client connected with subscribeAll gets every channel's and endpoint's events already: asking for
        # them again is a request per session start and end for nothing (20 set-ups at once, bench real_queue)
        self.all_events = getattr(ari, "subscribe_all", False) is True

    async def quietly(self, request: Awaitable[Any], what: str) -> Any:
        """Run a clean-up request; "already gone" is success, anything else is logged, never raised."""
        try:
            return await request
        except AriError as exc:
            if not exc.gone:
                log.warning("event=monitor_cleanup_failed what=%s status=%s error=%s", what, exc.status, exc)
        except Exception as exc:
            log.warning("event=monitor_cleanup_failed what=%s status=None error=%s", what, exc)
        return None

    async def create_bridge(self, bridge_id: str, name: str) -> None:
        await self.ari.post("/bridges", type="mixing", bridgeId=bridge_id, name=name)

    async def snoop(self, agent_channel: str, snoop_id: str, params: dict[str, str],
                    replied: list[float] | None = None) -> dict[str, Any]:
        """Create a snoop channel on the agent's channel and return once it is in Stasis (bridgeable): its
        StasisStart may come before the REST reply, and then it is bridgeable already; the reply is awaited only
        for a failure (a refused snoop sends no StasisStart). ``replied`` gets the monotonic time of the reply."""
        started = self.waiters.expect(f"start:{snoop_id}")
        request = asyncio.ensure_future(
            self.ari.post(f"/channels/{agent_channel}/snoop", app=self.app, snoopId=snoop_id, **params))
        if replied is not None:
            request.add_done_callback(lambda _done: replied.append(time.monotonic()))
        try:
            await asyncio.wait([started, request], timeout=SNOOP_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if not started.done():
                if request.done():
                    request.result()  # raises the refusal (404: the agent's channel is gone)
                return await asyncio.wait_for(started, SNOOP_START_TIMEOUT)
            return started.result()
        finally:
            self.waiters.forget(f"start:{snoop_id}")
            if not request.done():
                request.add_done_callback(_log_late_failure)
            elif not request.cancelled():
                request.exception()  # retrieved: the StasisStart (or the wait's end) decided

    async def snoop_into(self, bridge_id: str, agent_channel: str, snoop_id: str, params: dict[str, str], *,
                         bridge_ready: Awaitable[Any] | None = None, times: dict[str, float] | None = None) -> None:
        """Create a snoop on the agent's channel and add it to ``bridge_id`` (awaiting ``bridge_ready`` first) as
        soon as Asterisk says it exists: the REST reply or its StasisStart, whichever comes first. On Asterisk 22
        the reply comes ≈ 10 ms before the StasisStart reaches us under load (bench ``real_queue``): the snoop's
        own thread enters Stasis (its control is linked, so ``addChannel`` works) before it sends the event, and
        the reply is written after that thread is started (``res_stasis_snoop.c``). Should the ``addChannel`` come
        before the snoop is in Stasis (422), it is sent again after the StasisStart. ``times`` gets the monotonic
        instants ``reply`` and ``ready`` (the first of the two)."""
        started = self.waiters.expect(f"start:{snoop_id}")
        request = asyncio.ensure_future(
            self.ari.post(f"/channels/{agent_channel}/snoop", app=self.app, snoopId=snoop_id, **params))
        if times is not None:
            request.add_done_callback(lambda _done: times.setdefault("reply", time.monotonic()))
        try:
            await asyncio.wait([started, request], timeout=SNOOP_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if not started.done():
                if not request.done():
                    raise TimeoutError(f"no reply and no StasisStart for snoop {snoop_id}")
                request.result()  # raises the refusal (404: the agent's channel is gone)
            if times is not None:
                times["ready"] = time.monotonic()
            if bridge_ready is not None:
                await bridge_ready
            if times is not None:
                times["bridged"] = time.monotonic()
            in_stasis = started.done()  # as the addChannel is sent: its 422 may come after the StasisStart
            try:
                await self.add_to_bridge(bridge_id, snoop_id, colp=False)
            except AriError as exc:
                if exc.status != 422 or in_stasis:
                    raise
                log.debug("event=monitor_snoop_early snoop=%s: added again after its StasisStart", snoop_id)
                if times is not None:
                    times["early"] = 1.0
                await asyncio.wait_for(asyncio.shield(started), SNOOP_START_TIMEOUT)
                await self.add_to_bridge(bridge_id, snoop_id, colp=False)
        finally:
            self.waiters.forget(f"start:{snoop_id}")
            if not request.done():
                request.add_done_callback(_log_late_failure)
            elif not request.cancelled():
                request.exception()  # retrieved: the bridging decided

    async def add_to_bridge(self, bridge_id: str, *channel_ids: str, colp: bool = True) -> None:
        """``colp=False`` (``inhibitConnectedLineUpdates``) for a session's own bridge, the supervisor and a snoop:
        otherwise Asterisk swaps the two channels' caller ids as connected lines once both are in
        (``bridge_reconfigured_connected_line_update``) — a control frame to each, a ``ChannelConnectedLine`` on ARI
        and a ``NewConnectedLine`` on AMI per set-up, for nothing anyone reads (a snoop has no caller id)."""
        await self.ari.post(f"/bridges/{bridge_id}/addChannel", channel=",".join(channel_ids),
                            inhibitConnectedLineUpdates=None if colp else True)  # None: not sent at all

    async def answer(self, channel_id: str) -> None:
        await self.ari.post(f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str | None) -> None:
        if channel_id:
            await self.quietly(self.ari.delete(f"/channels/{channel_id}"), f"hangup {channel_id}")

    async def empty_then_hang_up(self, bridge_id: str, channel_ids: tuple[str, ...], wait: float = 1.0) -> None:
        """Destroy the bridge, and hang the channels up once we saw them leave it. Asterisk reports a channel
        on ARI and on AMI: a bridge-leave reported after the hang-up has been applied would look like a new
        call to the live state (and rewrite the ended one), so the leave comes first."""
        left = [self.waiters.expect(f"left:{cid}") for cid in channel_ids]
        try:
            await self.destroy_bridge(bridge_id)
            await asyncio.wait(left, timeout=wait)
        finally:
            for cid in channel_ids:
                self.waiters.forget(f"left:{cid}")
        await asyncio.gather(*(self.hangup(cid) for cid in channel_ids))

    async def destroy_bridge(self, bridge_id: str | None) -> None:
        if bridge_id:
            await self.quietly(self.ari.delete(f"/bridges/{bridge_id}"), f"destroy {bridge_id}")

    async def set_vars(self, channel_id: str, values: dict[str, str]) -> None:
        await asyncio.gather(*(self.quietly(self.ari.post(f"/channels/{channel_id}/variable", variable=name,
                                                          value=value), f"set {name}")
                               for name, value in values.items()))

    async def get_var(self, channel_id: str, name: str) -> str | None:
        try:
            reply = await self.ari.get(f"/channels/{channel_id}/variable", variable=name)
        except AriError:
            return None
        return str(reply.get("value", "")) if isinstance(reply, dict) else None

    async def endpoint_state(self, technology: str, resource: str) -> str | None:
        """``online``/``offline``…, None when there is no such endpoint."""
        try:
            endpoint = await self.ari.get(f"/endpoints/{technology}/{resource}")
        except AriError:
            return None
        return str(endpoint.get("state", "")) if isinstance(endpoint, dict) else None

    async def play_and_wait(self, channel_id: str, media: str, playback_id: str) -> None:
        """Play a prompt and wait until it has finished (or failed, or the channel went away)."""
        done = self.waiters.expect(f"playback:{playback_id}")
        try:
            await self.ari.post(f"/channels/{channel_id}/play/{playback_id}", media=media)
            await asyncio.wait_for(done, PROMPT_TIMEOUT)
        except (AriError, TimeoutError):
            pass  # the channel went away, or the prompt never finished: nothing more to wait for
        finally:
            self.waiters.forget(f"playback:{playback_id}")

    async def play(self, channel_id: str, media: str) -> None:
        await self.quietly(self.ari.post(f"/channels/{channel_id}/play", media=media), f"play {media}")

    async def bridge_moh(self, bridge_id: str, on: bool) -> None:
        if on:
            await self.quietly(self.ari.post(f"/bridges/{bridge_id}/moh"), "bridge moh start")
        else:
            await self.quietly(self.ari.delete(f"/bridges/{bridge_id}/moh"), "bridge moh stop")

    async def subscribe(self, source: str, on: bool) -> None:
        if self.all_events:
            return
        method = self.ari.post if on else self.ari.delete
        await self.quietly(method(f"/applications/{self.app}/subscription", eventSource=source),
                           f"subscription {source}")

    def on_event(self, event: dict[str, Any]) -> None:
        """Resolve waiters: a StasisStart for a snoop, a PlaybackFinished for a prompt, a bridge left."""
        kind = event.get("type")
        if kind == "StasisStart":
            self.waiters.resolve(f"start:{event.get('channel', {}).get('id')}", event)
        elif kind == "ChannelLeftBridge":
            self.waiters.resolve(f"left:{event.get('channel', {}).get('id')}", event)
        elif kind == "PlaybackFinished":
            self.waiters.resolve(f"playback:{event.get('playback', {}).get('id')}", event)
