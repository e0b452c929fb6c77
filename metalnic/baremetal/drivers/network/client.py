"""What the bare-metal side needs from a network service, as a small protocol.

``server.py`` wires the embedded network service (``metalnic.network.client``);
an adapter for a real Neutron through openstacksdk can implement the same
protocol.  Ports are plain dicts in Neutron's shape (``id``, ``status``,
``binding:vif_type``, ``binding:vif_details``, ``binding:host_id``, ``name``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class NetworkClient(Protocol):
    def network_id(self, name_or_id: str) -> str:
        """Resolve a network; raises DriverError when it does not exist."""

    def agent_alive(self, nic_host: str) -> bool:
        """True when a live agent serves exactly ``nic_host``."""

    def get_port(self, port_id: str) -> dict[str, Any] | None: ...

    def find_ports(self, device_id: str, name_prefix: str) -> list[dict[str, Any]]: ...

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
        """A bound smart-nic port.  With ``security_groups`` those groups filter it;
        without, port security is off (the phase networks' default, see settings)."""

    def bind_port(
        self, port_id: str, nic_host: str, profile: dict[str, Any], device_id: str, mac: str
    ) -> dict[str, Any]:
        """Bind a tenant VIF to ``nic_host``; its MAC becomes the bare-metal link's
        (the host sends with that MAC, and the NIC lets only it out), as Ironic does."""

    def unbind_port(self, port_id: str, nic_host: str) -> int | None:
        """Take the port off its NIC host; returns the host revision to wait for."""

    def delete_port(self, port_id: str) -> int | None:
        """Delete; returns the NIC host revision that no longer has it (None if unbound)."""

    def wait_port_active(self, port_id: str, timeout: float) -> tuple[bool, str]:
        """Wait for ACTIVE: (True, "") or (False, why)."""

    def wait_removed(self, nic_host: str, revision: int, timeout: float) -> bool:
        """Wait until the agent of ``nic_host`` has programmed ``revision``."""

    def verify_plugged(
        self, nic_host: str, port_ids: list[str], timeout: float
    ) -> dict[str, tuple[bool, str]]:
        """Ask the agent of ``nic_host`` to confirm, read from OVS, that the ports are
        plugged as desired: per port (confirmed, reason if not)."""
