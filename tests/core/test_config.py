"""Configuration: one TOML file, env overrides for secrets, errors that name the bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.config import ConfigError, load_config, parse_config

GOOD = """
log_format = "json"
[database]
dsn = "postgresql://u@127.0.0.1/cc"
[http]
port = 8181
[[pbx]]
key = "main"
kind = "asterisk"
outside_line_prefix = "9"
country_code = "98"
city_code = "21"
excluded_extensions = ["600", "601"]
[pbx.ari]
url = "http://127.0.0.1:8088/ari"
username = "cc"
[[pbx]]
key = "branch"
kind = "panasonic"
outside_line_prefix = "0"
[pbx.legacy]
transport = "tcp"
host = "10.0.0.5"
"""


def test_a_full_file_loads_into_typed_settings(tmp_path: Path) -> None:
    path = tmp_path / "callcenter.toml"
    path.write_text(GOOD)
    config = load_config(path, env={"CALLCENTER_PBX_MAIN_ARI_PASSWORD": "s3cret"})
    assert config.http.port == 8181
    main = config.pbx_by_key("main")
    assert main.ari is not None and main.ari.password == "s3cret"
    assert main.number_plan.excluded_extensions == frozenset({"600", "601"})
    branch = config.pbx_by_key("branch")
    assert branch.legacy is not None and branch.legacy.password == "PCCSMDR"


def test_no_file_means_defaults_and_embedded_postgres() -> None:
    config = load_config(None, env={})
    assert config.database.dsn == ""
    assert config.http.port == 8080


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"pbx": [{"key": "a", "kind": "avaya"}]}, "pbx.a.kind"),
        ({"pbx": [{"key": "a", "kind": "asterisk", "country_code": "+98"}]}, "pbx.a.country_code"),
        ({"pbx": [{"key": "a", "kind": "asterisk"}, {"key": "a", "kind": "segal"}]}, "pbx.a"),
        ({"pbx": [{"key": "A B", "kind": "asterisk"}]}, "pbx[0].key"),
        ({"http": {"port": "80"}}, "http.port"),
        ({"http": {"prot": 80}}, "http.prot"),
        ({"pbx": [{"key": "p", "kind": "panasonic", "legacy": {"date_order": "dd/mm"}}]}, "pbx.p.legacy.date_order"),
        ({"monitor": {"listen_code": "*336", "whisper_code": "*336"}}, "monitor"),
        ({"surprise": 1}, "surprise"),
        ({"pbx": [{"key": "a", "kind": "asterisk", "number_plan": "x"}]}, "pbx.a.number_plan"),
        ({"pbx": [{"key": "a", "kind": "asterisk", "ari": {"tonezone": "fr;x"}}]}, "pbx.a.ari.tonezone"),
    ],
)
def test_bad_values_name_the_key_and_why(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, env={})
    assert info.value.key == key
    assert info.value.why


def test_config_check_command_reports_errors_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[pbx]]\nkey = "x"\nkind = "nortel"\n')
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "--config", str(path), "config", "check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "pbx.x.kind" in result.stderr
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "--config", str(good), "config", "check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "pbx main: kind=asterisk" in result.stdout


def test_the_readme_example_configuration_is_valid() -> None:
    import re
    import tomllib

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    match = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert match, "README has a TOML example"
    config = parse_config(tomllib.loads(match.group(1)), env={})
    assert [p.key for p in config.pbx] == ["main", "branch"]
