"""Load scenario: registered agents answering with random delays, customers calling in at a rate, hanging up."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator


@dataclass(frozen=True)
class Scenario:
    agents: int = 20
    queues: int = 1
    rate: float = 1.0  # inbound calls per second
    duration: float = 60.0  # seconds of new calls
    first_agent: int = 1001
    first_did: int = 2001
    min_answer: float = 0.5
    max_answer: float = 4.0
    min_talk: float = 5.0
    max_talk: float = 60.0
    seed: int = 1


def parse_scenario(spec: str) -> Scenario:
    """``agents=200,queues=3,rate=5,duration=60`` → Scenario (unknown keys are an error)."""
    values: dict[str, float] = {}
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        key, _, value = part.partition("=")
        if key not in Scenario.__dataclass_fields__:
            raise ValueError(f"unknown scenario key {key!r}")
        values[key] = float(value)
    ints = {"agents", "queues", "first_agent", "first_did", "seed"}
    return Scenario(**{k: int(v) if k in ints else v for k, v in values.items()})  # type: ignore[arg-type]


class ScenarioDriver:
    """Drives a :class:`Simulator` like a small call centre; ``calls_started`` counts inbound calls."""

    def __init__(self, sim: Simulator, scenario: Scenario, context: str = "from-trunk") -> None:
        self.sim = sim
        self.scenario = scenario
        self.context = context
        self.random = random.Random(scenario.seed)
        self.calls_started = 0
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()

    def agents(self) -> list[str]:
        return [str(self.scenario.first_agent + i) for i in range(self.scenario.agents)]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._calls] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        sc = self.scenario
        for ext in self.agents():
            phone = self.sim.phone(ext)
            await phone.register()
            phone.answer_after(self.random.uniform(sc.min_answer, sc.max_answer))
            phone.allow_call_waiting(False)  # an agent on a call is busy for the next one
        interval = 1.0 / sc.rate if sc.rate > 0 else sc.duration
        elapsed = 0.0
        while elapsed < sc.duration:
            task = asyncio.get_running_loop().create_task(self._one_call())
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            await self.sim.engine.sleep(interval)
            elapsed += interval

    async def _one_call(self) -> None:
        sc = self.scenario
        number = "+98912" + "".join(self.random.choice("0123456789") for _ in range(7))
        did = str(sc.first_did + self.random.randrange(max(1, sc.queues)))
        customer = self.sim.customer(number)
        self.calls_started += 1
        await customer.call(did, self.context)
        await self.sim.engine.sleep(self.random.uniform(sc.min_talk, sc.max_talk))
        await customer.hangup()
