"""What the parts of the simulated Asterisk share, as a leaf: the engine's configuration and the ``EngineCore``
Protocol — the registries, the clock and the event emission that :class:`asterisk_sim.engine.Engine` provides and
its collaborators (channel, bridge, media and Stasis operations) are handed. A collaborator sees this narrow core,
not the whole engine, so mypy checks what each one really uses and none of them imports ``engine``."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from asterisk_sim.ari_events import EventRouter
from asterisk_sim.dialplan import Dialplan
from asterisk_sim.model import Bridge, Channel, Counters, Endpoint, OutgoingInfo


@dataclass
class EngineConfig:
    dialplan_text: str = ""
    dialplan_file: str = "extensions.conf"
    time_scale: float = 1.0
    recordings_dir: str = "/tmp/asterisk-sim-recordings"
    trunk: str = "trunk"
    extra_trunks: tuple[str, ...] = ()  # more trunk endpoints (outbound routes): always online, reach customers
    # Real-Asterisk races the simulator reproduces (issue 11), in wall-clock seconds, not time-scaled:
    # a /channels/create channel enters Stasis this long after the REST reply (its thread is scheduled
    # later; until then /dial answers 409), and the ARI events of a hangup handler reach the websocket
    # this long after AMI's Hangup of the same channel.
    stasis_entry_delay: float = 0.05
    hangup_handler_ari_lag: float = 0.05
    # a snoop channel's own thread enters Stasis after the snoop's REST reply is written (res_stasis_snoop.c);
    # usually before the reply reaches the client, so 0 (off) by default: a test sets it to see the other order
    snoop_entry_delay: float = 0.0


class EngineCore(Protocol):
    """The shared part of one simulated Asterisk run: registries, clock, event emission."""

    config: EngineConfig
    counters: Counters
    router: EventRouter
    dialplan: Dialplan
    globals: dict[str, str]
    channels: dict[str, Channel]
    bridges: dict[str, Bridge]
    endpoints: dict[str, Endpoint]

    # ---- clock and tasks
    def new_uuid(self) -> str: ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time (``config.time_scale``)."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the engine cancels at shutdown."""
        ...

    # ---- events
    def notify(self, etype: str, obj: Any, extra: dict[str, Any] | None = None) -> None:
        """Tell in-process listeners (AMI, tests) what happened."""

    def audio_changed(self) -> None:
        """Who hears whom may have changed (a bridge, a playback, a snoop): tell the listeners."""

    def channel_event(self, ch: Channel, etype: str, pre: dict[str, Any] | None = None,
                      post: dict[str, Any] | None = None, extra_ids: tuple[str, ...] = ()) -> None:
        """Publish one ARI channel event (``pre`` fields before the channel, ``post`` after) and notify."""

    def set_var(self, ch: Channel, name: str, value: str, emit: bool = True) -> None:
        """Set a channel variable; ``emit`` publishes its ChannelVarset."""

    def dial_event(self, peer: Channel, status: str, info: OutgoingInfo | None) -> None:
        """ARI's Dial event for an outgoing channel (none for one nobody dialled)."""

    # ---- registry and device state
    def bridge_members(self, bridge: Bridge) -> list[Channel]:
        """The live channels of ``bridge``, in the order they entered."""
        ...

    def update_device_state(self, ch: Channel) -> None:
        """Recompute the device state ``ch`` belongs to (a PJSIP endpoint, a Local exten) after it changed."""

    # ---- the dialplan
    def start_dialplan(self, ch: Channel, context: str | None = None, exten: str | None = None,
                       priority: int | str = 1) -> None:
        """Run ``ch`` through the dialplan (from ``context,exten,priority`` when given) as a task of its own."""
