"""Ports on the phase networks (provisioning, cleaning, rescuing): no security group
unless configured — the conductor must reach the ramdisk agent from outside, which a
project's default group ("ingress from members") would drop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metalnic.baremetal.drivers.base import NodeContext, PortInfo
from metalnic.baremetal.drivers.network.smartnic import SmartNicConfig, SmartNicNetwork
from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.network.api.schemas import NetworkCreate, SecurityGroupCreate
from metalnic.network.client import CONDUCTOR, EmbeddedNetworkClient
from metalnic.network.service import NetworkService
from metalnic.settings import Settings


class RecordingClient:
    """Just enough of the NetworkClient protocol for attach, recording create_port."""

    def __init__(self) -> None:
        self.created: list[tuple[str, list[str]]] = []

    def network_id(self, name_or_id: str) -> str:
        return f"id-of-{name_or_id}"

    def agent_alive(self, nic_host: str) -> bool:
        return True

    def create_port(
        self,
        network_id: str,
        name: str,
        mac: str,
        nic_host: str,
        profile: dict[str, Any],
        device_id: str,
        security_groups: Sequence[str] = (),
    ) -> dict[str, Any]:
        self.created.append((network_id, list(security_groups)))
        return {"id": f"port-{len(self.created)}"}

    def wait_port_active(self, port_id: str, timeout: float) -> tuple[bool, str]:
        return True, ""


def _ctx() -> NodeContext:
    port = PortInfo("bp-1", "52:54:00:00:00:01", True, {"hostname": "nic1", "port_id": "p0"})
    return NodeContext("node-1", None, "fake-hardware", {}, ports=(port,))


def _attach(groups: dict[str, list[str]], phase: str) -> list[tuple[str, list[str]]]:
    client = RecordingClient()
    config = SmartNicConfig(
        networks={"provisioning": "prov", "cleaning": "clean", "rescuing": "prov"},
        active_timeout=1,
        removed_timeout=1,
        security_groups=groups,
    )
    SmartNicNetwork(lambda: client, config).attach(_ctx(), phase)  # type: ignore[arg-type,return-value]
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


def test_embedded_client_turns_port_security_off_without_groups(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        migrate.upgrade(db.engine)
        service = NetworkService(Settings(), db)
        client = EmbeddedNetworkClient(service)
        net = service.networks.create(CONDUCTOR, NetworkCreate(name="prov"))
        group = service.secgroups.create(CONDUCTOR, SecurityGroupCreate(name="admit-conductor"))
        profile = {"local_link_information": [{"hostname": "nic1", "port_id": "p0"}]}
        open_port = client.create_port(net["id"], "a", "52:54:00:00:00:0a", "nic1", profile, "n1")
        assert open_port["port_security_enabled"] is False
        assert open_port["security_groups"] == []
        filtered = client.create_port(
            net["id"], "b", "52:54:00:00:00:0b", "nic1", profile, "n2", [group["id"]]
        )
        assert filtered["port_security_enabled"] is True
        assert filtered["security_groups"] == [group["id"]]
    finally:
        db.dispose()
