"""One pass of an agent's NIC worker: what it reports after reconciling, without OVS.

``Agent._pass`` reconciles a NIC against its desired state and reports: the port
statuses the server does not know yet (and every error, with its reason), the
answers to pending boot-gate questions (a question OVS cannot be read for is
answered "not plugged", with the reason) and the revision it applied; a NIC that
cannot be programmed at all gets every port reported ERROR and no revision.
The NIC here is a fake with the two methods a pass calls; the report is recorded
instead of sent (real OVS passes are tests/root/test_agent_ovs.py).
"""

from __future__ import annotations

from metalnic.agent.nic import Pass
from metalnic.agent.ovs import Endpoint, OvsError
from metalnic.agent.plan import NicConfig
from metalnic.agent.service import Agent, AgentConfig, NicSpec
from metalnic.contract import agent as ac

SPEC = NicSpec(NicConfig(host="nic1"), Endpoint(db="unix:/nonexistent"))


class RecordingAgent(Agent):
    def __init__(self) -> None:
        super().__init__(AgentConfig(server="http://127.0.0.1:9", nics=(SPEC,)))
        self.reports: list[tuple[str, ac.Report]] = []

    def _report(self, host: str, report: ac.Report) -> None:
        self.reports.append((host, report))


class FakeNic:
    def __init__(self, done: Pass | Exception, unreadable: set[str] = frozenset()) -> None:
        self.done = done
        self.unreadable = unreadable  # verification ids whose read fails

    def reconcile(self, desired: ac.DesiredState) -> Pass:
        if isinstance(self.done, Exception):
            raise self.done
        return self.done

    def verify(self, port_ids: list[str]) -> dict[str, ac.PlugAnswer]:
        if set(port_ids) & self.unreadable:
            raise OvsError("db.sock: connection refused")
        return {p: ac.PlugAnswer(plugged=True) for p in port_ids}


def _desired() -> ac.DesiredState:
    port = {"mac_address": "52:54:00:00:00:01", "network_id": "n", "network_type": "vlan"}
    return ac.DesiredState.model_validate(
        {
            "host": "nic1",
            "revision": 7,
            "ports": [
                {**port, "id": "known", "status": "ACTIVE"},
                {**port, "id": "new", "status": "DOWN"},
                {**port, "id": "broken", "status": "ERROR"},
            ],
            "verify": [{"id": "v1", "ports": ["known"]}, {"id": "v2", "ports": ["gone"]}],
        }
    )


def _pass(nic: FakeNic) -> tuple[Pass | None, list[tuple[str, ac.Report]]]:
    agent = RecordingAgent()
    try:
        done = agent._pass(nic, SPEC, _desired())  # type: ignore[arg-type]
    finally:
        agent.http.close()
    return done, agent.reports


def test_a_pass_reports_what_changed_every_error_and_its_answers() -> None:
    results = {
        "known": ac.PortStatus(status="ACTIVE"),  # the server knows: not sent again
        "new": ac.PortStatus(status="ACTIVE"),
        "broken": ac.PortStatus(status="ERROR", reason="no such NIC port"),  # known, sent
    }
    done, reports = _pass(FakeNic(Pass(results=results), unreadable={"gone"}))
    assert done is not None and done.results == results
    [(host, report)] = reports
    assert host == "nic1"
    assert report.applied_revision == 7
    assert report.ports == {"new": results["new"], "broken": results["broken"]}
    assert report.verified["v1"] == {"known": ac.PlugAnswer(plugged=True)}
    unread = report.verified["v2"]["gone"]
    assert not unread.plugged and "OVS cannot be read" in (unread.reason or "")


def test_a_nic_that_cannot_be_programmed_reports_every_port_in_error() -> None:
    done, reports = _pass(FakeNic(OvsError("ovsdb-server is not running")))
    assert done is None
    [(host, report)] = reports
    assert report.applied_revision is None
    assert set(report.ports) == {"known", "new", "broken"}
    assert all(
        s.status == "ERROR" and "not running" in (s.reason or "") for s in report.ports.values()
    )
    assert report.verified == {}
