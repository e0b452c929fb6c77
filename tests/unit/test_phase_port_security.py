"""Ports on the phase networks (provisioning, cleaning, rescuing): no security group
unless configured — the conductor must reach the ramdisk agent from outside, which a
project's default group ("ingress from members") would drop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from metalnic.baremetal.drivers.base import NetworkPhase, NodeContext, PortInfo
from metalnic.baremetal.drivers.network.client import (
    Binding,
    DhcpOption,
    NetworkPort,
    NewPort,
    Plugged,
    Verdict,
)
from metalnic.baremetal.drivers.network.smartnic import SmartNicConfig, SmartNicNetwork
from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.embedded_network import CONDUCTOR, EmbeddedNetworkClient
from metalnic.network.inputs import NetworkCreate, SecurityGroupCreate
from metalnic.network.service import NetworkService
from metalnic.server import smartnic_config
from metalnic.settings import Settings


class RecordingClient:
    """A NetworkClient that plugs every port at once, recording what it created."""

    def __init__(self) -> None:
        self.created: list[tuple[str, list[str]]] = []
        self.dhcp: dict[str, dict[tuple[str, int], str]] = {}  # port -> its extra_dhcp_opts

    def network_id(self, name_or_id: str) -> str:
        return f"id-of-{name_or_id}"

    def agent_alive(self, nic_host: str) -> bool:
        return True

    def ports(
        self, *, ids: Sequence[str] = (), device_id: str | None = None, name_prefix: str = ""
    ) -> list[NetworkPort]:
        return []

    def plug(self, port: NewPort | str, binding: Binding, timeout: float) -> Plugged:
        assert isinstance(port, NewPort)
        self.created.append((port.network_id, list(port.security_groups)))
        return Plugged(f"port-{len(self.created)}", created=True, active=True)

    def unplug(self, port_id: str, nic_host: str, *, delete: bool, timeout: float) -> bool:
        return True

    def verify_plugged(
        self, nic_host: str, port_ids: Sequence[str], timeout: float
    ) -> dict[str, Verdict]:
        return {p: Verdict(True) for p in port_ids}

    def set_dhcp_options(self, port_id: str, options: Sequence[DhcpOption]) -> None:
        """Neutron's merge: by name and IP version; a None value removes."""
        held = self.dhcp.setdefault(port_id, {})
        for o in options:
            if o.value is None:
                held.pop((o.name, o.ip_version), None)
            else:
                held[(o.name, o.ip_version)] = o.value


def _ctx() -> NodeContext:
    port = PortInfo("bp-1", "52:54:00:00:00:01", True, {"hostname": "nic1", "port_id": "p0"})
    return NodeContext("node-1", None, "fake-hardware", {}, ports=(port,))


def _attach(groups: dict[str, list[str]], phase: str) -> list[tuple[str, list[str]]]:
    client = RecordingClient()
    config = SmartNicConfig(
        networks={
            NetworkPhase.PROVISIONING: "prov",
            NetworkPhase.CLEANING: "clean",
            NetworkPhase.RESCUING: "prov",
        },
        active_timeout=1,
        removed_timeout=1,
        security_groups={NetworkPhase(k): v for k, v in groups.items()},
    )
    SmartNicNetwork(client, config).attach(_ctx(), NetworkPhase(phase))
    return client.created


def test_phase_ports_get_the_configured_groups_or_none() -> None:
    assert _attach({}, "provisioning") == [("id-of-prov", [])]
    groups = {"provisioning": ["sg-prov"], "cleaning": ["sg-clean-1", "sg-clean-2"]}
    assert _attach(groups, "provisioning") == [("id-of-prov", ["sg-prov"])]
    assert _attach(groups, "cleaning") == [("id-of-clean", ["sg-clean-1", "sg-clean-2"])]
    assert _attach(groups, "rescuing") == [("id-of-prov", [])]


def test_settings_read_the_ironic_option_names(monkeypatch: Any) -> None:
    monkeypatch.setenv("METALNIC_PROVISIONING_NETWORK_SECURITY_GROUPS", '["a", "b"]')
    settings = Settings()
    assert settings.provisioning_network_security_groups == ["a", "b"]
    assert settings.cleaning_network_security_groups == []


def test_the_dhcpv6_address_count_reaches_the_phase_ports(monkeypatch: Any) -> None:
    """Ironic's dhcpv6_stateful_address_count: default 4, set by the environment,
    refused outside 1..64; the smartnic interface asks for that many per phase port."""
    assert smartnic_config(Settings()).dhcpv6_addresses == 4
    monkeypatch.setenv("METALNIC_DHCPV6_STATEFUL_ADDRESS_COUNT", "2")
    config = smartnic_config(Settings())
    assert config.dhcpv6_addresses == 2
    asked: list[int] = []

    class Counting(RecordingClient):
        def plug(self, port: NewPort | str, binding: Binding, timeout: float) -> Plugged:
            assert isinstance(port, NewPort)
            asked.append(port.dhcpv6_addresses)
            return super().plug(port, binding, timeout)

    SmartNicNetwork(Counting(), config).attach(_ctx(), NetworkPhase.CLEANING)
    assert asked == [2]
    for bad in ("0", "65", "x"):
        monkeypatch.setenv("METALNIC_DHCPV6_STATEFUL_ADDRESS_COUNT", bad)
        with pytest.raises(ValidationError):
            Settings()


def test_embedded_client_turns_port_security_off_without_groups(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        migrate.upgrade(db.engine)
        service = NetworkService(Settings(), db)
        client = EmbeddedNetworkClient(service)
        net = service.networks.create(CONDUCTOR, NetworkCreate(name="prov"))
        group = service.secgroups.create(CONDUCTOR, SecurityGroupCreate(name="admit-conductor"))
        binding = Binding("nic1", "52:54:00:00:00:0a", "n1", {})
        opened = client.plug(NewPort(net["id"], "a"), binding, timeout=0)
        filtered = client.plug(
            NewPort(net["id"], "b", (group["id"],)),
            Binding("nic1", "52:54:00:00:00:0b", "n2", {}),
            timeout=0,
        )
        ports = {p.id: p for p in client.ports(ids=[opened.port_id, filtered.port_id])}
        assert ports[opened.port_id].port_security is False
        assert ports[opened.port_id].security_groups == ()
        assert ports[filtered.port_id].port_security is True
        assert ports[filtered.port_id].security_groups == (group["id"],)
    finally:
        db.dispose()
