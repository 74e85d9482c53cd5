"""Steady call traffic into a running service: FastAGI ``tag-inbound`` hooks, each a new call, as Asterisk makes them.

Every hook is a real FastAGI request over a socket; the service answers it at once and writes the call row
(its batched writer, through the spool when PostgreSQL is away). Each call has its own linkedid, so the call
row it must leave is known: :func:`expected_row`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.agi.agi_helpers import env_text, fastagi_call

CALLER_RAW = "02075550142"
CALLEE_RAW = "02075550100"


@dataclass
class HookTraffic:
    """``run()`` sends ``rate`` hooks a second until ``stop`` is set; ``answered`` lists the linkedids
    whose hook the service answered (set its variables and closed), in order."""

    port: int
    rate: float = 20.0
    epoch: int = field(default_factory=lambda: int(time.time()) - 600)
    sent: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def linkedid(self, n: int) -> str:
        return f"{self.epoch + n}.{n}"

    async def one(self, linkedid: str) -> None:
        env = env_text(f"tag-inbound?pbx=main&linkedid={linkedid}", uniqueid=linkedid, callerid=CALLER_RAW,
                       calleridname="ALICE MOBILE", args=(CALLEE_RAW,))
        try:
            exchange = await fastagi_call(self.port, env, timeout=10)
        except (OSError, TimeoutError) as exc:
            self.failed[linkedid] = type(exc).__name__
            return
        if exchange.closed_by_server and "CC_CALL_ID" in exchange.set_variables():
            self.answered.append(linkedid)
        else:
            self.failed[linkedid] = f"unanswered: {exchange.commands}"
        self.progress.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        started, n = loop.time(), 0
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            linkedid = self.linkedid(n)
            self.sent.append(linkedid)
            task = asyncio.create_task(self.one(linkedid))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            delay = started + n / self.rate - loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
        if pending:
            await asyncio.gather(*pending)

    async def answered_after(self, count: int) -> None:
        """Wait until ``count`` hooks were answered in all."""
        while len(self.answered) < count:
            self.progress.clear()
            await self.progress.wait()


def expected_row(linkedid: str) -> dict[str, object]:
    """The ``calls`` fields a ``tag-inbound`` hook for ``linkedid`` must leave (the pbx of the service's config)."""
    return {"source": "agi", "source_id": linkedid, "linkedid": linkedid, "direction": "inbound",
            "caller": "+442075550142", "caller_raw": CALLER_RAW, "caller_name": "ALICE MOBILE",
            "callee": "+442075550100", "tags.department": "sales",
            "started_at": datetime.fromtimestamp(int(linkedid.split(".")[0]), UTC)}
