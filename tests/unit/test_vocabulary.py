"""The typed vocabulary: states, events and power targets are StrEnums whose values
are Ironic's strings, and mypy (strict) refuses a misspelt or mixed-up one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from metalnic.baremetal import states
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.states import PowerState, PowerTarget, ProvisionState

ROOT = Path(__file__).resolve().parents[2]


def test_wire_format_is_ironics_strings() -> None:
    assert json.dumps([states.DEPLOYWAIT, PowerTarget.SOFT_REBOOT, machine.Event.DONE]) == (
        '["wait call-back", "soft rebooting", "done"]'
    )
    assert f"{states.INSPECTFAIL}" == "inspect failed"
    assert states.POWER_ON == "power on" == PowerTarget.POWER_ON


def test_the_table_speaks_only_the_vocabulary() -> None:
    for row in machine.TABLE:
        assert isinstance(row.state, ProvisionState) and isinstance(row.event, machine.Event)
        assert row.to is machine.TARGET or isinstance(row.to, ProvisionState)


def test_every_target_reaches_a_power_state() -> None:
    assert {t: t.reaches for t in PowerTarget} == {
        PowerTarget.POWER_ON: PowerState.POWER_ON,
        PowerTarget.POWER_OFF: PowerState.POWER_OFF,
        PowerTarget.REBOOT: PowerState.POWER_ON,
        PowerTarget.SOFT_POWER_OFF: PowerState.POWER_OFF,
        PowerTarget.SOFT_REBOOT: PowerState.POWER_ON,
    }


def test_event_of_reads_only_known_verbs() -> None:
    assert machine.event_of("active") is machine.Event.DEPLOY
    assert machine.event_of("deleted") is machine.Event.DELETE
    for wrong in ("activ", "done", "", None, 3, ["manage"]):
        assert machine.event_of(wrong) is None


MISTAKES = {
    "misspelt event": 'machine.lookup(states.ACTIVE, "delet")',
    "state given as event": "machine.lookup(states.ACTIVE, states.DELETING)",
    "power state given as target": "task.set_power(states.POWER_OFF)",
    "target compared with a state": "assert PowerTarget.POWER_ON == states.POWER_ON",
    "misspelt state": "machine.lookup(ProvisionState.ACTIV, machine.Event.DELETE)",
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_mypy_refuses_a_mistake(mistake: str, tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from metalnic.baremetal import states
            from metalnic.baremetal.conductor import states as machine
            from metalnic.baremetal.conductor.task import Task
            from metalnic.baremetal.states import PowerTarget, ProvisionState


            def check(task: Task) -> None:
                {line}
                machine.lookup(states.ACTIVE, machine.Event.DELETE)  # the right spelling
            """
        ).format(line=MISTAKES[mistake])
    )
    out, _err, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache"), str(snippet)]
    )
    assert status == 1, out
    assert out.count("error:") == 1, out  # the mistake, and only the mistake
