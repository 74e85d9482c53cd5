"""Supervisor monitoring: listen, whisper, barge and take over (DESIGN §4). See README.md.

``ari_app.component`` calls :func:`setup` for every Asterisk; it wires one :class:`MonitorService`
onto that PBX's ARI client and Stasis app and shares one :class:`MonitorPort` as
``ctx.ports.monitor_control`` for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ari_app.monitor.control import MonitorPort
from ari_app.monitor.flow import MonitorFlow
from ari_app.monitor.live import StateTargets
from ari_app.monitor.service import MonitorService
from ari_app.pbx import AsteriskPbx
from callcenter.service import ServiceContext
from callcenter.store import monitor_groups

log = logging.getLogger("callcenter.ari.monitor")

__all__ = ["MonitorFlow", "MonitorPort", "MonitorService", "setup"]


def _call_id_of(pbx: Any, channel_id: str) -> uuid.UUID | None:
    state = getattr(pbx, "state", None)
    call = state.call_of_channel(channel_id) if state is not None else None
    return call.call_id if call is not None else None


def _leg_on_hold(pbx: Any, channel_id: str) -> bool:
    """The live state's view: our call control holds the agent with ARI hold (no ChannelHold event)."""
    state = getattr(pbx, "state", None)
    call = state.call_of_channel(channel_id) if state is not None else None
    leg = call.legs.get(channel_id) if call is not None else None
    return bool(leg is not None and leg.on_hold)


async def _follow_holds(service: MonitorService, bus: Any, pbx_key: str) -> None:
    """``call.updated`` hold/unhold from our call control → music on hold for the supervisors of that agent."""
    async with bus.subscription("call.updated") as subscription:
        while True:
            event = await subscription.get()
            data = event.data
            if data.get("pbx") == pbx_key and data.get("action") in ("hold", "unhold"):
                await service.holds.changed_for(str(data.get("extension", "")), data["action"] == "hold")


async def _supervisor_becomes_agent(pbx: Any, supervisor_channel: str, agent_channel: str) -> None:
    """Take-over inside the ARI app: the supervisor's leg joins the monitored call as its agent, so the call
    flow that owns the bridge keeps the customer when the old agent leg ends (and recovers it by CC_*)."""
    from ari_app.model import now
    from ari_app.transitions import end_call

    for replaced in pbx.leg_replaced_hooks:  # flows that pair legs themselves (queues)
        replaced(agent_channel, supervisor_channel)
    state = pbx.state
    call = state.call_of_channel(agent_channel)
    if call is None:
        return
    source = state.call_of_channel(supervisor_channel)
    state.move_leg(supervisor_channel, call.linkedid)
    state.adopt(supervisor_channel, call.linkedid, "agent")
    if source is not None and source is not call and not source.live_legs() and source.ended_at is None:
        await pbx.emit(end_call(state, source, now(), "the supervisor took over another call"))
    for variable, value in (("CC_LINKEDID", call.linkedid), ("CC_ROLE", "agent")):
        with contextlib.suppress(Exception):
            await pbx.client.post(f"/channels/{supervisor_channel}/variable", variable=variable, value=value)


@contextlib.asynccontextmanager
async def setup(pbx: AsteriskPbx, ctx: ServiceContext) -> AsyncIterator[MonitorService]:
    """Monitoring on one Asterisk for the life of the component."""
    group_changes = ctx.bus.subscribe(monitor_groups.CHANGED)
    service = MonitorService(ari=pbx.client, app=pbx.client.app, pbx=pbx.key, pool=getattr(ctx.store, "pool", None),
                             writer=ctx.writer, bus=ctx.bus, technology=pbx.ari.endpoint_technology,
                             hold_probe=lambda channel_id: _leg_on_hold(pbx, channel_id),
                             on_takeover=lambda sup, agent: _supervisor_becomes_agent(pbx, sup, agent),
                             call_probe=lambda channel_id: _call_id_of(pbx, channel_id),
                             ami=lambda: pbx.ami,  # the AmiWatcher, when the PBX has AMI
                             state_targets=StateTargets(pbx.state, pbx.client),
                             group_changes=group_changes)  # drops its copy of the groups on a change
    MonitorFlow(service).register(pbx.stasis)
    holds = asyncio.create_task(_follow_holds(service, ctx.bus, pbx.key), name=f"monitor-holds-{pbx.key}")
    try:
        yield service
    finally:
        holds.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await holds
        await service.close()
        ctx.bus.unsubscribe(group_changes)
