"""The import report (`python -m scripts.import_cycles`) finds the tangles and layering breaches it claims to count."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import import_cycles


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_at_import_time_and_one_hidden_in_a_function_are_both_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, {
        "api/__init__.py": "",
        "api/app.py": "from api import auth\n",
        "api/auth.py": "from . import app\n",
        "ari_app/__init__.py": "",
        "ari_app/tracker.py": "def apply():\n    from ari_app import transitions\n",
        "ari_app/transitions.py": "from ari_app.tracker import apply\n",
        "callcenter/__init__.py": "",
        "callcenter/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from callcenter import leaf\n",
        "callcenter/leaf.py": "import callcenter.typed\n",
        "callcenter/numbers.py": "def parse():\n    from api import app\n",
        "callcenter/runner.py": "from ari_app import tracker\n",
        "api/cli.py": "from callcenter import runner\n",
    })

    status = import_cycles.main(["--root", str(tmp_path), "--max-cycles", "0"])
    report = capsys.readouterr().out

    assert "import cycles: 1 (1 outside asterisk_sim/)" in report
    assert "cycle of 2: api.app <-> api.auth" in report
    assert "hidden cycle of 2: ari_app.tracker <-> ari_app.transitions" in report
    assert "ari_app.tracker:2 imports ari_app.transitions" in report
    assert "callcenter.leaf <-> callcenter.typed" not in report, "TYPE_CHECKING imports never run"
    assert "layering breaches: 2" in report
    assert "callcenter.numbers imports api.app: the core imports no adapter outside the composition root" in report
    assert "api.cli imports callcenter.runner: adapters never import the composition root" in report
    assert "callcenter.runner imports ari_app" not in report, "the composition root may import adapters"
    assert status == 1, "two cycles outside the simulator exceed --max-cycles 1"


def test_the_project_has_no_import_cycle_not_even_a_hidden_one(capsys: pytest.CaptureFixture[str]) -> None:
    """What the README's architecture section says: 0 cycles, the simulator included."""
    root = Path(import_cycles.__file__).resolve().parent.parent
    assert import_cycles.main(["--root", str(root), "--max-cycles", "0"]) == 0
    report = capsys.readouterr().out
    assert "import cycles: 0 " in report and "cycles closed only by function-level imports: 0 " in report
    assert "layering breaches: 0" in report
