"""Holds, MOH and recordings as the audio model and the recordings directory see them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from tests.waiting import eventually

DIALPLAN = "[from-internal]\nexten => _X.,1,Stasis(cc,${EXTEN})\n"
AUTH = {"Authorization": aiohttp.encode_basic_auth("cc", "cc")}  # type: ignore[attr-defined]


@pytest.fixture
async def bridged(tmp_path: Path) -> AsyncIterator[tuple[Simulator, aiohttp.ClientSession, str, str, str]]:
    """1001 called in (Stasis) and 1002 originated by the app, both in one mixing bridge."""
    config = SimConfig(user="cc", password="cc", phones=["1001", "1002"], dialplan_text=DIALPLAN,
                       recordings_dir=str(tmp_path / "monitor"), ami_port=None, time_scale=0.05)
    async with Simulator(config) as sim, aiohttp.ClientSession(headers=AUTH) as http:
        ws = await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=cc")
        for ext in ("1001", "1002"):
            await sim.phone(ext).register()
        caller = await sim.phone("1001").dial("500")
        await eventually(lambda: sim.engine.channels[caller].stasis_app, what="the caller in Stasis")
        await http.post(f"{sim.ari_url}/channels/{caller}/answer")
        agent = (await (await http.post(f"{sim.ari_url}/channels", params={
            "endpoint": "PJSIP/1002", "app": "cc"})).json())["id"]
        await eventually(lambda: sim.engine.channels[agent].stasis_app, what="the agent in Stasis")
        bridge = (await (await http.post(f"{sim.ari_url}/bridges", params={"type": "mixing"})).json())["id"]
        await http.post(f"{sim.ari_url}/bridges/{bridge}/addChannel", params={"channel": f"{caller},{agent}"})
        yield sim, http, caller, agent, bridge
        await ws.close()


async def test_ari_hold_plays_music_to_the_held_channel_while_the_other_party_still_hears_it(bridged: tuple) -> None:
    """As measured on a real Asterisk 22 with SIP phones (tests/sim/captures/sip-queue.jsonl, notes)."""
    sim, http, caller, agent, _bridge = bridged
    assert sim.who_hears_whom() == {"1001": {"1002"}, "1002": {"1001"}}
    assert (await http.post(f"{sim.ari_url}/channels/{agent}/hold")).status == 204
    assert sim.who_hears_whom() == {"1001": {"1002"}, "1002": {"moh"}}
    await http.delete(f"{sim.ari_url}/channels/{agent}/hold")
    assert sim.who_hears_whom() == {"1001": {"1002"}, "1002": {"1001"}}
    await http.post(f"{sim.ari_url}/channels/{caller}/mute", params={"direction": "in"})
    assert sim.who_hears_whom() == {"1001": {"1002"}, "1002": set()}


async def test_bridge_moh_reaches_every_member(bridged: tuple) -> None:
    sim, http, _caller, _agent, bridge = bridged
    await http.post(f"{sim.ari_url}/bridges/{bridge}/moh")
    assert sim.who_hears_whom() == {"1001": {"1002", "moh"}, "1002": {"1001", "moh"}}


async def test_a_tone_on_a_bridge_plays_until_it_is_stopped(bridged: tuple) -> None:
    """As ``ast_control_tone`` on a real Asterisk 22: ``tone:`` loops (no PlaybackFinished of its own) until
    DELETE /playbacks; a ``;tonezone=`` part is allowed, any other part fails the playback."""
    sim, http, _caller, _agent, bridge = bridged
    resp = await http.post(f"{sim.ari_url}/bridges/{bridge}/play/ring-1", params={"media": "tone:ring;tonezone=fr"})
    assert resp.status == 201, await resp.text()
    heard = {"1001": {"1002", "tone:ring;tonezone=fr"}, "1002": {"1001", "tone:ring;tonezone=fr"}}
    await eventually(lambda: sim.who_hears_whom() == heard, what="both hear the ringing tone")
    await sim.engine.sleep(5.0)  # simulated seconds: any other 1 s media (digits:, number:) is over by now
    assert sim.who_hears_whom() == heard
    assert (await http.get(f"{sim.ari_url}/playbacks/ring-1")).status == 200
    assert (await http.delete(f"{sim.ari_url}/playbacks/ring-1")).status == 204
    await eventually(lambda: sim.who_hears_whom() == {"1001": {"1002"}, "1002": {"1001"}}, what="the tone stopped")
    assert (await http.delete(f"{sim.ari_url}/playbacks/ring-1")).status == 404
    resp = await http.post(f"{sim.ari_url}/bridges/{bridge}/play/ring-2", params={"media": "tone:ring;zone=fr"})
    assert resp.status == 201

    async def failed() -> bool:
        return (await http.get(f"{sim.ari_url}/playbacks/ring-2")).status == 404

    await eventually(failed, what="a tone URI ast_control_tone cannot parse fails")


async def test_bridge_recording_with_dated_name_writes_a_wav_under_subdirectories(bridged: tuple) -> None:
    sim, http, _caller, _agent, bridge = bridged
    name = "2026/11/25/call-1"
    resp = await http.post(f"{sim.ari_url}/bridges/{bridge}/record", params={"name": name, "format": "wav"})
    assert resp.status == 201

    async def recording() -> bool:  # "queued" until the recorder joins the bridge
        live = await (await http.get(f"{sim.ari_url}/recordings/live/2026%2F11%2F25%2Fcall-1")).json()
        return bool(live["state"] == "recording")
    await eventually(recording, what="the live recording started")
    await http.post(f"{sim.ari_url}/recordings/live/2026%2F11%2F25%2Fcall-1/stop")
    path = Path(sim.config.recordings_dir) / "2026/11/25/call-1.wav"
    assert path.read_bytes()[:4] == b"RIFF" and path.stat().st_size > 44
    stored = await (await http.get(f"{sim.ari_url}/recordings/stored")).json()
    assert {"name": name, "format": "wav"} in stored
