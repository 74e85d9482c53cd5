"""extensions.conf parsing and Asterisk's extension matching, as other areas use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from asterisk_sim.dialplan import DialplanSyntaxError, parse_conf, parse_extensions_conf
from asterisk_sim.expr import evaluate, split_args, substitute
from tests.shared import ASTERISK_CAPTURES

CAPTURE_DIALPLAN = ASTERISK_CAPTURES / "extensions.conf"


def test_the_capture_dialplan_loads_with_labels_and_same_lines() -> None:
    plan = parse_extensions_conf(CAPTURE_DIALPLAN.read_text(), str(CAPTURE_DIALPLAN))
    after = plan.contexts["lab-test"].extensions["after"]
    assert [p.number for p in after] == [1, 2, 3, 4, 5, 6, 7]
    assert after[4].label == "mylabel" and after[4].app == "NoOp" and after[4].args == "continued to label"
    dial = plan.contexts["lab-test"].extensions["dialagent"][2]
    assert (dial.app, dial.args) == ("Dial", "Local/agent@lab-test,30,S(4)")
    assert plan.general["static"] == "yes"


@pytest.mark.parametrize(("exten", "expected"), [
    ("1234", "1234"), ("1235", "_1XXX"), ("2345", "_[1-3]XXX"), ("9999", "_NXXX"), ("*3361001", "_*336X."),
    ("5", "_X!"), ("*3391001", "_*33X."), ("0912", "_0X."), ("abc", None),
])
def test_match_follows_asterisk_pattern_order(exten: str, expected: str | None) -> None:
    text = "[ctx]\n" + "".join(f"exten => {p},1,NoOp()\n" for p in (
        "_X.", "_NXXX", "_*336X.", "_*33X.", "1234", "_1XXX", "_[1-3]XXX", "_X!", "_0X."))
    assert parse_extensions_conf(text).match("ctx", exten) == expected


def test_include_and_hash_include_are_followed(tmp_path: Path) -> None:
    (tmp_path / "extra.conf").write_text("[extra]\nexten => 42,1,Answer()\n")
    main = tmp_path / "extensions.conf"
    main.write_text("#include extra.conf\n[main]\ninclude => extra\nexten => 1,1,NoOp()\n")
    plan = parse_extensions_conf(main.read_text(), str(main))
    assert plan.resolve("main", "42") == ("extra", "42")
    assert plan.match("main", "1") == "1"


@pytest.mark.parametrize(("text", "why"), [
    ("exten => 1,1,NoOp()\n", "outside any [context]"),
    ("[c]\nsame => n,NoOp()\n", "no preceding exten"),
    ("[c]\nexten => 1,n,NoOp()\n", "priority 'n'"),
    ("[c]\nexten => 1,1,NoOp(\n", "unbalanced"),
    ("[c]\nexten => 1,1,NoOp()\nexten => 1,1,NoOp()\n", "duplicate priority"),
    ("[c\n", "malformed section header"),
    ("[c]\nexten => 1,1\n", "needs 'extension,priority"),
    ("[c]\nfoo => bar\n", "unknown keyword"),
    ("#include missing.conf\n", "cannot #include"),
])
def test_invalid_config_names_file_line_and_why(text: str, why: str) -> None:
    with pytest.raises(DialplanSyntaxError) as err:
        parse_extensions_conf(text, "x.conf")
    assert str(err.value).startswith("x.conf:") and why in str(err.value)


def test_parse_conf_reads_sections_templates_and_comments() -> None:
    sections = parse_conf("[general]\nenabled = yes ; on\n[tpl](!)\ntype=user\n[lab](tpl)\npassword = lab\n")
    assert [(s.name, s.is_template, s.templates) for s in sections] == [
        ("general", False, []), ("tpl", True, []), ("lab", False, ["tpl"])]
    assert sections[0].get("enabled") == "yes" and sections[2].as_dict() == {"password": "lab"}


def test_substitution_and_expressions() -> None:
    values = {"EXTEN": "*3361001", "X": "5"}
    assert substitute("${EXTEN:4}-${EXTEN:1:3}-${X}", lambda n: values.get(n, "")) == "1001-336-5"
    assert evaluate("5 > 3 & 2 = 2") == "1" and evaluate("1 + 2 * 3") == "7"
    assert split_args("lab-test,first,second arg,key=value") == ["lab-test", "first", "second arg", "key=value"]


GOSUB_PLAN = """
[from-internal]
exten => _X.,1,Gosub(tag,s,1(${EXTEN},two))
 same => n,Set(AFTER=${GOSUB_RETVAL}-${ARG1})
 same => n,Hangup()
exten => h,1,Set(IN_H=yes)

[tag]
exten => s,1,Set(SEEN=${ARG1}/${ARG2})
 same => n,GotoIf($["${HOOKED}" = "1"]?done)
 same => n,Set(HOOKED=1)
 same => n,Set(CHANNEL(hangup_handler_push)=ended,s,1(bye))
 same => n(done),Return(ok)

[ended]
exten => s,1,Set(HANDLER=${ARG1})
 same => n,Return()
"""


async def test_gosub_return_args_h_and_hangup_handlers_run(tmp_path: Path) -> None:
    from asterisk_sim.simulator import SimConfig, Simulator

    seen: dict[str, str] = {}
    config = SimConfig(phones=["1001"], dialplan_text=GOSUB_PLAN, recordings_dir=str(tmp_path), ami_port=None)
    async with Simulator(config) as sim:
        sim.engine.listeners.append(
            lambda kind, obj, fields: seen.__setitem__(fields["variable"], fields["value"])
            if kind == "ChannelVarset" else None)
        await sim.phone("1001").register()
        await sim.phone("1001").dial("42")
        await sim.wait_idle()
    assert seen["SEEN"] == "42/two"
    assert seen["AFTER"] == "ok-", "ARGn are restored after Return"
    assert seen["IN_H"] == "yes" and seen["HANDLER"] == "bye"
