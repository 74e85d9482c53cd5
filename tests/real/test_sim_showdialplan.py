"""The simulator answers AMI ShowDialPlan (what `callcenter doctor` asks) as the real Asterisk 22 does."""

from __future__ import annotations

from typing import Any

import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.config import AmiSettings
from callcenter.doctor import AmiClient
from tests.real.asterisk import RealAsterisk

QUERIES = [("callcenter-monitor", ""), ("callcenter-tag-inbound", ""), ("from-internal", "*3361001"),
           ("from-trunk", "*3361001"), ("from-internal", "1002"), ("no-such-context", "")]


async def show(ami: AmiSettings, context: str, extension: str) -> list[dict[str, Any]]:
    """Every message of one ShowDialPlan answer, without the ActionID."""
    client = await AmiClient.connect(ami)
    try:
        login = await client.action({"Action": "Login", "Username": ami.username, "Secret": ami.secret,
                                     "Events": "off"})
        assert login["Response"] == "Success", login
        fields = {"Action": "ShowDialPlan", "Context": context, **({"Extension": extension} if extension else {})}
        first = await client.action(fields)
        messages = [first]
        while first.get("Response") == "Success":
            message = await client.read_message()
            if message.get("ActionID") == first["ActionID"]:
                messages.append(message)
                if message.get("EventList") == "Complete":
                    break
        return [{k: v for k, v in m.items() if k not in ("ActionID", "Output")} for m in messages]
    finally:
        client.close()


@pytest.mark.parametrize(("context", "extension"), QUERIES)
async def test_show_dialplan_answers_like_asterisk(asterisk: RealAsterisk, context: str, extension: str) -> None:
    site = asterisk.site
    real = await show(AmiSettings(port=site.ami_port, username=site.ami_user, secret=site.ami_secret), context,
                      extension)
    extensions = asterisk.etc / "extensions.conf"
    config = SimConfig(ami_user="doctor", ami_secret="doctor", ami_port=0, ami_failed_login_delay=0.05,
                       dialplan_text=extensions.read_text(), dialplan_file=str(extensions))
    async with Simulator(config) as sim:
        simulated = await show(AmiSettings(port=sim.ami_port, username="doctor", secret="doctor"), context, extension)
    assert simulated == real
