"""Documentation that runs: the ```console blocks of a Markdown file, as a test.

The convention (docs/development.md, "Documentation that runs"):

* a fenced block whose info string is ``console`` holds commands; other fences
  (``toml``, ``sh``, none) are not run;
* a line starting with ``$ `` is a command; a command line ending in ``\\``
  continues on the next line (continuation lines are the command's, whatever
  they start with);
* every other non-empty line up to the next command is output the command must
  print (stdout and stderr together), in that order, each as part of one line
  of the real output; runs of spaces count as one, and ``...`` stands for any
  text (a UUID, a path).  A command shown without output is checked for its
  exit status only;
* ``$ ! cmd`` is bash's own negation: the command must fail;
* a block whose first line starts with ``# not run`` is not run (it runs on
  another machine); the rest of that line says where, and the test may stand in
  for it (``stand_ins``).

All commands of a document run in order in one ``bash`` process (so ``export``
and shell variables carry over from block to block), each with ``set -o
pipefail`` and stdin from /dev/null.  A failure names the document's line.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN = "# not run"


@dataclass(frozen=True)
class Command:
    line: int  # of the ``$ `` line in the document, from 1
    text: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    commands: tuple[Command, ...]
    not_run: str | None  # where it runs instead, for a ``# not run`` block


def blocks(markdown: str) -> list[Block]:
    """The ``console`` blocks of ``markdown``, in order."""
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, kind = i, fence.group(1)
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append((i + 1, lines[i]))
            i += 1
        if i == len(lines):
            raise ValueError(f"line {start + 1}: a code block that never ends")
        i += 1
        if kind == "console":
            found.append(_block(start + 1, body))
    return found


def _block(line: int, body: list[tuple[int, str]]) -> Block:
    not_run = None
    if body and body[0][1].startswith(NOT_RUN):
        not_run = body[0][1][len(NOT_RUN) :].lstrip(" :").strip()
        body = body[1:]
    commands: list[Command] = []
    text: list[str] = []
    expected: list[str] = []
    at = 0
    continued = False
    for number, raw in body:
        if continued:
            text.append(raw)
        elif raw.startswith("$ "):
            if text:
                commands.append(Command(at, "\n".join(text), tuple(expected)))
            at, text, expected = number, [raw[2:]], []
        elif raw.strip():
            if not text:
                raise ValueError(f"line {number}: output before any command")
            expected.append(raw.strip())
        continued = bool(text) and raw.endswith("\\") and (continued or raw.startswith("$ "))
    if text:
        commands.append(Command(at, "\n".join(text), tuple(expected)))
    if not commands:
        raise ValueError(f"line {line}: a console block without a command")
    return Block(line, tuple(commands), not_run)


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(" ".join(p.split())) for p in expected.split("...")]
    return re.compile(".*".join(parts))


def missing_output(expected: tuple[str, ...], output: str) -> str | None:
    """The first expected line not found (in order) in ``output``, or None."""
    actual = [" ".join(line.split()) for line in output.splitlines()]
    at = 0
    for want in expected:
        pattern = _pattern(want)
        while at < len(actual) and not pattern.search(actual[at]):
            at += 1
        if at == len(actual):
            return want
        at += 1
    return None


class Shell:
    """One bash process; ``run`` executes a command in it and returns (status, output)."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.count = 0

    def run(self, command: str, timeout: float = 300) -> tuple[int | None, str]:
        """Status None: the command did not finish within ``timeout`` or ended the shell."""
        self.count += 1
        script = self.cwd / f".command-{self.count}.sh"
        output = self.cwd / f".output-{self.count}.txt"
        script.write_text(command + "\n")
        marker = f"__consoledoc_done_{self.count}__"
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(
            f"set -o pipefail; source {script} > {output} 2>&1 < /dev/null; echo {marker} $?\n"
        )
        self.proc.stdin.flush()
        status = self._wait_for(marker, time.monotonic() + timeout)
        text = output.read_text(errors="replace") if output.exists() else ""
        return status, text

    def _wait_for(self, marker: str, deadline: float) -> int | None:
        assert self.proc.stdout is not None
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                return None  # the command ended the shell
            if line.startswith(marker):
                return int(line.split()[1])
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def run_document(
    path: Path,
    shell: Shell,
    stand_ins: Mapping[str, Callable[[], None]] = {},
    timeout: float = 300,
) -> list[Block]:
    """Run every console block of ``path``; raise AssertionError naming the line that failed.

    ``stand_ins``: for a ``# not run`` block whose reason contains the key, what the test
    does instead; every key must be used.  Returns the blocks (run or not)."""
    found = blocks(path.read_text())
    used: set[str] = set()
    for block in found:
        if block.not_run is not None:
            for key, stand_in in stand_ins.items():
                if key in block.not_run:
                    used.add(key)
                    stand_in()
            continue
        for cmd in block.commands:
            status, output = shell.run(cmd.text, timeout)
            where = f"{path.name}:{cmd.line}: $ {cmd.text}"
            if status != 0:
                raise AssertionError(f"{where}\nexited {status}:\n{output}")
            want = missing_output(cmd.expected, output)
            if want is not None:
                raise AssertionError(
                    f"{where}\nprinted no line like {want!r}; it printed:\n{output}"
                )
    unused = sorted(set(stand_ins) - used)
    assert not unused, f"{path.name}: no '# not run' block for the stand-in(s) {unused}"
    return found


def clean_env(path_first: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: ``path_first`` ahead of the system's PATH, no OS_* or
    METALNIC_* settings of the caller, plus ``extra``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k in ("LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "LOGNAME")
    }
    return {**base, "PATH": f"{path_first}:/usr/local/bin:/usr/bin:/bin", **extra}
