"""Stasis control beyond enter/leave: continue, move, redirect and variable access."""

from __future__ import annotations

from asterisk_sim.bridges import BridgeOps
from asterisk_sim.channels import ChannelOps
from asterisk_sim.core import EngineCore
from asterisk_sim.dialplan import Context, Priority
from asterisk_sim.dialplan_flow import Goto, lookup_for
from asterisk_sim.errors import AriError
from asterisk_sim.model import ENTITY_ID, Channel, ari_time, parse_callerid

_FUNCTIONS = ("CALLERID(", "CHANNEL(", "CONNECTEDLINE(", "GLOBAL(", "LEN(")


class StasisOps:
    """Stasis control beyond enter/leave, for ARI and AMI: the engine's ``stasis_ops``."""

    def __init__(self, core: EngineCore, channel_ops: ChannelOps, bridge_ops: BridgeOps) -> None:
        self.core = core
        self.channel_ops = channel_ops
        self.bridge_ops = bridge_ops

    async def wait_stasis(self, ch: Channel) -> None:
        """Block a dialplan Stasis() until the channel leaves the app; /continue targets become a Goto."""
        future = ch.stasis_exit
        if future is not None:
            await future
        target = ch.continue_to
        ch.continue_to = None
        if target is not None and any(t is not None for t in target):
            context, exten, priority = target
            raise Goto(context, exten, priority if priority is not None else 1)

    def continue_in_dialplan(self, ch: Channel, context: str | None, exten: str | None,
                             priority: int | str | None) -> None:
        ch.continue_to = (context, exten, priority)
        in_dialplan = ch.task is not None and not ch.task.done()
        self.channel_ops.leave_stasis(ch, continuing=True)
        if in_dialplan:
            return
        ch.continue_to = None
        ch.continued = True
        if context:
            ch.context = context
        if exten:
            ch.exten = exten
        start: int | str = priority if priority is not None else (ch.priority + 1 if not (context or exten) else 1)
        self.core.start_dialplan(ch, None, None, start)

    def move_channel(self, ch: Channel, app: str, args: list[str]) -> None:
        if not self.core.router.registered(app):
            event = {"type": "ApplicationMoveFailed", "timestamp": ari_time(), "channel": ch.json(),
                     "destination": app, "args": args}
            self.core.router.publish(event, channel_ids=(ch.id,))
            return
        old = ch.stasis_app
        self.core.channel_event(ch, "StasisEnd")
        self.core.router.subscribe_channel(app, ch.id)
        if old and old != app:
            self.core.router.apps[old].channels.discard(ch.id) if old in self.core.router.apps else None
        ch.stasis_app, ch.stasis_args = app, args
        ch.app_data = ",".join([app, *args])
        self.core.channel_event(ch, "StasisStart", post={"args": args})

    def redirect(self, ch: Channel, endpoint: str) -> None:
        """A Local channel cannot be transferred (204, nothing happens); PJSIP would send a 302 we don't model."""
        return None

    def redirect_to(self, ch: Channel, context: str, exten: str, priority: str) -> None:
        """AMI Redirect (ast_async_goto): leave Stasis/the current app/the bridge and run the dialplan at the target.

        A Dial() caller redirected out of its bridge: Dial ends and hangs up its callee. A Dial() callee
        redirected: it runs the target; the caller's basic bridge dissolves, its Dial returns -1 and it hangs up.
        """
        target = (context or None, exten or None, int(priority) if priority.isdigit() else (priority or 1))
        if ch.stasis_app is not None:
            self.continue_in_dialplan(ch, *target)
            return
        if ch.bridge_id and ch.bridge_id in self.core.bridges:
            # capture sip-dial-redirect: the goto publishes the channel at its new place with the old application
            # (ChannelDialplan/Newexten) before it leaves the bridge; running that priority then shows nothing new
            if ch.variables.get("BRIDGEPEER"):
                self.core.set_var(ch, "BRIDGEPEER", "")
            ch.context, ch.exten = target[0] or ch.context, target[1] or ch.exten
            if isinstance(target[2], int):
                ch.priority = target[2]
                ch.goto_published = (ch.context, ch.exten, ch.priority)
            self.core.channel_event(ch, "ChannelDialplan", post={"dialplan_app": ch.app_name,
                                                            "dialplan_app_data": ch.app_data})
            self.bridge_ops.remove(self.core.bridges[ch.bridge_id], ch)
        left = ch.dial_left
        if left is not None:  # a Dial() callee leaves its caller's bridge (the caller's Dial then ends)
            ch.dial_left = None
            left.set()
        if ch.task is not None and not ch.task.done():
            ch.redirect_to = target
            ch.task.cancel()
            return
        self.core.start_dialplan(ch, target[0], target[1], target[2])

    def app_as_dialplan(self, app: str, data: str) -> dict[str, str]:
        """AMI Originate with Application/Data: run it from a one-line private context."""
        name = f"__ami_{len(self.core.dialplan.contexts)}"
        ctx = Context(name)
        ctx.extensions["s"] = [Priority(1, None, app, data, 0)]
        self.core.dialplan.contexts[name] = ctx
        return {"context": name, "extension": "s", "priority": "1"}

    def read_variable(self, ch: Channel, name: str) -> str:
        if "(" in name:
            if not name.startswith(_FUNCTIONS):
                raise AriError(500, "Unable to read provided function")
            return lookup_for(self.core, ch)(name)
        if name in ("CHANNEL", "UNIQUEID", "EXTEN", "CONTEXT", "PRIORITY"):
            return lookup_for(self.core, ch)(name)
        if name in ch.variables:
            return ch.variables[name]
        if name in self.core.globals:
            return self.core.globals[name]
        raise AriError(404, "Provided variable was not found")

    def write_variable(self, ch: Channel, name: str, value: object, report: bool) -> None:
        if name.startswith("CALLERID("):
            part = name[9:-1]
            if part in ("num", "number"):
                ch.caller_number = str(value or "")
            elif part == "name":
                ch.caller_name = str(value or "")
            elif part == "all":
                ch.caller_name, ch.caller_number = parse_callerid(str(value or ""))
            self.core.channel_event(ch, "ChannelCallerId", post={
                "caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
            return
        if report:
            ch.channelvars = [*(ch.channelvars or []), name] if name not in (ch.channelvars or []) else ch.channelvars
        if value is None:
            ch.variables.pop(name, None)
            self.core.channel_event(ch, "ChannelVarset", pre={"variable": name, "value": ""})
            return
        self.core.set_var(ch, name, str(value))


__all__ = ["ENTITY_ID", "StasisOps"]
