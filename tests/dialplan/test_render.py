"""Rendered dialplan and settings are valid Asterisk configuration and route what they promise."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agi_scripts.protocol import split_script
from asterisk_sim.dialplan import Dialplan, DialplanSyntaxError, parse_conf, parse_extensions_conf
from callcenter.config import Config, load_config, parse_config
from dialplan.render import RenderError, RenderOptions, conf_value, render_all

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "dialplan" / "examples"
DIALPLANS = ("extensions_callcenter.conf", "freepbx/extensions_custom.conf")
SAMPLES = ["1002", "*3361002", "*3391002", "*3321002", "*3381002", "*33610", "*336", "*33", "1", "12", "*", "#",
           "support", "s", "h", "02075550100", "+442075550100", "*338*1002", "#711002", "*51002", "*5", "99",
           "*81002", "*8", "*8*1002"]


def example_config() -> Config:
    return load_config(EXAMPLES / "callcenter.toml", env={})


def config_with(**sections: Any) -> Config:
    raw: dict[str, Any] = {"pbx": [{"key": "main", "kind": "asterisk", "ari": {"password": "p"},
                                    "ami": {"secret": "s"}}], **sections}
    return parse_config(raw, env={})


def parsed(files: dict[str, str], name: str) -> Dialplan:
    return parse_extensions_conf(files[name], name)


def substitute_exten(args: str, exten: str) -> str:
    """Asterisk's ${EXTEN} and ${EXTEN:offset} — enough to check what a feature code hands Stasis."""
    def repl(m: re.Match[str]) -> str:
        return exten[int(m.group(1)):] if m.group(1) else exten
    return re.sub(r"\$\{EXTEN(?::(\d+))?\}", repl, args)


def stasis_args(plan: Dialplan, context: str, exten: str) -> list[str]:
    key = plan.match(context, exten)
    assert key is not None, f"{exten} does not match in {context}"
    resolved = plan.resolve(context, exten)
    assert resolved is not None
    prios = plan.contexts[resolved[0]].extensions[key]
    stasis = next(p for p in prios if p.app == "Stasis")
    return substitute_exten(stasis.args, exten).split(",")


def test_the_committed_examples_equal_a_fresh_render() -> None:
    files = render_all(example_config())
    committed = {p.relative_to(EXAMPLES).as_posix(): p.read_text() for p in EXAMPLES.rglob("*.conf")}
    assert committed == files, "re-run: callcenter dialplan render --config dialplan/examples/callcenter.toml " \
                               "--out dialplan/examples"


@pytest.mark.parametrize("name", DIALPLANS)
def test_every_rendered_dialplan_parses_as_extensions_conf(name: str) -> None:
    plan = parsed(render_all(example_config()), name)
    for context in ("callcenter-monitor", "callcenter-takeover", "callcenter-queue", "callcenter-ivr",
                    "callcenter-tag-inbound",
                    "callcenter-tag-outbound", "callcenter-tag-internal", "callcenter-call-end"):
        assert context in plan.contexts, context


def test_every_rendered_settings_file_parses_as_asterisk_ini() -> None:
    files = render_all(example_config())
    for name, text in files.items():
        if name not in DIALPLANS:
            assert parse_conf(text, name), name
    http = {s.name: s for s in parse_conf(files["http.conf"])}
    assert http["general"].as_dict() == {"enabled": "yes", "bindaddr": "127.0.0.1", "bindport": "8088",
                                         "tlsenable": "no"}
    ari = {s.name: s for s in parse_conf(files["ari.conf"])}
    assert ari["callcenter"].get("password") == "example-ari-password" and ari["callcenter"].get("type") == "user"
    manager = {s.name: s for s in parse_conf(files["manager.conf"])}
    assert manager["general"].get("bindaddr") == "127.0.0.1"
    # Asterisk's time on every event: a service reading AMI events late (bench_real_load at 50 calls/s) billed
    # 297 of 750 calls 13 s where Asterisk's CDR says 10
    assert manager["general"].get("timestampevents") == "yes"
    user = manager["callcenter"]
    assert user.get("secret") == "example-ami-secret" and user.get("permit") == "127.0.0.1/255.255.255.255"
    assert user.items.index(("deny", "0.0.0.0/0.0.0.0")) < user.items.index(("permit", "127.0.0.1/255.255.255.255"))


@pytest.mark.parametrize("name", DIALPLANS)
def test_feature_codes_send_the_mode_and_extension_to_stasis(name: str) -> None:
    plan = parsed(render_all(example_config()), name)
    context = "from-internal-custom" if name.startswith("freepbx") else "callcenter-monitor"
    for code, mode in (("*336", "listen"), ("*339", "whisper"), ("*332", "barge"), ("*338", "takeover")):
        assert stasis_args(plan, context, f"{code}1002") == ["callcenter", "monitor", mode, "1002"]
    assert plan.match(context, "*336") is None and plan.match(context, "1002") is None


@pytest.mark.parametrize("name", DIALPLANS)
def test_the_pickup_code_sends_the_ringing_extension_to_stasis(name: str) -> None:
    plan = parsed(render_all(example_config()), name)
    context = "from-internal-custom" if name.startswith("freepbx") else "callcenter-monitor"
    assert stasis_args(plan, context, "*81002") == ["callcenter", "pickup", "1002"]
    assert plan.match(context, "*8") is None


def test_a_configured_pickup_code_computes_its_own_offset() -> None:
    plan = parsed(render_all(config_with(pickup={"code": "#52"})), "extensions_callcenter.conf")
    assert stasis_args(plan, "callcenter-monitor", "#521002") == ["callcenter", "pickup", "1002"]
    assert plan.match("callcenter-monitor", "*81002") is None


@pytest.mark.parametrize("name", DIALPLANS)
def test_a_pickup_redirect_reaches_stasis_with_the_pickup_id(name: str) -> None:
    from asterisk_sim.dialplan import extension_matches

    plan = parsed(render_all(example_config()), name)
    assert stasis_args(plan, "callcenter-pickup-arrival", "5be41d7a600f3a9c") == ["callcenter", "picked",
                                                                                 "5be41d7a600f3a9c"]
    assert not any(extension_matches(p, "*81002") for p in plan.contexts["callcenter-pickup-arrival"].extensions)
    assert not any("callcenter-pickup-arrival" in c.includes for c in plan.contexts.values()), "nobody dials in"


def test_configured_codes_of_any_length_compute_their_own_offset() -> None:
    config = config_with(monitor={"listen_code": "#71", "whisper_code": "*5", "barge_code": "*6001",
                                  "takeover_code": "##9"})
    plan = parsed(render_all(config), "extensions_callcenter.conf")
    assert stasis_args(plan, "callcenter-monitor", "#711002") == ["callcenter", "monitor", "listen", "1002"]
    assert stasis_args(plan, "callcenter-monitor", "*51002") == ["callcenter", "monitor", "whisper", "1002"]
    assert stasis_args(plan, "callcenter-monitor", "*600123") == ["callcenter", "monitor", "barge", "23"]
    assert stasis_args(plan, "callcenter-monitor", "##9555") == ["callcenter", "monitor", "takeover", "555"]


def test_a_code_that_is_the_prefix_of_another_is_refused() -> None:
    with pytest.raises(RenderError, match="prefix"):
        render_all(config_with(monitor={"listen_code": "*33", "whisper_code": "*339"}))


@pytest.mark.parametrize("name", DIALPLANS)
def test_no_sample_number_matches_two_patterns_of_one_context(name: str) -> None:
    from asterisk_sim.dialplan import extension_matches

    plan = parsed(render_all(example_config()), name)
    for context in plan.contexts.values():
        for a, b in itertools.combinations(context.extensions, 2):
            both = [s for s in SAMPLES if extension_matches(a, s) and extension_matches(b, s)]
            assert not both, f"[{context.name}] {a} and {b} both match {both}"


def test_queue_and_ivr_hand_off_reach_stasis_with_their_arguments() -> None:
    plan = parsed(render_all(example_config()), "extensions_callcenter.conf")
    assert stasis_args(plan, "callcenter-queue", "support") == ["callcenter", "queue", "support"]
    assert stasis_args(plan, "callcenter-ivr", "1") == ["callcenter", "ivr", "1"]
    assert stasis_args(plan, "callcenter-ivr", "12") == ["callcenter", "ivr", "12"]
    ivr = plan.contexts["callcenter-ivr"]
    assert ivr.label("_[0-9*#]", "withdata") is not None
    assert ivr.label("_[0-9*#]", "withdata").args == "callcenter,ivr,${EXTEN},${CC_IVR_DATA}"


@pytest.mark.parametrize("name", DIALPLANS)
def test_a_take_over_redirect_reaches_stasis_with_the_session_id(name: str) -> None:
    from asterisk_sim.dialplan import extension_matches

    plan = parsed(render_all(example_config()), name)
    assert stasis_args(plan, "callcenter-takeover", "0f3a9c2be41d7a60") == ["callcenter", "takeover",
                                                                           "0f3a9c2be41d7a60"]
    assert not any(extension_matches(p, "*3381002") or extension_matches(p, "h")
                   for p in plan.contexts["callcenter-takeover"].extensions), "only session ids match"
    assert not any("callcenter-takeover" in c.includes for c in plan.contexts.values()), "nobody dials into it"


@pytest.mark.parametrize("hook", ["tag-inbound", "tag-outbound", "tag-internal", "call-end"])
def test_hook_subroutines_call_our_fastagi_with_pbx_secret_and_linkedid(hook: str) -> None:
    plan = parsed(render_all(example_config()), "extensions_callcenter.conf")
    prios = plan.contexts[f"callcenter-{hook}"].extensions["s"]
    agi = next(p for p in prios if p.app == "AGI")
    url = agi.args.split(",")[0]
    assert url.startswith("agi://127.0.0.1:4573/")
    script, query = split_script(url.split("/", 3)[3].replace("${CHANNEL(linkedid)}", "1764099785.48"))
    assert script == hook
    assert query == {"pbx": "main", "secret": "change-me;agi", "linkedid": "1764099785.48"}
    assert prios[-1].app == "Return"
    if hook != "call-end":
        assert agi.args.endswith(",${ARG1}")
        assert any(p.args == "CHANNEL(hangup_handler_push)=callcenter-call-end,s,1" for p in prios)


def test_freepbx_variant_tags_inbound_calls_then_continues_to_from_trunk() -> None:
    plan = parsed(render_all(example_config()), "freepbx/extensions_custom.conf")
    assert plan.contexts["from-internal-custom"].includes == ["callcenter-monitor"]
    key = plan.match("callcenter-from-trunk", "02075550100")
    prios = plan.contexts["callcenter-from-trunk"].extensions[key]
    assert [p.app for p in prios] == ["Gosub", "Goto"]
    assert prios[0].args == "callcenter-tag-inbound,s,1(${EXTEN})" and prios[1].args == "from-trunk,${EXTEN},1"


def test_render_options_set_the_agi_address_bind_address_and_permits() -> None:
    files = render_all(example_config(), RenderOptions(agi_address="10.0.2.2:4573", bind_address="0.0.0.0",
                                                       permit=("10.0.2.2/255.255.255.255", "127.0.0.1/255.0.0.0")))
    assert "AGI(agi://10.0.2.2:4573/tag-inbound?" in files["extensions_callcenter.conf"]
    manager = {s.name: s for s in parse_conf(files["manager.conf"])}
    assert manager["general"].get("bindaddr") == "0.0.0.0"
    assert [v for k, v in manager["callcenter"].items if k == "permit"] == ["10.0.2.2/255.255.255.255",
                                                                           "127.0.0.1/255.0.0.0"]


def test_a_password_with_a_semicolon_survives_as_one_value() -> None:
    config = parse_config({"pbx": [{"key": "main", "kind": "asterisk", "ari": {"password": "a;b c"},
                                    "ami": {"secret": "x;y"}}]}, env={})
    files = render_all(config)
    assert {s.name: s for s in parse_conf(files["ari.conf"])}["callcenter"].get("password") == "a;b c"
    assert {s.name: s for s in parse_conf(files["manager.conf"])}["callcenter"].get("secret") == "x;y"
    with pytest.raises(RenderError):
        conf_value("two\nlines")


@pytest.mark.parametrize(("raw", "message"), [
    ({"pbx": [{"key": "main", "kind": "asterisk"}]}, "password is empty"),
    ({"pbx": [{"key": "main", "kind": "asterisk", "ari": {"password": "p", "app": "bad,app"}}]}, "ari.app"),
    ({"pbx": [{"key": "shop", "kind": "panasonic"}]}, "no \\[\\[pbx\\]\\] with kind"),
])
def test_configs_that_cannot_make_valid_asterisk_config_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_all(parse_config(raw, env={}))


def test_without_ami_settings_no_manager_files_are_written() -> None:
    files = render_all(parse_config({"pbx": [{"key": "main", "kind": "asterisk", "ari": {"password": "p"}}]},
                                    env={}))
    assert not any("manager" in name for name in files)


def test_the_parser_we_rely_on_rejects_broken_dialplan() -> None:
    with pytest.raises(DialplanSyntaxError):
        parse_extensions_conf("[ctx]\nexten => _*336X.\n", "broken.conf")


def test_callcenter_dialplan_render_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "dialplan", "render", "--config",
                             str(EXAMPLES / "callcenter.toml"), "--out", str(out)], capture_output=True, text=True,
                            cwd=REPO, check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert (out / "extensions_callcenter.conf").read_text() == (EXAMPLES / "extensions_callcenter.conf").read_text()
    assert (out / "freepbx" / "extensions_custom.conf").exists()


def test_callcenter_dialplan_render_explains_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[pbx]]\nkey = "main"\nkind = "asterisk"\n')
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "--config", str(config), "dialplan", "render",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO,
                            check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "password is empty" in result.stderr
    assert not (tmp_path / "out").exists()
