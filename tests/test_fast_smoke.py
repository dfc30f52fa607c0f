"""In-process stand-ins, for the fast tier, of the checks that start processes: `python -m fsjax`
exits with the command line's codes."""

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "code"),
    [(["validate", str(ROOT / "configs" / "trajectory.yaml")], 0), (["run", "nope.yaml"], 2)],
)
def test_module_entry_point_exits_with_the_command_line_code(monkeypatch, capsys, args, code):
    monkeypatch.setattr(sys, "argv", ["fsjax", *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("fsjax", run_name="__main__")
    assert exit_.value.code == code
    assert "Traceback" not in capsys.readouterr().err
