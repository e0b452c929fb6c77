"""The desired state the server builds is exactly the contract's ``DesiredState``.

``AgentFeed.desired`` builds plain dicts (typed by the contract's TypedDicts) and
the route renders them with orjson, unvalidated; here a NIC host with every kind
of content (a bond, a single link, two groups, a remote-group rule, a pending
verification) is rendered as the route renders it and read back with the model:
a field missing, extra, renamed or of the wrong type fails the round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.auth import Principal
from metalnic.contract import agent as ac
from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.httpjson import JSONResponse
from metalnic.network.inputs import (
    NetworkCreate,
    PortCreate,
    SecurityGroupCreate,
    SecurityGroupRuleCreate,
)
from metalnic.network.service import NetworkService
from metalnic.settings import Settings

ADMIN = Principal("admin", frozenset({"admin"}), "admin")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[NetworkService]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db.engine)
    try:
        yield NetworkService(Settings(network_vlan_ranges=["physnet1:100:110"]), db)
    finally:
        db.dispose()


def _port(service: NetworkService, net: str, mac: str, groups: list[str], **profile: object) -> str:
    body = {
        "network_id": net,
        "mac_address": mac,
        "device_id": "node-1",
        "binding:host_id": "nic1",
        "binding:vnic_type": "smart-nic",
        "binding:profile": profile,
        "security_groups": groups,
    }
    return service.ports.create(ADMIN, PortCreate.parse(body))["id"]


def test_the_desired_state_reads_back_unchanged_as_the_model(service: NetworkService) -> None:
    heartbeat = {"host": "a1", "configurations": {"nic_hosts": ["nic1"], "smartnic": True}}
    service.agents.heartbeat(ADMIN, ac.Heartbeat.model_validate(heartbeat))
    net = service.networks.create(ADMIN, NetworkCreate(name="n"))["id"]
    web = service.secgroups.create(ADMIN, SecurityGroupCreate(name="web"))["id"]
    peers = service.secgroups.create(ADMIN, SecurityGroupCreate(name="peers"))["id"]
    rule = {"security_group_id": web, "direction": "ingress", "protocol": "tcp"}
    rule |= {"port_range_min": 22, "port_range_max": 22, "remote_group_id": peers}
    service.secgroups.create_rule(ADMIN, SecurityGroupRuleCreate.parse(rule))
    links = [{"hostname": "nic1", "port_id": f"pf{i}", "switch_info": "x"} for i in (1, 2)]
    bond = _port(
        service,
        net,
        "52:54:00:00:00:01",
        [web],
        local_link_information=links,
        local_group_information={"bond_mode": "802.3ad", "name": "bond0"},
    )
    single = _port(service, net, "52:54:00:00:00:02", [peers], local_link_information=links[:1])
    ident = service.feed.request_verification("nic1", [bond, single])

    state = service.feed.desired(ADMIN, "nic1")
    wire = json.loads(bytes(JSONResponse(state).body))
    read = ac.DesiredState.model_validate(wire)

    # Nothing extra or renamed (read back as given), every field sent (links and bonds
    # are the profile's entries as stored: only their own keys).
    assert read.model_dump(mode="json", exclude_unset=True) == wire
    sent = [read, *read.ports, *read.verify]
    sent += [r for rules in read.security_groups.values() for r in rules]
    for part in sent:
        assert part.model_fields_set == set(type(part).model_fields), type(part).__name__
    assert [p.id for p in read.ports] == [bond, single]
    assert read.ports[0].members() == ["pf1", "pf2"]
    assert read.ports[0].local_group_information is not None
    assert read.ports[0].local_group_information.bond_mode == "802.3ad"
    assert set(read.security_groups) == {web, peers}
    assert [r.remote_group_id for r in read.security_groups[web]] == [
        None,
        None,
        peers,
    ]  # the default egress rules, then the one above
    assert read.members == {peers: ["52:54:00:00:00:02"]}
    assert [(v.id, v.ports) for v in read.verify] == [(ident, [bond, single])]
