"""Building blocks of real-tier scenarios: calls between phones, audio phases and who-hears-whom checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.real.audio import describe
from tests.real.phones import Phone, connected

PHASE_SECONDS = 5.0  # recorded per phase; the first 2 s are skipped, 3 s (30 frames) judged


async def inbound_call(customer: Phone, agent: Phone) -> None:
    """The customer dials the agent's DID from the trunk: our inbound tag, then the site's ``Dial(PJSIP/<agent>)``."""
    agent_since = agent.mark_line()
    customer_since = await customer.call(agent.ext)
    await connected(customer, customer_since, agent, agent_since)


async def outbound_call(agent: Phone, customer: Phone) -> None:
    """The agent dials 9 + the customer's number: our outbound tag, then ``Dial(PJSIP/<number>)``."""
    customer_since = customer.mark_line()
    agent_since = await agent.call("9" + customer.ext)
    await connected(agent, agent_since, customer, customer_since)


async def internal_call(caller: Phone, callee: Phone) -> None:
    callee_since = callee.mark_line()
    caller_since = await caller.call(callee.ext)
    await connected(caller, caller_since, callee, callee_since)


@dataclass
class Phase:
    """One stretch of a scenario: each listener's recording window (start, end offsets)."""

    name: str
    windows: dict[str, tuple[float, float]]


async def record_phase(name: str, listeners: dict[str, Phone], seconds: float = PHASE_SECONDS) -> Phase:
    """Mark every listener's recording now and wait until each holds ``seconds`` more audio."""
    starts = {who: phone.mark() for who, phone in listeners.items()}
    await asyncio.gather(*(phone.recorded_until(starts[who] + seconds) for who, phone in listeners.items()))
    return Phase(name, {who: (starts[who], phone.mark()) for who, phone in listeners.items()})


def hearing_problems(phase: Phase, listeners: dict[str, Phone], tones: dict[str, int],
                     expected: dict[str, set[str]]) -> list[str]:
    """Each listener must hear exactly the parties in ``expected[listener]`` (every other tone absent, its own
    included: no echo). Returns what differs, one line per listener, with the measured shares."""
    problems = []
    for who, hears in expected.items():
        start, end = phase.windows[who]
        verdicts = listeners[who].recording.verdicts(tones, start, end)
        wrong = {party for party, v in verdicts.items() if v.word != ("heard" if party in hears else "absent")}
        if wrong:
            problems.append(f"{phase.name}: {who} should hear {sorted(hears) or 'nobody'}; measured "
                            f"{describe(verdicts)}")
    return problems
