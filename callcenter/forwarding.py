"""Call control from any instance (issue 16): the API's ports run an action where the PBX concerned is driven.

Each port the API sees (``ctx.ports``) is a router: an action on a PBX this instance drives runs on the local port
(the ARI app's, ``ctx.local_ports``); an action on a PBX driven by another instance becomes a row in
``pbx_commands`` that the owner claims, runs on its own local port and answers (:class:`CommandChannel`). The API
never knows where a PBX lives. Transport is PostgreSQL only: the row, and a NOTIFY each way through the event bus
(``cluster.command`` / ``cluster.reply``), with polling behind both in case a NOTIFY was lost while the bus
reconnected. An owner that does not answer within ``command_timeout`` is a 503 with ``Retry-After``, never a hang;
a command the issuer gave up on is never run late (the claim checks the deadline in the database).

Which PBX an action concerns: a call id → the call's stored row (``calls.pbx``), else each PBX's owner in turn; an
extension (click-to-call, monitoring, pickup) → the request's ``pbx`` or route, else the PBX where the phone is
registered (each owner is asked in turn, the first that knows it wins: the config does not list extensions), else
the first PBX, as one instance always did; a queue → its ``[[queue]] pbx``; a monitoring session → the ``pbx`` its
listing carries. Lists (the live snapshot, sessions, pickable calls) merge every owner's answer for its own PBX.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from callcenter.bus import EventBus
from callcenter.config import Config
from callcenter.domain import Conflict, DomainError, NotFound, Unavailable
from callcenter.monitoring import (
    InvalidMonitorRequest,
    OtherPbx,
    SessionNotFound,
    SupervisorUnavailable,
    check_level,
    parse_mode,
)
from callcenter.numbers import InvalidNumber
from callcenter.outbound import OutboundRoute
from callcenter.ownership import LeasedOwnership, Ownership
from callcenter.service import Ports, ServiceContext
from callcenter.store import calllog, monitor_groups
from callcenter.store.commands import (
    Command,
    abandon_command,
    claim_command,
    finish_command,
    get_command,
    get_command_and_holder,
    issue_command,
    purge_commands,
)

log = logging.getLogger("callcenter.forwarding")

COMMAND_TOPIC = "cluster.command"  # a command was issued: owners look for work
REPLY_TOPIC = "cluster.reply"  # a command was answered: its issuer reads the reply
DEFAULT_TIMEOUT = 5.0
MAX_CARRIED = 6000  # bytes of an answer the reply's NOTIFY carries (a NOTIFY holds < 8000); larger: read the row

# What an owner runs for another instance: the port methods, nothing else (the row names them).
PORT_METHODS: dict[str, frozenset[str]] = {
    "call_control": frozenset({"originate", "hangup", "hold", "unhold", "blind_transfer", "start_recording",
                               "stop_recording", "attended_transfer", "complete_transfer", "cancel_transfer",
                               "conference", "conference_call", "remove_party"}),
    "monitor_control": frozenset({"start", "switch", "stop", "sessions"}),
    "live": frozenset({"snapshot", "extension_facts"}),
    "queue_control": frozenset({"pause", "status"}),
    "pickup": frozenset({"pickable", "pickup"}),
}
_STORE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class OwnerUnavailable(Unavailable):
    """The PBX's owner did not answer in time (none right now, or it is stopped or hung): try again shortly."""

    code = "owner_unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class RemoteFailure(Exception):
    """The owner failed in a way that is not a domain refusal (a bug): the API answers it as its own 500."""


# -- values on the wire ---------------------------------------------------------------------------

def to_json(value: Any) -> Any:
    """Arguments and replies as JSON values: ids as strings, a route as its fields."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, OutboundRoute):
        return {field.name: to_json(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json_args(args: dict[str, Any]) -> dict[str, Any]:
    """The port method's keyword arguments back from JSON (the parameter names of :mod:`callcenter.ports`)."""
    out = dict(args)
    for name in ("call_id", "other_call_id"):
        if out.get(name) is not None:
            out[name] = uuid.UUID(out[name])
    if isinstance(out.get("route"), dict):
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in out["route"].items()}
        out["route"] = OutboundRoute(**fields)
    return out


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An owner's refusal as the issuer re-raises it: the class, the message and the API's code and status."""
    if isinstance(exc, DomainError):
        kind = type(exc)
        return {"type": f"{kind.__module__}.{kind.__qualname__}", "message": exc.message, "code": exc.code,
                "status": exc.status, "retry_after": exc.retry_after}
    if isinstance(exc, InvalidNumber):
        return {"type": "callcenter.numbers.InvalidNumber", "message": str(exc)}
    return {"type": "internal", "message": type(exc).__name__}


def _domain_errors() -> dict[str, type[DomainError]]:
    found: dict[str, type[DomainError]] = {}
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        kind = todo.pop()
        found[f"{kind.__module__}.{kind.__qualname__}"] = kind
        todo += kind.__subclasses__()
    return found


def decode_error(error: dict[str, Any]) -> Exception:
    """The exception the owner raised, so the API answers exactly as the owner's own API would. A class this
    process does not know becomes a DomainError with the same code, status and message (the same answer)."""
    kind, message = str(error.get("type", "")), str(error.get("message", ""))
    if kind == "callcenter.numbers.InvalidNumber":
        return InvalidNumber(message)
    if kind == "internal":
        return RemoteFailure(f"the owner failed: {message}")
    cls = _domain_errors().get(kind, DomainError)
    try:
        exc = cls(message)
    except TypeError:  # a subclass with its own constructor: the base carries the same answer
        exc = DomainError(message)
    exc.code, exc.status = str(error.get("code", exc.code)), int(error.get("status", exc.status))
    if error.get("retry_after") is not None:
        exc.retry_after = int(error["retry_after"])
    return exc


def scoped(method: str, value: Any, keys: Sequence[str]) -> Any:
    """Only the part of a list answer that is about ``keys`` (an instance may drive PBXs it is not asked about)."""
    def mine(item: Any) -> bool:
        return not isinstance(item, dict) or item.get("pbx", keys[0] if keys else None) in keys

    if method == "snapshot" and isinstance(value, dict):
        out = {name: [i for i in items if mine(i)] if isinstance(items, list) else items
               for name, items in value.items()}
        if isinstance(value.get("connected"), dict):
            out["connected"] = {k: v for k, v in value["connected"].items() if k in keys}
        return out
    if method in ("sessions", "pickable") and isinstance(value, list):
        return [item for item in value if mine(item)]
    return value


# -- the channel ----------------------------------------------------------------------------------

class CommandChannel:
    """Issues commands to other instances and runs the ones addressed to the PBXs this instance drives."""

    def __init__(self, *, pool: asyncpg.Pool, bus: EventBus, ownership: Ownership, local: Ports,
                 pbx_keys: Sequence[str], timeout: float = DEFAULT_TIMEOUT, poll_every: float = 0.5,
                 keep_seconds: float = 3600.0) -> None:
        self.pool, self.bus, self.ownership, self.local = pool, bus, ownership, local
        self.pbx_keys = tuple(pbx_keys)
        self.timeout = timeout
        self.retry_after = max(1, math.ceil(timeout))
        self.poll_every = poll_every
        self.keep_seconds = keep_seconds
        self._waiting: dict[int, asyncio.Event] = {}
        self._replies: dict[int, dict[str, Any]] = {}  # answers that came in the reply's NOTIFY itself
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        # With leases the lease row tells whether anyone drives a PBX: nobody (no row, or expired by the
        # database's clock) is answered at once; without [cluster] there is no row, so only the timeout can tell.
        self.leases = isinstance(ownership, LeasedOwnership)
        self.issued = self.executed = self.timeouts = self.unowned = 0

    def health(self) -> dict[str, Any]:
        """``forwarding``: counters of the commands sent to other instances and run for them."""
        return {"state": "up", "issued": self.issued, "executed": self.executed, "timeouts": self.timeouts,
                "unowned": self.unowned, "waiting": len(self._waiting), "running": len(self._running)}

    @property
    def instance_id(self) -> str:
        return self.ownership.instance_id

    def serves(self, pbx_key: str, port: str) -> bool:
        """True when an action of ``port`` on ``pbx_key`` runs here: we drive that PBX and have the port."""
        return getattr(self.local, port) is not None and self.ownership.owns(pbx_key)

    # -- issuing ------------------------------------------------------------------------------

    async def call(self, pbx_key: str, port: str, method: str, args: dict[str, Any]) -> Any:
        """Run ``port.method(**args)`` on ``pbx_key``'s owner and return its reply (JSON) or raise its error.

        Waits only while someone holds the PBX's lease: with nobody alive (checked as the command is issued and at
        every poll) the answer is a 503 at once — waiting ``command_timeout`` for no one helps nobody."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.timeout
        issued = await issue_command(self.pool, pbx_key=pbx_key, port=port, method=method, args=to_json(args),
                                     issued_by=self.instance_id, timeout=self.timeout, only_if_held=self.leases)
        if issued is None:
            raise self._unowned(pbx_key, port, method, None)
        command_id = issued
        self.issued += 1
        answered = self._waiting[command_id] = asyncio.Event()
        try:
            await self.bus.publish(COMMAND_TOPIC, {"id": command_id, "pbx": pbx_key})
            while (remaining := give_up - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):  # the reply's NOTIFY, or a look at the row every poll
                    async with asyncio.timeout(min(self.poll_every, remaining)):
                        await answered.wait()
                answered.clear()
                if (carried := self._replies.pop(command_id, None)) is not None:
                    return self._carried(carried)
                if self.leases:
                    command, held = await get_command_and_holder(self.pool, command_id)
                else:
                    command, held = await get_command(self.pool, command_id), True
                if command is not None and command.state in ("done", "failed"):
                    return self._answer(command)
                if not held and command is not None and command.state == "pending":
                    break  # its holder's lease ran out and nobody took it over: nobody will claim it
            command = await abandon_command(self.pool, command_id)
        finally:
            self._waiting.pop(command_id, None)
            self._replies.pop(command_id, None)
        if command is not None and command.state in ("done", "failed"):
            return self._answer(command)
        taken = command is not None and command.state == "running"
        if not taken and give_up - loop.time() > 0:
            raise self._unowned(pbx_key, port, method, command_id)
        self.timeouts += 1
        log.warning("event=forward_timeout pbx=%s port=%s method=%s command=%d state=%s", pbx_key, port, method,
                    command_id, command.state if command else "gone")
        if taken:
            raise OwnerUnavailable(f"the instance driving PBX {pbx_key!r} took the action but did not answer within "
                                   f"{self.timeout:g} s: it may have been carried out", code="owner_timeout",
                                   retry_after=self.retry_after) from None
        raise OwnerUnavailable(f"no instance driving PBX {pbx_key!r} answered within {self.timeout:g} s: the action "
                               "was not carried out; try again shortly", retry_after=self.retry_after)

    def _unowned(self, pbx_key: str, port: str, method: str, command_id: int | None) -> OwnerUnavailable:
        """Nobody holds ``pbx_key``'s lease: a standby takes an expired one within about a second, so retry then."""
        self.unowned += 1
        log.warning("event=forward_unowned pbx=%s port=%s method=%s command=%s: no instance holds the lease",
                    pbx_key, port, method, command_id if command_id is not None else "-")
        return OwnerUnavailable(f"no instance drives PBX {pbx_key!r} right now (its lease is free): the action was "
                                "not carried out; try again shortly", retry_after=1)

    def _carried(self, data: dict[str, Any]) -> Any:
        if data.get("error") is not None:
            raise decode_error(data["error"])
        return data.get("reply")

    def _answer(self, command: Command) -> Any:
        if command.state == "failed":
            raise decode_error(command.error or {})
        return (command.reply or {}).get("value")

    # -- serving ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CommandChannel]:
        """Listen for replies (and, when we drive a PBX, for commands) for the service's life."""
        sub = self.bus.subscribe(COMMAND_TOPIC, REPLY_TOPIC, maxsize=10_000)
        tasks = [asyncio.create_task(self._listen(sub), name="forward-listen"),
                 asyncio.create_task(self._serve(), name="forward-serve")]
        try:
            yield self
        finally:
            self.bus.unsubscribe(sub)
            for task in [*tasks, *self._running]:
                task.cancel()
            for task in [*tasks, *self._running]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _listen(self, sub: Any) -> None:
        while True:
            event = await sub.get()
            if event.topic == COMMAND_TOPIC:
                self._wake.set()
            elif event.topic == REPLY_TOPIC:
                waiter = self._waiting.get(command_id := int(event.data.get("id", 0)))
                if waiter is not None:
                    if "state" in event.data:
                        self._replies[command_id] = event.data
                    waiter.set()

    def _servable(self) -> list[str]:
        if all(getattr(self.local, port) is None for port in PORT_METHODS):
            return []
        return [key for key in self.pbx_keys if self.ownership.owns(key)]

    async def _serve(self) -> None:
        """Claim what is addressed to our PBXs (on a NOTIFY, or every two polls in case one was lost)."""
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_every * 2):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if loop.time() >= next_purge:
                    next_purge = loop.time() + 60
                    await purge_commands(self.pool, older_than=self.keep_seconds)
                keys = self._servable()
                while keys and (command := await claim_command(self.pool, keys, self.instance_id)) is not None:
                    task = asyncio.create_task(self._run(command), name=f"forward-run-{command.id}")
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
            except _STORE_ERRORS as exc:
                log.warning("event=forward_claim_failed error=%s", type(exc).__name__)

    async def _run(self, command: Command) -> None:
        reply: Any = None
        error: dict[str, Any] | None = None
        try:
            reply = to_json(await self._perform(command))
        except (DomainError, InvalidNumber) as exc:
            error = encode_error(exc)
        except Exception as exc:
            log.exception("event=forward_command_failed command=%d port=%s method=%s", command.id, command.port,
                          command.method)
            error = encode_error(exc)
        self.executed += 1
        try:
            await finish_command(self.pool, command.id, self.instance_id, reply=reply, error=error)
        except _STORE_ERRORS as exc:  # the issuer times out: its 503 says the action may have been carried out
            log.warning("event=forward_reply_failed command=%d error=%s", command.id, type(exc).__name__)
            return
        notice: dict[str, Any] = {"id": command.id, "issuer": command.issued_by}
        answer = {"state": "failed" if error is not None else "done", "reply": reply, "error": error}
        if len(json.dumps(answer, default=str)) < MAX_CARRIED:  # small: the NOTIFY carries it (one query less)
            notice |= answer
        await self.bus.publish(REPLY_TOPIC, notice)

    async def _perform(self, command: Command) -> Any:
        if command.method not in PORT_METHODS.get(command.port, frozenset()):
            raise DomainError(f"{command.port}.{command.method} is not an action another instance may ask for")
        port = getattr(self.local, command.port)
        if port is None or not self.ownership.owns(command.pbx_key):
            raise OwnerUnavailable(f"this instance no longer drives PBX {command.pbx_key!r}: try again shortly",
                                   retry_after=self.retry_after)
        log.info("event=forward_command command=%d pbx=%s port=%s method=%s issuer=%s", command.id,
                 command.pbx_key, command.port, command.method, command.issued_by)
        result = await getattr(port, command.method)(**from_json_args(command.args))
        return scoped(command.method, result, (command.pbx_key,))


# -- the routing ports ----------------------------------------------------------------------------

class _Router:
    port = ""

    def _unknown_pbx(self, key: str) -> DomainError:
        """What the ARI app's port answers for a PBX it has no ARI connection to (the same words)."""
        return NotFound(f"PBX {key!r} is not an Asterisk this service controls")

    def __init__(self, config: Config, pool: asyncpg.Pool, channel: CommandChannel) -> None:
        self.config, self.pool, self.channel = config, pool, channel
        self.keys = channel.pbx_keys

    async def _on(self, key: str, method: str, port: str = "", **kwargs: Any) -> Any:
        """``method`` on ``key``'s PBX: here when we drive it, else by its owner (the reply as JSON)."""
        port = port or self.port
        if key not in self.keys:
            raise self._unknown_pbx(key)
        if self.channel.serves(key, port):
            return await getattr(getattr(self.channel.local, port), method)(**kwargs)
        return await self.channel.call(key, port, method, kwargs)

    def _all_here(self) -> bool:
        """Every PBX is driven here (one instance, or the owner of all): the local port decides as it always did."""
        return all(self.channel.serves(key, self.port) for key in self.keys)

    @property
    def _here(self) -> Any:
        return getattr(self.channel.local, self.port)

    async def _facts(self, extension: str) -> dict[str, dict[str, bool]]:
        """Per PBX: whether its Asterisk has ``extension``'s endpoint and whether the phone is registered there,
        from each PBX's owner (an owner that does not answer now tells nothing about its PBX)."""
        facts: dict[str, dict[str, bool]] = {}
        for group, part in await self._each("extension_facts", strict=False, port="live", extension=extension):
            facts.update({k: v for k, v in part.items() if k in group})
        return facts

    async def _home(self, extension: str) -> str | None:
        """The PBX of ``extension`` by the rule of ``ari_app.homes`` over every owner's facts: the one Asterisk
        that has it; of several, the one where it is registered; registered on several is a 409."""
        facts = await self._facts(extension)
        having = [key for key in self.keys if facts.get(key, {}).get("known")]
        if len(having) <= 1:
            return having[0] if having else None
        registered = [key for key in having if facts[key].get("registered")]
        if len(registered) == 1:
            return registered[0]
        raise Conflict(f"extension {extension} is on several PBXs ({', '.join(having)}): name the pbx")

    async def _each(self, method: str, *, strict: bool, port: str = "",
                    **kwargs: Any) -> list[tuple[tuple[str, ...], Any]]:
        """``method`` on every PBX: one local call for the PBXs we drive, one command per other PBX, at once."""
        port = port or self.port
        here = tuple(k for k in self.keys if self.channel.serves(k, port))
        groups = ([here] if here else []) + [(k,) for k in self.keys if k not in here]
        jobs = [self._on(group[0], method, port=port, **kwargs) for group in groups]
        answers = await asyncio.gather(*jobs, return_exceptions=True)
        out: list[tuple[tuple[str, ...], Any]] = []
        for group, answer in zip(groups, answers, strict=True):
            if isinstance(answer, BaseException):
                if strict or not isinstance(answer, Exception):
                    raise answer
                log.warning("event=forward_view_partial method=%s pbx=%s error=%s", method, ",".join(group),
                            type(answer).__name__)
                continue
            out.append((group, scoped(method, answer, group)))
        return out


class RoutingCallControl(_Router):
    """``CallControl`` wherever the call's PBX is driven."""

    port = "call_control"

    async def _key_of_call(self, call_id: uuid.UUID) -> str | None:
        if len(self.keys) == 1:
            return self.keys[0]
        row = await calllog.get_call(self.pool, call_id)
        return str(row["pbx"]) if row is not None and row["pbx"] in self.keys else None

    async def _on_call(self, call_id: uuid.UUID, method: str, **kwargs: Any) -> Any:
        if self._all_here():
            return await getattr(self._here, method)(call_id, **kwargs)
        key = await self._key_of_call(call_id)
        if key is not None:
            return await self._on(key, method, call_id=call_id, **kwargs)
        refused: DomainError | None = None  # not stored yet: each owner in turn, the one that has it acts
        for key in self.keys:
            try:
                return await self._on(key, method, call_id=call_id, **kwargs)
            except (NotFound, OwnerUnavailable) as exc:
                refused = exc if refused is None or isinstance(refused, OwnerUnavailable) else refused
        raise refused or NotFound("the call is not in progress")

    async def originate(self, *, extension: str, number: str, caller_id: str | None = None,
                        pbx: str | None = None, route: OutboundRoute | None = None) -> uuid.UUID:
        if self._all_here():
            local: uuid.UUID = await self._here.originate(extension=extension, number=number, caller_id=caller_id,
                                                          pbx=pbx, route=route)
            return local
        key = route.pbx if route is not None else pbx or await self._home(extension)
        if key is None and len(self.keys) > 1:
            raise Conflict(f"extension {extension!r} does not exist on any Asterisk ({', '.join(self.keys)})")
        call_id = await self._on(key or self.keys[0], "originate", extension=extension, number=number,
                                 caller_id=caller_id, pbx=key, route=route)
        return call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(str(call_id))

    async def hangup(self, call_id: uuid.UUID) -> None:
        await self._on_call(call_id, "hangup")

    async def hold(self, call_id: uuid.UUID) -> None:
        await self._on_call(call_id, "hold")

    async def unhold(self, call_id: uuid.UUID) -> None:
        await self._on_call(call_id, "unhold")

    async def blind_transfer(self, call_id: uuid.UUID, target: str) -> None:
        await self._on_call(call_id, "blind_transfer", target=target)

    async def start_recording(self, call_id: uuid.UUID) -> str:
        return str(await self._on_call(call_id, "start_recording"))

    async def stop_recording(self, call_id: uuid.UUID) -> None:
        await self._on_call(call_id, "stop_recording")

    async def attended_transfer(self, call_id: uuid.UUID, target: str) -> None:
        await self._on_call(call_id, "attended_transfer", target=target)

    async def complete_transfer(self, call_id: uuid.UUID) -> None:
        await self._on_call(call_id, "complete_transfer")

    async def cancel_transfer(self, call_id: uuid.UUID) -> None:
        await self._on_call(call_id, "cancel_transfer")

    async def conference(self, call_id: uuid.UUID, number: str) -> None:
        await self._on_call(call_id, "conference", number=number)

    async def conference_call(self, call_id: uuid.UUID, other_call_id: uuid.UUID) -> None:
        await self._on_call(call_id, "conference_call", other_call_id=other_call_id)

    async def remove_party(self, call_id: uuid.UUID, channel: str) -> None:
        await self._on_call(call_id, "remove_party", channel=channel)


class RoutingLiveView(_Router):
    """``LiveView``: every PBX's part of the snapshot from its owner, merged; a PBX whose owner does not answer
    shows as not connected (the board shows what it can rather than nothing)."""

    port = "live"

    async def snapshot(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"extensions": [], "calls": [], "trunks": [], "queues": [],
                                  "connected": {key: False for key in self.keys}}
        for _group, part in await self._each("snapshot", strict=False):
            for name in ("extensions", "calls", "trunks", "queues"):
                merged[name] += part.get(name) or []
            merged["connected"].update(part.get("connected") or {})
        return merged

    async def extension_facts(self, extension: str) -> dict[str, dict[str, bool]]:
        return await self._facts(extension)


class RoutingMonitorControl(_Router):
    """``MonitorControl``: a session is started on the target's PBX and switched or stopped on its own."""

    port = "monitor_control"

    def _unknown_pbx(self, key: str) -> DomainError:
        return InvalidMonitorRequest(f"PBX {key!r} has no ARI connection")

    async def start(self, *, supervisor_extension: str, target_extension: str, mode: str,
                    pbx: str | None = None) -> str:
        if self._all_here():
            local: str = await self._here.start(supervisor_extension=supervisor_extension,
                                                target_extension=target_extension, mode=mode, pbx=pbx)
            return local
        key = pbx or await self._supervisors_pbx(supervisor_extension, target_extension)
        await self._same_pbx(key or self.keys[0], supervisor_extension, target_extension, mode)
        return str(await self._on(key or self.keys[0], "start", supervisor_extension=supervisor_extension,
                                  target_extension=target_extension, mode=mode, pbx=key))

    async def _supervisors_pbx(self, supervisor: str, target: str) -> str | None:
        """Where to ring the supervisor (the rule of ``ari_app.monitor.control``): where its phone is, with the
        agent when it has phones on several."""
        facts, target_facts = await self._facts(supervisor), await self._facts(target)
        phones = [key for key in self.keys if facts.get(key, {}).get("known")]
        with_target = [key for key in phones if target_facts.get(key, {}).get("known")]
        if len(with_target) == 1:
            return with_target[0]
        if len(phones) == 1:
            return phones[0]
        if not phones:
            raise SupervisorUnavailable(f"extension {supervisor} is not a phone on any Asterisk "
                                        f"({', '.join(self.keys)})")
        return await self._home(supervisor)

    async def _same_pbx(self, key: str, supervisor: str, target: str, mode: str) -> None:
        """An agent on another Asterisk than the supervisor's phone is refused (after the monitor groups)."""
        facts = await self._facts(target)
        having = [k for k in self.keys if facts.get(k, {}).get("known")]
        if not having or key in having:
            return
        grant = await monitor_groups.grant_for(self.pool, supervisor, target)
        check_level(grant.level if grant else None, parse_mode(mode), supervisor=supervisor, target=target)
        raise OtherPbx(f"extension {target} is on {', '.join(having)}, the supervisor's phone {supervisor} on "
                       f"{key}: monitoring does not cross PBXs (listen from a phone on {having[0]})")

    async def _key_of_session(self, session_id: str) -> str:
        if len(self.keys) == 1:
            return self.keys[0]
        for session in await self.sessions():
            if session.get("session_id") == session_id and session.get("pbx") in self.keys:
                return str(session["pbx"])
        raise SessionNotFound("no such monitoring session")

    async def switch(self, session_id: str, mode: str) -> None:
        if self._all_here():
            return await self._here.switch(session_id, mode)  # type: ignore[no-any-return]
        await self._on(await self._key_of_session(session_id), "switch", session_id=session_id, mode=mode)

    async def stop(self, session_id: str) -> None:
        if self._all_here():
            return await self._here.stop(session_id)  # type: ignore[no-any-return]
        await self._on(await self._key_of_session(session_id), "stop", session_id=session_id)

    async def sessions(self) -> list[dict[str, Any]]:
        """Strict: a missing owner is a 503, not a list that silently lacks its sessions."""
        return [s for _group, part in await self._each("sessions", strict=True) for s in part]


class RoutingPickupControl(_Router):
    """``PickupControl``: the picker's phone rings on its own PBX, where the ringing call must be."""

    port = "pickup"

    async def pickable(self, picker: str) -> list[dict[str, Any]]:
        return [c for _group, part in await self._each("pickable", strict=False, picker=picker) for c in part]

    async def pickup(self, *, picker: str, target: str, pbx: str | None = None) -> uuid.UUID:
        if self._all_here():
            local: uuid.UUID = await self._here.pickup(picker=picker, target=target, pbx=pbx)
            return local
        key = pbx or await self._home(picker)
        call_id = await self._on(key or self.keys[0], "pickup", picker=picker, target=target, pbx=key)
        return call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(str(call_id))


class RoutingQueueControl(_Router):
    """``QueueControl``: a queue lives on its ``[[queue]] pbx``."""

    port = "queue_control"

    def _key_of_queue(self, queue: str) -> str:
        try:
            key = self.config.queue_by_name(queue).pbx
        except KeyError:
            raise NotFound(f"no queue named {queue!r}") from None
        return key if key in self.keys else self.keys[0]

    async def pause(self, queue: str | None, extension: str, paused: bool, reason: str = "") -> None:
        """One queue on its PBX; None: every configured queue ``extension`` is a member of, each on its PBX."""
        if self._all_here():
            return await self._here.pause(queue, extension, paused, reason)  # type: ignore[no-any-return]
        names = [queue] if queue is not None else [q.name for q in self.config.queues if extension in q.members]
        changed = 0
        for name in names:
            try:
                await self._on(self._key_of_queue(name), "pause", queue=name, extension=extension, paused=paused,
                               reason=reason)
                changed += 1
            except NotFound:
                if queue is not None:
                    raise
        if not changed:
            raise NotFound(f"extension {extension} is not a member of {queue or 'any queue'}")

    async def status(self, queue: str) -> dict[str, Any]:
        if self._all_here():
            here: dict[str, Any] = await self._here.status(queue)
            return here
        status: dict[str, Any] = await self._on(self._key_of_queue(queue), "status", queue=queue)
        return status


def asterisk_keys(config: Config) -> list[str]:
    """The PBXs the ARI app drives (an Asterisk with ``ari``), in file order: the ones actions can go to."""
    return [p.key for p in config.pbx if p.kind == "asterisk" and p.ari is not None]


def routing_ports(ctx: ServiceContext, channel: CommandChannel) -> Ports:
    """The API's ports: routers over ``channel`` (no Asterisk configured: none, and the API says 503)."""
    if not channel.pbx_keys:
        return Ports()
    args = (ctx.config, ctx.store.pool, channel)
    return Ports(call_control=RoutingCallControl(*args), monitor_control=RoutingMonitorControl(*args),
                 live=RoutingLiveView(*args), queue_control=RoutingQueueControl(*args),
                 pickup=RoutingPickupControl(*args))
