"""The AGI protocol module reads exactly what a real Asterisk 22 sent (13-fastagi.jsonl)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agi_scripts.protocol import (
    AgiProtocolError,
    fastagi_request,
    format_command,
    is_hangup_line,
    parse_environment,
    parse_reply,
    reply_is_complete,
    split_script,
)
from tests.agi.agi_helpers import capture_environments, capture_records


def test_the_captured_environment_parses_with_script_query_and_unknown_placeholders() -> None:
    env = parse_environment(capture_environments()[0])
    request = fastagi_request(env)
    assert request.script == "lab"
    assert request.query == {"from": "dialplan"}
    assert request.uniqueid == "lab13-a2"
    assert env["agi_accountcode"] == ""  # "agi_accountcode: " with nothing after the space
    assert env["agi_callerid"] == "unknown" and request.get("agi_callerid") == ""
    assert request.args == ()


def test_the_captured_agi_arguments_keep_their_spaces_and_order() -> None:
    request = fastagi_request(parse_environment(capture_environments()[1]))
    assert request.script == "lab-args"
    assert request.query == {"x": "1"}
    assert request.args == ("arg one", "arg2")
    assert request.arg(2) == "arg2" and request.arg(3) == ""


def test_every_captured_reply_parses() -> None:
    replies = [r["text"] for r in capture_records() if r["kind"] == "agi_in" and r.get("what") != "environment"]
    parsed = [parse_reply(text.rstrip("\n").split("\n")) for text in replies if not is_hangup_line(text)]
    assert len(parsed) == len(replies) - 2  # two bare HANGUP lines
    by_text = {p.text.split("\n")[0]: p for p in parsed}
    assert by_text["200 result=1 (Local/agi@lab-test-00000030;2)"].data == "Local/agi@lab-test-00000030;2"
    assert by_text["200 result=1 ()"].data == ""
    digit = by_text["200 result=53 endpos=9760"]
    assert (digit.result, digit.endpos, digit.data) == ("53", 9760, None)
    missing = by_text["200 result=-1 endpos=0"]
    assert (missing.result_int, missing.endpos) == (-1, 0)
    assert by_text["200 result=-2"].result_int == -2
    assert by_text["510 Invalid or unknown command"].code == 510
    dead = by_text["511 Command Not Permitted on a dead channel or intercept routine"]
    assert dead.code == 511 and not dead.ok
    usage = [p for p in parsed if p.code == 520]
    assert len(usage) == 3 and all(p.text.endswith("520 End of proper usage.") for p in usage)


def test_a_520_block_is_complete_only_at_its_end_line() -> None:
    text = next(r["text"] for r in capture_records() if r["kind"] == "agi_in" and r["text"].startswith("520-"))
    lines = text.rstrip("\n").split("\n")
    assert not any(reply_is_complete(lines[:n]) for n in range(1, len(lines)))
    assert reply_is_complete(lines)
    assert reply_is_complete(["200 result=0"])


def test_the_bare_hangup_line_is_recognised() -> None:
    hangups = [r["text"] for r in capture_records() if r["kind"] == "agi_in" and r["text"] == "HANGUP\n"]
    assert len(hangups) == 2 and all(is_hangup_line(h) for h in hangups)
    assert not is_hangup_line("200 result=1")


@pytest.mark.parametrize("text", ["garbage without colon", "AGI_UPPER: x\nagi_channel: y", "hello: world"])
def test_malformed_environments_are_refused(text: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_environment(text)


def test_a_stdin_environment_is_not_a_fastagi_request() -> None:
    with pytest.raises(AgiProtocolError):
        fastagi_request({"agi_request": "/var/lib/asterisk/agi-bin/x", "agi_channel": "PJSIP/1001-0001"})


@pytest.mark.parametrize("line", ["garbage", "20 result=1", "200 res=1"])
def test_malformed_replies_are_refused(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply([line])


def test_commands_are_formatted_like_the_capture() -> None:
    assert format_command("GET VARIABLE", "CHANNEL") == "GET VARIABLE CHANNEL\n"
    assert format_command("SET VARIABLE", "LAB_AGI", "hello world") == 'SET VARIABLE LAB_AGI "hello world"\n'
    assert format_command("SET VARIABLE", "CALLERID(name)", "Acme") == "SET VARIABLE CALLERID(name) Acme\n"
    assert format_command("SET VARIABLE", "X", "") == 'SET VARIABLE X ""\n'


def unquote(arg: str) -> str:
    """Asterisk's parse_args for one quoted argument: backslash escapes the next character."""
    assert arg[0] == '"' and arg[-1] == '"'
    out, escaped = [], False
    for ch in arg[1:-1]:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            assert ch != '"', "an unescaped quote would end the argument early"
            out.append(ch)
    return "".join(out)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_value_survives_quoting_on_one_line(value: str) -> None:
    command = format_command("SET VARIABLE", "X", value)
    assert command.count("\n") == 1 and command.endswith("\n")
    arg = command[len("SET VARIABLE X "):-1]
    expected = value.replace("\r", " ").replace("\n", " ")
    assert (unquote(arg) if arg.startswith('"') else arg) == expected


def test_the_script_name_and_its_query_are_split() -> None:
    assert split_script("/tag-inbound?secret=s%20x&pbx=main") == ("tag-inbound", {"secret": "s x", "pbx": "main"})
    assert split_script("call-end") == ("call-end", {})
