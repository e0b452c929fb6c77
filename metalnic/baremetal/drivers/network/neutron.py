"""NetworkClient for a real Neutron (or metalnic's own /network API) via openstacksdk.

The second implementation of ``NetworkClient``: the smartnic interface can
drive any Neutron-compatible endpoint.  Neutron has no long-poll, so waits
poll the port (every ``poll`` seconds); and Neutron cannot say when an agent
has unplugged a deleted port, so ``delete_port`` confirms nothing
(``wait_removed`` is then not called).  SDK and HTTP errors are translated
here into ``DriverError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import keystoneauth1.exceptions
import openstack
import openstack.exceptions

from metalnic.baremetal.drivers.base import DriverError


@contextmanager
def _translated(endpoint: str, action: str) -> Iterator[None]:
    try:
        yield
    except openstack.exceptions.ResourceNotFound as exc:
        raise DriverError(f"network service at {endpoint}: {action}: not found") from exc
    except openstack.exceptions.SDKException as exc:
        raise DriverError(f"network service at {endpoint} failed to {action}: {exc}") from exc
    except keystoneauth1.exceptions.ClientException as exc:  # discovery, connection
        raise DriverError(f"network service at {endpoint} is unreachable ({action})") from exc


T = TypeVar("T")


def _settled(call: Callable[[], T], attempts: int = 5) -> T:
    """``call`` again when the port changed under it (409: metalnic's or Neutron's
    revision check lost a race, e.g. to the agent's status report): the conductor's
    updates set values and are safe to repeat; a flow must not fail on that race."""
    for attempt in range(attempts):
        try:
            return call()
        except openstack.exceptions.ConflictException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _port(p: Any) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name or "",
        "status": p.status,
        "binding:host_id": p.binding_host_id or "",
        "binding:vif_type": p.binding_vif_type,
        "binding:vif_details": p.binding_vif_details or {},
        "binding:profile": p.binding_profile or {},
        "device_id": p.device_id,
        "device_owner": p.device_owner or "",
        "project_id": p.project_id,
    }


class NeutronClient:
    def __init__(
        self,
        endpoint: str,
        username: str | None = None,
        password: str | None = None,
        cacert: str | None = None,
        poll: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self.poll = poll
        auth: dict[str, Any] = (
            {"auth_type": "http_basic", "username": username, "password": password}
            if username
            else {"auth_type": "none"}
        )
        self.conn = openstack.connect(
            network_endpoint_override=endpoint,
            load_yaml_config=False,
            load_envvars=False,
            cacert=cacert,
            **auth,
        )

    def network_id(self, name_or_id: str) -> str:
        with _translated(self.endpoint, f"find network {name_or_id}"):
            net = self.conn.network.find_network(name_or_id, ignore_missing=True)
        if net is None:
            raise DriverError(f"Network {name_or_id} could not be found.")
        return str(net.id)

    def agent_alive(self, nic_host: str) -> bool:
        with _translated(self.endpoint, "list agents"):
            # A dead agent that served the host before may still list it: any live one counts.
            return any(
                bool(agent.is_alive)
                for agent in self.conn.network.agents(agent_type="Open vSwitch agent")
                if nic_host in (agent.configuration or {}).get("nic_hosts", [agent.host])
            )

    def get_port(self, port_id: str) -> dict[str, Any] | None:
        with _translated(self.endpoint, f"read port {port_id}"):
            try:
                return _port(self.conn.network.get_port(port_id))
            except openstack.exceptions.ResourceNotFound:
                return None

    def find_ports(self, device_id: str, name_prefix: str) -> list[dict[str, Any]]:
        with _translated(self.endpoint, "list ports"):
            return [
                _port(p)
                for p in self.conn.network.ports(device_id=device_id)
                if (p.name or "").startswith(name_prefix)
                and (p.device_owner or "").startswith("baremetal:")
            ]

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
        with _translated(self.endpoint, f"create port {name}"):
            return _port(
                self.conn.network.create_port(
                    network_id=network_id,
                    name=name,
                    mac_address=mac,
                    binding_vnic_type="smart-nic",
                    binding_host_id=nic_host,
                    binding_profile=profile,
                    device_id=device_id,
                    device_owner="baremetal:none",
                    is_port_security_enabled=bool(security_groups),
                    security_group_ids=list(security_groups),
                )
            )

    def bind_port(
        self, port_id: str, nic_host: str, profile: dict[str, Any], device_id: str, mac: str
    ) -> dict[str, Any]:
        with _translated(self.endpoint, f"bind port {port_id}"):
            return _port(
                _settled(
                    lambda: self.conn.network.update_port(
                        port_id,
                        mac_address=mac,
                        binding_vnic_type="smart-nic",
                        binding_host_id=nic_host,
                        binding_profile=profile,
                        device_id=device_id,
                        device_owner="baremetal:none",
                    )
                )
            )

    def unbind_port(self, port_id: str, nic_host: str) -> int | None:
        with _translated(self.endpoint, f"unbind port {port_id}"):
            _settled(
                lambda: self.conn.network.update_port(
                    port_id, binding_host_id="", binding_profile={}
                )
            )
        return None

    def delete_port(self, port_id: str) -> int | None:
        with _translated(self.endpoint, f"delete port {port_id}"):
            self.conn.network.delete_port(port_id, ignore_missing=True)
        return None

    def wait_port_active(self, port_id: str, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        why = ""
        while time.monotonic() < deadline:
            port = self.get_port(port_id)
            if port is None:
                return False, "the port was deleted"
            details = port["binding:vif_details"]
            why = str(details.get("reason") or f"status {port['status']}")
            if port["status"] == "ACTIVE":
                return True, ""
            if port["status"] == "ERROR" or port["binding:vif_type"] == "binding_failed":
                return False, why
            time.sleep(self.poll)
        return False, f"timed out after {timeout:.0f} s waiting for ACTIVE ({why})"

    def wait_removed(self, nic_host: str, revision: int, timeout: float) -> bool:
        return True  # Neutron cannot confirm an unplug; nothing to wait for

    def verify_plugged(
        self, nic_host: str, port_ids: list[str], timeout: float
    ) -> dict[str, tuple[bool, str]]:
        # Neutron has no way to ask an agent to read OVS back: the port status (checked
        # by the boot gate before this) is all there is.
        return {p: (True, "") for p in port_ids}
