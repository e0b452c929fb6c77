"""The provisioning state machine, drawn from its table.

The pictures in ``docs/`` are generated from the conductor's transition table
(``baremetal/conductor/states.py``), never drawn by hand, so they cannot drift
from the machine the conductor runs:

* a mermaid ``stateDiagram-v2`` and the table of API verbs, between the markers
  in ``docs/architecture.md`` (GitHub and most Markdown viewers render it);
* ``docs/state-machine.svg``, laid out by graphviz ``dot`` from the same edges.
  It carries the sha256 of its DOT source, so checking it needs no graphviz.

Usage::

    python -m metalnic.tools.statemachine           # rewrite both
    python -m metalnic.tools.statemachine --check   # exit 1 when either is stale

``tests/unit/test_architecture_doc.py`` runs the check.  A row whose ``to`` is
the recorded target (``TARGET``) is drawn once per target a node in that state
can have recorded, worked out from the rows that lead into it.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from metalnic.baremetal import states
from metalnic.baremetal.conductor import states as machine

ROOT = Path(__file__).resolve().parents[2]
DOC = Path("docs/architecture.md")
SVG = Path("docs/state-machine.svg")
BEGIN = "<!-- state-machine:begin (generated: python -m metalnic.tools.statemachine) -->"
END = "<!-- state-machine:end -->"
_STAMP = "<!-- metalnic-statemachine dot-sha256={} -->"
_STAMPED = re.compile(r"<!-- metalnic-statemachine dot-sha256=([0-9a-f]{64}) -->")
# Where a new node starts (``baremetal/nodes.py``): enroll, or available before API 1.11.
STARTS = ((states.ENROLL, "create"), (states.AVAILABLE, "create (API before 1.11)"))
_FAILING_EVENTS = frozenset({"fail", "abort"})
# Fill colours per kind of state, shared by both pictures.
COLOURS = {"stable": "#ffffff", "busy": "#fde68a", "wait": "#bfdbfe", "failed": "#fecaca"}


class Edge(NamedTuple):
    source: str
    to: str
    events: tuple[str, ...]


def text(value: object) -> str:
    """A state or event as Ironic spells it (a plain string, or an enum member's value)."""
    return str(getattr(value, "value", value))


def recorded_targets(table: Iterable[machine.Row]) -> dict[str, set[str]]:
    """Per state, the targets a node in it may have recorded: where ``to=TARGET`` leads."""
    rows = list(table)
    found: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for row in rows:
            if row.target is None or text(row.to) == text(machine.TARGET):
                continue
            if text(row.target) == text(machine.TARGET):
                new = found.get(text(row.state), set())
            else:
                new = {text(row.target)}
            into = found.setdefault(text(row.to), set())
            if not new <= into:
                into |= new
                changed = True
    return found


def edges(table: Sequence[machine.Row]) -> list[Edge]:
    """One edge per (state, next state), its events in table order."""
    targets = recorded_targets(table)
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in table:
        state, event, to = text(row.state), text(row.event), text(row.to)
        ends = sorted(targets.get(state, set())) if to == text(machine.TARGET) else [to]
        if not ends:
            raise ValueError(f"{state} --{event}--> leads to a target no row records")
        label = f"{event} (target)" if len(ends) > 1 else event
        for end in ends:
            grouped.setdefault((state, end), []).append(label)
    return [Edge(s, t, tuple(events)) for (s, t), events in grouped.items()]


def kinds(table: Sequence[machine.Row]) -> dict[str, str]:
    """Every state in order of first appearance, with its kind (a key of ``COLOURS``)."""
    busy = {text(s) for s in machine.ACTIVE_FLOW_STATES}
    waiting = {text(s) for s in machine.WAIT_STATES}
    failed = {e.to for e in edges(table) if set(e.events) <= _FAILING_EVENTS}
    failed -= {text(s) for s, _ in STARTS}  # enroll after a failed verification is a start
    out: dict[str, str] = {}
    for edge in edges(table):
        for state in (edge.source, edge.to):
            if state in busy:
                out.setdefault(state, "busy")
            elif state in waiting:
                out.setdefault(state, "wait")
            elif state in failed:
                out.setdefault(state, "failed")
            else:
                out.setdefault(state, "stable")
    return out


def _ident(state: str) -> str:
    return "s_" + re.sub(r"[^a-z0-9]+", "_", state.lower())


def mermaid(table: Sequence[machine.Row] = machine.TABLE) -> str:
    """The machine as a mermaid ``stateDiagram-v2``, in a fenced block."""
    found = kinds(table)
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f'    state "{state}" as {_ident(state)}' for state in found]
    lines += [f"    [*] --> {_ident(text(state))} : {label}" for state, label in STARTS]
    lines += [
        f"    {_ident(e.source)} --> {_ident(e.to)} : {', '.join(e.events)}" for e in edges(table)
    ]
    for kind, colour in COLOURS.items():
        members = [_ident(s) for s, k in found.items() if k == kind]
        if members and kind != "stable":
            lines.append(f"    classDef {kind} fill:{colour},stroke:#555")
            lines.append(f"    class {','.join(members)} {kind}")
    lines.append("```")
    return "\n".join(lines)


def verbs_table() -> str:
    """The API verbs (``PUT …/states/provision {"target": verb}``) and the event each raises."""
    by_event: dict[str, list[str]] = {}
    for verb, event in machine.VERBS.items():
        by_event.setdefault(text(event), []).append(f"`{text(verb)}`")
    rows = ["| event | API verbs |", "|---|---|"]
    rows += [f"| `{event}` | {', '.join(verbs)} |" for event, verbs in by_event.items()]
    internal = ", ".join(f"`{text(e)}`" for e in sorted(machine.INTERNAL_EVENTS, key=text))
    rows.append(f"| {internal} | none: raised by the conductor when a flow ends or resumes |")
    return "\n".join(rows)


def block(table: Sequence[machine.Row] = machine.TABLE) -> str:
    """What stands between the markers of ``docs/architecture.md``."""
    legend = (
        "Colours: yellow = a flow runs (node locked), blue = waiting for the ramdisk "
        "agent (unlocked), red = where a failure or an abort leads, white = stable."
    )
    return "\n\n".join(
        [
            BEGIN,
            mermaid(table),
            legend,
            verbs_table(),
            "![the same machine, drawn by graphviz](state-machine.svg)",
            END,
        ]
    )


def dot(table: Sequence[machine.Row] = machine.TABLE) -> str:
    """The same edges as graphviz DOT source (for the SVG)."""
    lines = [
        "digraph provision {",
        '  graph [rankdir=TB, fontname="Helvetica", nodesep=0.3, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
        '  start [shape=point, width=0.15, label=""];',
    ]
    lines += [f'  "{state}" [fillcolor="{COLOURS[kind]}"];' for state, kind in kinds(table).items()]
    lines += [f'  start -> "{text(state)}" [label="{label}"];' for state, label in STARTS]
    lines += [f'  "{e.source}" -> "{e.to}" [label="{", ".join(e.events)}"];' for e in edges(table)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def render_svg(source: str) -> str:
    """``dot -Tsvg`` of ``source``, stamped with the source's digest after the XML header."""
    exe = shutil.which("dot")
    if exe is None:
        raise FileNotFoundError("graphviz 'dot' is not installed (apt-get install graphviz)")
    svg = subprocess.run(
        [exe, "-Tsvg"], input=source, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    head, sep, rest = svg.partition("?>\n")
    stamp = _STAMP.format(digest(source))
    return f"{head}{sep}{stamp}\n{rest}" if sep else f"{stamp}\n{svg}"


def with_block(document: str, generated: str) -> str:
    """``document`` with the text between the markers (markers included) replaced."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC} lacks the markers {BEGIN!r} … {END!r}")
    return document[:start] + generated + document[end + len(END) :]


def _svg_current(svg: Path) -> bool:
    stamped = _STAMPED.search(svg.read_text()) if svg.exists() else None
    return stamped is not None and stamped.group(1) == digest(dot())


def stale(root: Path = ROOT) -> list[str]:
    """The generated files that differ from what the table gives now (empty: all current)."""
    out: list[str] = []
    document = (root / DOC).read_text()
    if with_block(document, block()) != document:
        out.append(f"{DOC}: the state machine block")
    if not _svg_current(root / SVG):
        out.append(f"{SVG}: drawn from another table")
    return out


def write(root: Path = ROOT) -> list[str]:
    """Rewrite the block and the SVG; what was written."""
    done: list[str] = []
    path = root / DOC
    document = path.read_text()
    updated = with_block(document, block())
    if updated != document:
        path.write_text(updated)
        done.append(str(DOC))
    if not _svg_current(root / SVG):
        (root / SVG).write_text(render_svg(dot()))
        done.append(str(SVG))
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metalnic.tools.statemachine")
    parser.add_argument("--check", action="store_true", help="exit 1 when a picture is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    args = parser.parse_args(argv)
    if args.check:
        behind = stale(args.root)
        for item in behind:
            print(f"stale: {item} (run python -m metalnic.tools.statemachine)", file=sys.stderr)
        return 1 if behind else 0
    for item in write(args.root):
        print(f"wrote {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
