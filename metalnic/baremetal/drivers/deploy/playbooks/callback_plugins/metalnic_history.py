"""An Ansible stdout callback for metalnic's deploy playbooks: one JSON line per
task outcome on stdout, which the ansible deploy interface turns into lines of the
node's history (``metalnic.baremetal.drivers.deploy.ansible``).

Each line is ``{"task": <name>, "status": "ok"|"failed"|"skipped"|"unreachable",
"seconds": <float>, "detail": <the last line the task printed, at most 200
characters>}``; the play's end is ``{"status": "done", "failed": <count>}``.
Nothing else is printed: no variables, no commands (they may hold the image's URL
or the config drive) — only the task's own last line of output.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: metalnic_history
type: stdout
short_description: one JSON line per task, for the node's history in metalnic
description: Prints each task's name, outcome, duration and last line of output.
"""

DETAIL_LIMIT = 200


def last_line(result: Mapping[str, object]) -> str:
    """The task's last line of output: what its command printed, else Ansible's message."""
    for key in ("stdout", "stderr", "msg"):
        value = result.get(key)
        if not isinstance(value, str):
            continue
        lines = [
            line.strip()
            for line in value.replace("\r", "\n").splitlines()
            if line.strip() and not line.startswith("Shared connection to ")
        ]
        if lines:
            return lines[-1][:DETAIL_LIMIT]
    return ""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "metalnic_history"

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()
        self._failed = 0

    def _emit(self, record: Mapping[str, object]) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def _outcome(self, result: Any, status: str) -> None:
        self._emit(
            {
                "task": result._task.get_name(),
                "status": status,
                "seconds": round(time.monotonic() - self._started, 2),
                "detail": last_line(dict(result._result)),
            }
        )

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._started = time.monotonic()

    def v2_runner_on_ok(self, result: Any) -> None:
        self._outcome(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._failed += 1
        self._outcome(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._outcome(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._failed += 1
        self._outcome(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._emit({"status": "done", "failed": self._failed})
