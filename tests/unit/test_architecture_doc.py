"""docs/architecture.md stays true: its state machine picture is generated from the
table, and every file and name its walkthroughs cite exists."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from metalnic.baremetal.conductor import states as machine
from metalnic.tools import statemachine

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# A repository path (optionally ``::name`` or ``::Class.method``) as the doc writes them.
REFERENCE = re.compile(
    r"(?<![\w/.-])((?:metalnic|tests|scripts|docs|bench)/[\w./-]*[\w/])(?:::([\w.]+))?"
)


# --- the picture is regenerated, never hand-drawn -------------------------------------------


def test_committed_pictures_match_the_table() -> None:
    assert statemachine.stale() == [], "run: python -m metalnic.tools.statemachine"


def _reachable_edges() -> set[tuple[str, str, str]]:
    """Every (state, next state, event) a node can take, found by running the conductor's
    own ``resolve`` from the states a node is created in, over (state, recorded target)."""
    seen: set[tuple[str, str | None]] = set()
    todo = [(statemachine.text(s), None) for s, _label in statemachine.STARTS]
    found: set[tuple[str, str, str]] = set()
    while todo:
        state, target = todo.pop()
        if (state, target) in seen:
            continue
        seen.add((state, target))
        for row in machine.TABLE:
            if statemachine.text(row.state) != state:
                continue
            try:
                to, new_target = machine.resolve(row, target)
            except ValueError:
                continue  # a recorded-target row with no target: cannot happen here
            found.add((state, statemachine.text(to), statemachine.text(row.event)))
            todo.append((statemachine.text(to), new_target))
    return found


def _drawn_edges(mermaid: str) -> set[tuple[str, str, str]]:
    names = dict(re.findall(r'^\s*state "([^"]+)" as (\w+)$', mermaid, re.M))
    by_id = {ident: name for name, ident in names.items()}
    drawn: set[tuple[str, str, str]] = set()
    for source, to, labels in re.findall(r"^\s*(s_\w+) --> (s_\w+) : (.+)$", mermaid, re.M):
        for label in labels.split(", "):
            drawn.add((by_id[source], by_id[to], label.removesuffix(" (target)")))
    return drawn


def test_the_diagram_draws_exactly_the_moves_a_node_can_make() -> None:
    drawn = _drawn_edges(statemachine.mermaid())
    assert drawn == _reachable_edges()
    assert len(drawn) >= len(machine.TABLE)  # a recorded-target row is one edge per target


def test_busy_and_waiting_states_are_marked_as_the_machine_groups_them() -> None:
    mermaid = statemachine.mermaid()
    names = {ident: name for name, ident in re.findall(r'state "([^"]+)" as (\w+)', mermaid)}
    marked = {
        kind: {names[i] for i in members.split(",")}
        for members, kind in re.findall(r"^\s*class (\S+) (\w+)$", mermaid, re.M)
    }
    assert marked["busy"] == {statemachine.text(s) for s in machine.ACTIVE_FLOW_STATES}
    assert marked["wait"] == {statemachine.text(s) for s in machine.WAIT_STATES}
    assert marked["failed"] <= {statemachine.text(s) for s in machine.STABLE_STATES}
    assert "deploy failed" in marked["failed"] and "active" not in marked["failed"]


def test_the_svg_source_has_the_same_edges() -> None:
    source = statemachine.dot()
    dotted = {
        (a, b, label.removesuffix(" (target)"))
        for a, b, labels in re.findall(
            r'^\s*"([^"]+)" -> "([^"]+)" \[label="([^"]+)"\];$', source, re.M
        )
        for label in labels.split(", ")
    }
    assert dotted == _drawn_edges(statemachine.mermaid())


def test_a_stale_picture_is_found_and_rewritten(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for name in ("architecture.md", "state-machine.svg"):
        shutil.copy(ROOT / "docs" / name, tmp_path / "docs" / name)
    assert statemachine.stale(tmp_path) == []

    doc = tmp_path / "docs" / "architecture.md"
    doc.write_text(doc.read_text().replace(" : deploy, rebuild\n", " : deploy\n", 1))
    svg = tmp_path / "docs" / "state-machine.svg"
    svg.write_text(re.sub(r"dot-sha256=[0-9a-f]{64}", "dot-sha256=" + "0" * 64, svg.read_text()))
    assert statemachine.stale(tmp_path) == [
        "docs/architecture.md: the state machine block",
        "docs/state-machine.svg: drawn from another table",
    ]
    assert main_check(tmp_path) == 1

    if shutil.which("dot") is None:
        pytest.skip("graphviz 'dot' is not installed: the SVG cannot be redrawn here")
    assert statemachine.write(tmp_path) == ["docs/architecture.md", "docs/state-machine.svg"]
    assert statemachine.stale(tmp_path) == []
    assert main_check(tmp_path) == 0


def main_check(root: Path) -> int:
    return statemachine.main(["--check", "--root", str(root)])


def test_a_doc_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        statemachine.with_block("# no markers here\n", statemachine.block())


# --- every path and name the walkthroughs cite exists ---------------------------------------


def _defined(path: Path) -> set[str]:
    """Top-level functions, classes and assignments of a module, and ``Class.method``."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def missing_references(text: str, root: Path = ROOT) -> list[str]:
    """Each ``path`` or ``path::name`` in ``text`` that does not exist under ``root``."""
    out: list[str] = []
    for path, name in REFERENCE.findall(text):
        target = root / path
        if not target.exists():
            out.append(path)
        elif name and (target.suffix != ".py" or name not in _defined(target)):
            out.append(f"{path}::{name}")
    return out


def test_every_path_and_name_in_architecture_md_exists() -> None:
    text = DOC.read_text()
    assert missing_references(text) == []
    cited = REFERENCE.findall(text)
    assert len({p for p, _ in cited}) >= 40, "the reference pattern stopped matching the doc"
    assert sum(1 for _, name in cited if name) >= 40


LINK = re.compile(r"\]\(([\w./-]+\.md)(?:#([\w-]+))?\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def broken_links(text: str, folder: Path) -> list[str]:
    """Each ``[…](file.md#anchor)`` in ``text`` whose file or heading is missing."""
    out: list[str] = []
    for name, anchor in LINK.findall(text):
        target = folder / name
        if not target.exists() or (anchor and anchor not in _anchors(target.read_text())):
            out.append(f"{name}#{anchor}" if anchor else name)
    return out


def test_links_from_architecture_md_reach_their_headings() -> None:
    text = DOC.read_text()
    assert LINK.findall(text), "the link pattern stopped matching the doc"
    assert broken_links(text, DOC.parent) == []
    assert broken_links("[a](network.md#no-such-heading) [b](gone.md)", DOC.parent) == [
        "network.md#no-such-heading",
        "gone.md",
    ]


def test_a_stale_reference_is_reported(tmp_path: Path) -> None:
    module = tmp_path / "metalnic" / "flows.py"
    module.parent.mkdir()
    module.write_text(
        "TABLE = ()\n\n\ndef deploy() -> None: ...\n\n\nclass Task:\n"
        "    def boot(self) -> None: ...\n"
    )
    text = (
        "`metalnic/flows.py::deploy` is fine, `metalnic/flows.py::TABLE` too, "
        "`metalnic/flows.py::no_such_flow` is gone, "
        "`metalnic/nowhere.py` never was, "
        "`metalnic/flows.py::Task.boot` is a method, `metalnic/flows.py::Task.gone` is not, "
        "and https://example.org/metalnic/x.py is a URL, not a path."
    )
    assert missing_references(text, tmp_path) == [
        "metalnic/flows.py::no_such_flow",
        "metalnic/nowhere.py",
        "metalnic/flows.py::Task.gone",
    ]
