"""Mixing bridges made before a set-up needs them (bench ``real_queue``: 20 set-ups at once on a busy Asterisk).

A set-up that finds its bridge made adds the supervisor to it at once: one ARI request instead of two in a row
(create the bridge, then ``addChannel``), and one request fewer per set-up in a burst. A pooled bridge is
``cc-monitor-<session id>`` named ``monitor-<mode>`` like any session's, so the session that takes it keeps the
id, and a service that dies mid-set-up is resumed from what Asterisk shows exactly as before (``flow.py``).

The pool starts empty and is refilled, one bridge after the other, once no set-up has taken one for
``QUIET_S``: to the largest number of one mode taken since the last fill (at most ``MOST``), so an idle site keeps
nothing and a site whose supervisors come in bursts keeps a burst's worth of empty bridges.
"""

from __future__ import annotations

import asyncio
import logging

from ari_app.monitor.mechanics import Mechanics
from ari_app.monitor.session import BRIDGE_PREFIX, new_session_id
from callcenter.domain import MonitorMode

log = logging.getLogger("callcenter.ari.monitor")

POOLED_MODES = (MonitorMode.LISTEN, MonitorMode.WHISPER, MonitorMode.BARGE)  # take-over uses the call's bridge
MOST = 32
QUIET_S = 1.0


class BridgePool:
    """Empty mixing bridges per mode, each kept under the session id it will give (see the module docstring)."""

    def __init__(self, mech: Mechanics, *, most: int = MOST, quiet: float = QUIET_S) -> None:
        self.mech = mech
        self.most = most
        self.quiet = quiet
        self.ready: dict[MonitorMode, list[str]] = {mode: [] for mode in POOLED_MODES}
        self.want: dict[MonitorMode, int] = dict.fromkeys(POOLED_MODES, 0)
        self._taken: dict[MonitorMode, int] = dict.fromkeys(POOLED_MODES, 0)
        self._making: set[str] = set()  # bridge ids asked for and not known made yet
        self._timer: asyncio.TimerHandle | None = None
        self._filler: asyncio.Task[None] | None = None
        self.made = 0
        self.given = 0

    def take(self, mode: MonitorMode) -> str | None:
        """The session id of a made bridge for ``mode`` (removed from the pool), or None: make one on the path."""
        if mode not in self.ready:
            return None
        self._taken[mode] += 1
        session_id = self.ready[mode].pop() if self.ready[mode] else None
        if session_id is not None:
            self.given += 1
        if self._timer is not None:  # still in a burst: fill once it is over
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.quiet, self._start_fill)
        return session_id

    def _start_fill(self) -> None:
        self._timer = None
        if self._filler is None or self._filler.done():
            self._filler = asyncio.create_task(self._fill(), name="monitor-bridge-pool")

    def owns(self, bridge_id: str) -> bool:
        """An empty bridge of the pool (made or being made): not a session's, not to be cleared by a resync."""
        return bridge_id in self._making or any(BRIDGE_PREFIX + sid == bridge_id for ids in self.ready.values()
                                                 for sid in ids)

    def discard(self, bridge_id: str) -> None:
        """Asterisk destroyed it (``BridgeDestroyed``, or missing from a resync's list): never hand it out."""
        for ids in self.ready.values():
            for sid in [s for s in ids if BRIDGE_PREFIX + s == bridge_id]:
                ids.remove(sid)

    def keep_only(self, present: set[str]) -> None:
        """After a (re)connect: what Asterisk does not list any more is gone (it restarted)."""
        for ids in self.ready.values():
            ids[:] = [sid for sid in ids if BRIDGE_PREFIX + sid in present]

    async def _fill(self) -> None:
        for mode in POOLED_MODES:
            self.want[mode] = min(self.most, max(self.want[mode], self._taken[mode]))
            self._taken[mode] = 0
        for mode in POOLED_MODES:
            while len(self.ready[mode]) < self.want[mode]:
                session_id = new_session_id()
                bridge_id = BRIDGE_PREFIX + session_id
                self._making.add(bridge_id)
                try:
                    await self.mech.create_bridge(bridge_id, f"monitor-{mode.value}")
                except Exception as exc:  # Asterisk unreachable or refusing: the next take tries again
                    log.warning("event=monitor_bridge_pool_failed mode=%s error=%r", mode.value, exc)
                    await self.mech.destroy_bridge(bridge_id)
                    return
                finally:
                    self._making.discard(bridge_id)
                self.ready[mode].append(session_id)
                self.made += 1

    async def close(self) -> None:
        """Stop filling and destroy the empty bridges (a restart's resync would clear them anyway)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
        ids = [BRIDGE_PREFIX + sid for ready in self.ready.values() for sid in ready]
        for ready in self.ready.values():
            ready.clear()
        await asyncio.gather(*(self.mech.destroy_bridge(bridge_id) for bridge_id in ids))
