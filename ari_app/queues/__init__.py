"""Call queues and the IVR hand-off (DESIGN §5). See README.md.

``ari_app.component`` calls :func:`setup` for every Asterisk: the queues configured for that PBX get a
:class:`QueueService`, the ``queue``/``queue-agent``/``ivr`` Stasis flows are registered, and one
:class:`QueuePort` is shared as ``ctx.ports.queue_control`` for the API.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ari_app.pbx import AsteriskPbx
from ari_app.queues.bridging import Bridging
from ari_app.queues.control import QueuePort, QueueView
from ari_app.queues.flow import QueueFlow, Router
from ari_app.queues.legs import Legs
from ari_app.queues.persist import QueueStateWriter
from ari_app.queues.service import QueueService
from callcenter.service import ServiceContext

__all__ = ["QueueFlow", "QueuePort", "QueueService", "QueueView", "setup"]


@contextlib.asynccontextmanager
async def setup(pbx: AsteriskPbx, ctx: ServiceContext) -> AsyncIterator[QueueService]:
    """Queues and IVR on one Asterisk for the life of the component; their state is loaded from the store first."""
    config = ctx.config
    queues = [q for q in config.queues if q.pbx == pbx.key]
    legs = Legs(pbx.client)
    bridging = Bridging(pbx, legs)
    ownership = ctx.ownership
    state = QueueStateWriter(getattr(ctx.store, "pool", None), pbx.key,
                             generation=lambda: ownership.generation(pbx.key), owns=lambda: ownership.owns(pbx.key))
    service = QueueService(pbx, ctx.writer, ctx.bus, queues, legs, bridging, state)
    # what the last owner of this PBX left (pauses, wrap-ups, round-robin, callers' entry times), before the PBX
    # connects: the first caller is offered to an agent only after this
    await service.restore()
    router = Router(pbx, service, legs, bridging, dict(config.ivr.choices))
    service.overflow = router.overflow
    QueueFlow(pbx, service, router, legs).register(pbx.stasis)
    pbx.queue_view = QueueView(service)
    # a monitoring take-over puts the supervisor in the agent's place (ari_app/monitor calls these hooks)
    hooks = pbx.leg_replaced_hooks
    hooks.append(bridging.replace_leg)
    # a pickup (ari_app.pickup) of a leg we ring: the picker's channel answers in its place
    claims = pbx.pickup_hooks
    claims.append(bridging.claim)
    releases = pbx.leg_released_hooks
    releases.append(bridging.release)
    try:
        yield service
    finally:
        with contextlib.suppress(ValueError):
            hooks.remove(bridging.replace_leg)
        with contextlib.suppress(ValueError):
            claims.remove(bridging.claim)
        with contextlib.suppress(ValueError):
            releases.remove(bridging.release)
        await service.close()
        await bridging.close()
