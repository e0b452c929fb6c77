"""The conductor calls driver methods by name in the code, never by a string:
``getattr(self.drivers.network, action)`` hid from readers, mypy and "find
callers" which interface method a flow ran.  Every phase a clean-up detaches is
a ``NetworkPhase``."""

from __future__ import annotations

import ast
from pathlib import Path

from metalnic.baremetal.conductor import recovery
from metalnic.baremetal.drivers.base import NetworkPhase

ROOT = Path(__file__).resolve().parents[2] / "metalnic" / "baremetal"
CHECKED = [ROOT / "conductor", ROOT / "drivers" / "network"]


def _dynamic_lookups(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and node.args
            and not isinstance(node.args[1] if len(node.args) > 1 else None, ast.Constant)
        ):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_method_is_looked_up_by_a_computed_name() -> None:
    modules = [p for folder in CHECKED for p in sorted(folder.glob("*.py"))]
    assert modules, "nothing checked"
    assert [hit for p in modules for hit in _dynamic_lookups(p)] == []


def test_the_detector_finds_the_old_dispatch(tmp_path: Path) -> None:
    old = tmp_path / "task.py"
    old.write_text("def network(self, action, phase):\n    getattr(self.drivers.network, action)\n")
    assert _dynamic_lookups(old) == ["task.py:2"]


def test_a_clean_up_detaches_every_phase() -> None:
    assert set(recovery.PHASES) == set(NetworkPhase)
    assert recovery.PHASES[0] is NetworkPhase.TENANT  # the instance's network first
