"""docs/security.md names, for each promise, the test that checks it: those tests exist.

A table cell names tests as ``tests/…/test_x.py::name``, as a bare file name
``test_x.py::name`` (found under tests/), as ``::name`` (the cell's previous
file), with ``[param]`` ids, and as rows of the RBAC matrix in ``["label"]``
(``…`` stands for words left out; the rows are ``ROWS`` of
tests/integration/test_rbac_matrix.py).  Renaming or deleting a test that a promise
cites fails here, so the table cannot silently point at nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.integration.test_rbac_matrix import ROWS
from tests.support import ROOT

DOC = ROOT / "docs" / "security.md"
SECTION = "## What metalnic guarantees"
CITED = re.compile(r"`((?:[\w./-]+\.py)?)(?:::([\w.]+)(?:\[[^\]]*\])?)?`")
MATRIX_LABEL = re.compile(r'\["([^"]+)"\]')


def _guarantees() -> str:
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end > 0 else None]


def _rows(section: str) -> list[str]:
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def _find(name: str, near: Path | None) -> Path | None:
    """A cited file: a path from the root, or a bare name next to the last full path
    cited (``near``), else the one file of that name under tests/."""
    if "/" in name:
        path = ROOT / name
        return path if path.exists() else None
    if near is not None and (near.parent / name).exists():
        return near.parent / name
    found = sorted((ROOT / "tests").rglob(name))
    return found[0] if len(found) == 1 else None


def _defined(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


def missing(section: str) -> list[str]:
    """Each cited file, test or matrix row of ``section`` that does not exist."""
    out: list[str] = []
    matrix = [row.name for row in ROWS]
    near: Path | None = None
    for row in _rows(section):
        cell = row.rsplit(" | ", 1)[-1]
        current: Path | None = None
        for name, test in CITED.findall(cell):
            if name:
                current = _find(name, near)
                if current is None:
                    out.append(name)
                    continue
                if "/" in name:
                    near = current
            if not test:
                continue
            if current is None:
                out.append(f"::{test} (no file before it)")
            elif current.suffix == ".py" and test not in _defined(current):
                out.append(f"{current.relative_to(ROOT)}::{test}")
        for label in MATRIX_LABEL.findall(cell):
            parts = [p.strip(" .,") for p in label.split("…")]
            if not all(any(p in m for m in matrix) for p in parts if p):
                out.append(f'matrix row ["{label}"]')
    return out


def test_every_test_security_md_names_exists() -> None:
    section = _guarantees()
    assert len(_rows(section)) >= 50, "the table pattern stopped matching the doc"
    assert len(CITED.findall(section)) >= 100
    assert missing(section) == []


def test_a_vanished_test_is_reported() -> None:
    section = (
        "| a | `tests/unit/test_smartnic.py::no_such_test`, `::test_remote_refuses_private_"
        "key_material_in_any_field` |\n"
        "| b | `test_nowhere.py::x`; `test_rbac_matrix.py::test_matrix_cell` "
        '["list agents"], ["a row nobody wrote"] |\n'
    )
    assert missing(section) == [
        "tests/unit/test_smartnic.py::no_such_test",
        "test_nowhere.py",
        'matrix row ["a row nobody wrote"]',
    ]
