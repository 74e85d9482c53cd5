"""Click-to-call and call control through the API, against a recording CallControl port."""

from __future__ import annotations

import uuid

from api.routes.call_control import NUMBER_PATTERN
from api.schemas import pattern_matches
from callcenter.numbers import clean

from .conftest import Api, RecordingCallControl, add_call


def connect(api: Api) -> RecordingCallControl:
    port = RecordingCallControl()
    api.ctx.ports.call_control = port
    return port


async def test_click_to_call_answers_202_with_the_call_id(api: Api) -> None:
    port = connect(api)
    response = await api.client.post("/api/v1/calls", json={"extension": "201", "number": "+44 20 7946-0001"},
                                     headers=api.auth("agent"))
    assert response.status == 202
    assert (await response.json())["call_id"] == str(port.new_id)
    assert port.calls == [("originate", ("201", "+442079460001", None, None))]


async def test_dial_string_injection_is_refused_naming_the_field(api: Api) -> None:
    port = connect(api)
    for bad in ("123&PJSIP/evil", "123,,w", "123/456", "sip:1@evil", "12(3", "123\nChannel: x", "abc"):
        response = await api.client.post("/api/v1/calls", json={"extension": "201", "number": bad},
                                         headers=api.auth("admin"))
        assert response.status == 400, bad
        error = (await response.json())["error"]
        assert error["field"] == "body.number" and error["reason"]
    for body, field in (({"extension": "20;1", "number": "1"}, "body.extension"),
                        ({"number": "1"}, "body.extension"),
                        ({"extension": "201", "number": "1", "caller_id": "x\r\nVariable: y"}, "body.caller_id"),
                        ({"extension": "201", "number": "1", "pbx": "nowhere"}, "body.pbx"),
                        ({"extension": "201", "number": "1", "extra": 1}, "body.extra")):
        response = await api.client.post("/api/v1/calls", json=body, headers=api.auth("admin"))
        assert response.status == 400 and (await response.json())["error"]["field"] == field, body
    assert port.calls == []


async def test_a_caller_id_name_is_refused_by_the_schema_and_reaches_nothing(api: Api) -> None:
    port = connect(api)
    for name in ("ACME Sales", '"ACME" <100>', "100 <200>", "12(3"):
        response = await api.client.post("/api/v1/calls", json={"extension": "201", "number": "100",
                                                                 "caller_id": name}, headers=api.auth("admin"))
        assert response.status == 400, name
        error = (await response.json())["error"]
        assert error["field"] == "body.caller_id" and "phone number" in error["reason"], name
    assert port.calls == []
    ok = await api.client.post("/api/v1/calls", json={"extension": "201", "number": "100",
                                                      "caller_id": "+44 20 7946-0000"}, headers=api.auth("admin"))
    assert ok.status == 202
    assert port.calls == [("originate", ("201", "100", "+442079460000", None))]


def test_every_number_the_schema_allows_is_dialable() -> None:
    """The OpenAPI's number pattern is no wider than callcenter.numbers.clean: what it allows is dialled."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @given(st.from_regex(NUMBER_PATTERN))
    @settings(max_examples=300, deadline=None, database=None)
    def allowed_is_dialable(raw: str) -> None:
        if pattern_matches(NUMBER_PATTERN, raw):
            assert clean(raw)

    allowed_is_dialable()
    for bad in ("1\n", "1\r", "(1)(2)", "+1+2", "0" * 33, "1&2", " "):
        assert not pattern_matches(NUMBER_PATTERN, bad), bad


async def test_an_agent_may_only_dial_from_its_own_extension(api: Api) -> None:
    connect(api)
    response = await api.client.post("/api/v1/calls", json={"extension": "202", "number": "100"},
                                     headers=api.auth("agent"))
    assert response.status == 403


async def test_domain_errors_keep_their_status(api: Api) -> None:
    connect(api)
    response = await api.client.post("/api/v1/calls", json={"extension": "999", "number": "100"},
                                     headers=api.auth("admin"))
    assert response.status == 409
    assert "not registered" in (await response.json())["error"]["message"]


async def test_without_asterisk_every_action_is_503(api: Api) -> None:
    call = await add_call(api.ctx.store, 1)
    response = await api.client.post("/api/v1/calls", json={"extension": "201", "number": "100"},
                                     headers=api.auth("admin"))
    assert response.status == 503 and "no Asterisk connected" in (await response.json())["error"]["message"]
    held = await api.client.post(f"/api/v1/calls/{call['id']}/hold", headers=api.auth("admin"))
    assert held.status == 503


async def test_control_actions_reach_the_port(api: Api) -> None:
    port = connect(api)
    call = await add_call(api.ctx.store, 1, extension="201")
    cid, base = call["id"], f"/api/v1/calls/{call['id']}"
    headers = api.auth("agent")
    assert (await api.client.post(f"{base}/hold", headers=headers)).status == 202
    assert (await api.client.post(f"{base}/unhold", headers=headers)).status == 202
    assert (await api.client.post(f"{base}/transfer", json={"target": "202"}, headers=headers)).status == 202
    assert (await api.client.post(f"{base}/transfer", json={"target": "203", "attended": True},
                                  headers=headers)).status == 202
    started = await api.client.post(f"{base}/recording", headers=headers)
    assert (await started.json())["recording"] == "x.wav"  # the file name, not the server path
    assert (await api.client.delete(f"{base}/recording", headers=headers)).status == 404
    assert (await api.client.post(f"{base}/hangup", headers=headers)).status == 202
    assert (await api.client.delete(base, headers=headers)).status == 202
    assert [c[0] for c in port.calls] == ["hold", "unhold", "blind_transfer", "attended_transfer",
                                          "start_recording", "hangup", "hangup"]
    assert port.calls[2][1] == (cid, "202")
    conference = await api.client.post(f"{base}/conference", json={"number": "300"}, headers=headers)
    assert conference.status == 202 and port.calls[-1] == ("conference", (cid, "300"))
    bad = await api.client.post(f"{base}/transfer", json={"target": "1&2"}, headers=headers)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "body.target"


async def test_a_call_the_token_cannot_see_cannot_be_controlled(api: Api) -> None:
    port = connect(api)
    other = await add_call(api.ctx.store, 1, extension="299")
    response = await api.client.post(f"/api/v1/calls/{other['id']}/hangup", headers=api.auth("agent"))
    assert response.status == 404
    unknown = await api.client.post(f"/api/v1/calls/{uuid.uuid4()}/hangup", headers=api.auth("agent"))
    assert unknown.status == 404
    assert port.calls == []
