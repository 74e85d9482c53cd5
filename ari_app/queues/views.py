"""The shape of a queue for ``queue.changed``, ``GET /api/v1/queues/{name}/live`` and the live snapshot."""

from __future__ import annotations

import asyncio
from typing import Any

from ari_app.model import now
from ari_app.queues.model import QueueRuntime


def queue_object(service: Any, runtime: QueueRuntime) -> dict[str, Any]:
    """``{pbx, name, strategy, waiting, longest_wait, estimated_wait, callers, members}``; waits in seconds."""
    at, loop_at = now(), asyncio.get_running_loop().time()
    callers: list[dict[str, Any]] = [{"call_id": str(w.call_id), "caller": w.caller, "position": i + 1,
                "waiting_seconds": round((at - w.joined_at).total_seconds(), 1),
                "ringing": sorted(w.ringing)} for i, w in enumerate(runtime.waiting())]
    members = []
    for ext in runtime.config.members:
        member = runtime.members[ext]
        state = service.member_state(ext)
        if state == "idle" and member.wrapup_until > loop_at:
            state = "wrapup"
        members.append({"extension": ext, "state": state, "paused": member.paused, "reason": member.reason,
                        "calls_taken": member.calls_taken})
    return {"pbx": service.pbx.key, "name": runtime.name, "strategy": runtime.config.strategy,
            "waiting": len(callers), "longest_wait": max((float(c["waiting_seconds"]) for c in callers), default=0.0),
            "estimated_wait": runtime.estimated_wait(), "callers": callers, "members": members}
