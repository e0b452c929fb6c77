"""The console-block convention (tests/consoledoc.py) and the docs that follow it.

The harness itself must be able to fail: a wrong command, a missing output line
and a reordered one are each reported with the document's line.  The docs'
blocks must parse, their links reach their headings, the files they cite
exist, and the agent
configurations docs/multitenancy.md shows must be ones the agent accepts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from metalnic.agent import config as agent_config
from tests.consoledoc import Shell, blocks, clean_env, missing_output, run_document
from tests.support import ROOT, VENV_BIN
from tests.unit.test_architecture_doc import broken_links, missing_references

SAMPLE = """# A doc

```console
$ echo hello \\
      world
hello world
$ ! false
```

```toml
not = "run"
```

```console
# not run: on the NIC (stand-in here)
$ ovs-vsctl show
```
"""


def test_blocks_commands_continuations_and_lines() -> None:
    found = blocks(SAMPLE)
    assert len(found) == 2
    first, second = found
    assert first.line == 3 and first.not_run is None
    assert [(c.line, c.text, c.expected) for c in first.commands] == [
        (4, "echo hello \\\n      world", ("hello world",)),
        (7, "! false", ()),
    ]
    assert second.not_run == "on the NIC (stand-in here)"
    assert [c.text for c in second.commands] == ["ovs-vsctl show"]


def test_output_lines_match_in_order_with_wildcards() -> None:
    out = "| status   |  ACTIVE |\nid 1234-abcd\nlast\n"
    assert missing_output(("| status | ACTIVE |", "id ...-abcd", "last"), out) is None
    assert missing_output(("last", "id ..."), out) == "id ..."  # order counts
    assert missing_output(("DOWN",), out) == "DOWN"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("```console\n$ true\n$ false\n```\n", "doc.md:3: $ false\nexited 1"),
        ("```console\n$ echo ACTIVE\nDOWN\n```\n", "doc.md:2: $ echo ACTIVE\nprinted no line"),
        ("```console\n$ ! true\n```\n", "doc.md:2: $ ! true\nexited 1"),
        ("```console\n$ false | cat\n```\n", "exited 1"),  # pipefail
    ],
)  # fmt: skip
def test_a_wrong_command_or_output_fails_naming_the_line(
    tmp_path: Path, doc: str, message: str
) -> None:
    path = tmp_path / "doc.md"
    path.write_text(doc)
    shell = Shell(tmp_path, clean_env(VENV_BIN))
    try:
        with pytest.raises(AssertionError) as err:
            run_document(path, shell)
    finally:
        shell.close()
    assert message in str(err.value)


def test_state_carries_over_and_stand_ins_run(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text(SAMPLE + "\n```console\n$ X=42\n$ echo $X $PWD\n42 ...\n```\n")
    ran: list[str] = []
    shell = Shell(tmp_path, clean_env(VENV_BIN))
    try:
        run_document(path, shell, {"on the NIC": lambda: ran.append("nic")})
        with pytest.raises(AssertionError, match="no '# not run' block"):
            run_document(path, shell, {"on the moon": lambda: None})
    finally:
        shell.close()
    assert ran == ["nic"]


DOCS = [ROOT / "docs" / "multitenancy.md", ROOT / "docs" / "security.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_parse_and_their_links_and_paths_exist(doc: Path) -> None:
    text = doc.read_text()
    assert blocks(text), f"{doc.name} has no console block"
    assert broken_links(text, doc.parent) == []
    assert missing_references(text) == []


def test_the_agent_configurations_shown_are_accepted(tmp_path: Path) -> None:
    shown = [
        tomllib.loads("\n".join(cmd.expected))
        for block in blocks(DOCS[0].read_text())
        for cmd in block.commands
        if cmd.text.startswith("cat /etc/metalnic/agent")
    ]
    password = tmp_path / "agent.password"
    password.write_text("not-a-real-one\n")
    modes = [agent_config.parse({**doc, "password_file": str(password)}).mode for doc in shown]
    assert modes == ["local", "remote"]
