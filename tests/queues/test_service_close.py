"""Stopping the queue service never hangs, even when a queue is woken just as it stops."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from ari_app.queues.service import QueueService
from callcenter.config import QueueConfig


async def test_close_ends_the_dispatchers_even_when_a_wake_arrives_as_it_stops() -> None:
    # A caller hanging up wakes its queue; the service stopping at that moment used to hang (seen as a 200 s
    # teardown of tests/queues under load): every interleaving of wake and cancel, a few loop turns apart.
    for turn in range(64):
        service = QueueService(SimpleNamespace(client=None), None, None,
                               [QueueConfig(name="support", members=["1001"])],
                               legs=SimpleNamespace(), bridging=SimpleNamespace())
        for _ in range(turn % 4):
            await asyncio.sleep(0)  # let the dispatcher reach its wait (a loop turn, not a timed sleep)
        service.queues["support"].wake.set()
        for _ in range(turn // 4 % 4):
            await asyncio.sleep(0)
        try:
            await asyncio.wait_for(service.close(), 2)
        except TimeoutError:
            for task in service.tasks:
                task.cancel()
            raise AssertionError(f"close() hung (wake and cancel {turn // 4 % 4} loop turns apart)") from None
        assert all(task.done() for task in service.dispatchers)
