"""NetworkClient for a real Neutron (or metalnic's own /network API) via openstacksdk.

The second implementation of ``NetworkClient``: the smartnic interface can
drive any Neutron-compatible endpoint.  Neutron has no long-poll, so ``plug``
polls the port (every ``poll`` seconds); Neutron cannot say when an agent has
taken a port off the NIC, so ``unplug`` confirms nothing, nor can it ask an
agent to read OVS back, so ``verify_plugged`` trusts the port status (which
the boot gate has checked before).  SDK and HTTP errors are translated here,
in ``_translated``, into the seam's errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import keystoneauth1.exceptions
import openstack
import openstack.exceptions

from metalnic.baremetal.drivers.network.client import (
    DEVICE_OWNER,
    VNIC_TYPE,
    Binding,
    DhcpOption,
    NetworkClientError,
    NetworkConflict,
    NetworkObjectNotFound,
    NetworkPort,
    NetworkUnreachable,
    NewPort,
    Plugged,
    Verdict,
    more_dhcpv6_addresses,
    selected,
)


@contextmanager
def _translated(endpoint: str, action: str) -> Iterator[None]:
    where = f"network service at {endpoint}"
    try:
        yield
    except openstack.exceptions.ResourceNotFound as exc:
        raise NetworkObjectNotFound(f"{where}: {action}: not found") from exc
    except (openstack.exceptions.ConflictException, openstack.exceptions.DuplicateResource) as exc:
        raise NetworkConflict(f"{where} refused to {action}: {exc}") from exc
    except openstack.exceptions.SDKException as exc:
        raise NetworkClientError(f"{where} failed to {action}: {exc}") from exc
    except keystoneauth1.exceptions.ClientException as exc:  # discovery, connection
        raise NetworkUnreachable(f"{where} is unreachable ({action})") from exc


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


def _port(p: Any) -> NetworkPort:
    """The seam's port from an openstacksdk ``Port`` (whose fields are untyped)."""
    details = p.binding_vif_details or {}
    return NetworkPort(
        id=str(p.id),
        name=p.name or "",
        network_id=p.network_id or "",
        project_id=p.project_id or "",
        mac=p.mac_address or "",
        device_id=p.device_id or "",
        device_owner=p.device_owner or "",
        nic_host=p.binding_host_id or "",
        status=p.status or "",
        vif_type=p.binding_vif_type or "",
        reason=str(details.get("reason") or ""),
        port_security=bool(p.is_port_security_enabled),
        security_groups=tuple(p.security_group_ids or ()),
        ip_versions=NetworkPort.versions_of(
            [str(f.get("ip_address", "")) for f in p.fixed_ips or ()]
        ),
    )


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
        if username:
            self.conn = openstack.connect(
                network_endpoint_override=endpoint,
                load_yaml_config=False,
                load_envvars=False,
                cacert=cacert,
                auth_type="http_basic",
                username=username,
                password=password,
            )
        else:
            self.conn = openstack.connect(
                network_endpoint_override=endpoint,
                load_yaml_config=False,
                load_envvars=False,
                cacert=cacert,
                auth_type="none",
            )

    def network_id(self, name_or_id: str) -> str:
        try:
            with _translated(self.endpoint, f"find network {name_or_id}"):
                net = self.conn.network.find_network(name_or_id, ignore_missing=True)
        except NetworkConflict:
            raise NetworkConflict(
                f"Several networks are named {name_or_id}: configure the network's id."
            ) from None
        if net is None:
            raise NetworkObjectNotFound(f"Network {name_or_id} could not be found.")
        return str(net.id)

    def agent_alive(self, nic_host: str) -> bool:
        with _translated(self.endpoint, "list agents"):
            # A dead agent that served the host before may still list it: any live one counts.
            return any(
                bool(agent.is_alive)
                for agent in self.conn.network.agents(agent_type="Open vSwitch agent")
                if nic_host in (agent.configuration or {}).get("nic_hosts", [agent.host])
            )

    def ports(
        self, *, ids: Sequence[str] = (), device_id: str | None = None, name_prefix: str = ""
    ) -> list[NetworkPort]:
        if not ids and device_id is None:
            raise ValueError("ports() needs ids or device_id")
        with _translated(self.endpoint, "list ports"):
            if ids:
                found = [p for p in map(self._get, ids) if p is not None]
            else:
                found = [_port(p) for p in self.conn.network.ports(device_id=device_id)]
        return [p for p in found if selected(p, device_id, name_prefix)]

    def _get(self, port_id: str) -> NetworkPort | None:
        try:
            return _port(self.conn.network.get_port(port_id))
        except openstack.exceptions.ResourceNotFound:
            return None

    def plug(self, port: NewPort | str, binding: Binding, timeout: float) -> Plugged:
        network = self.conn.network
        if isinstance(port, NewPort):
            with _translated(self.endpoint, f"create port {port.name}"):
                made = network.create_port(
                    network_id=port.network_id,
                    name=port.name,
                    is_port_security_enabled=bool(port.security_groups),
                    security_group_ids=list(port.security_groups),
                    mac_address=binding.mac,
                    binding_vnic_type=VNIC_TYPE,
                    binding_host_id=binding.nic_host,
                    binding_profile=dict(binding.profile),
                    device_id=binding.device_id,
                    device_owner=DEVICE_OWNER,
                )
            port_id, created = str(made.id), True
            try:
                self._more_dhcpv6_addresses(made, port.dhcpv6_addresses)
            except NetworkClientError:
                with _translated(self.endpoint, f"delete port {made.id}"):
                    network.delete_port(made.id, ignore_missing=True)  # nothing created
                raise
        else:
            with _translated(self.endpoint, f"bind port {port}"):
                _settled(
                    lambda: network.update_port(
                        port,
                        mac_address=binding.mac,
                        binding_vnic_type=VNIC_TYPE,
                        binding_host_id=binding.nic_host,
                        binding_profile=dict(binding.profile),
                        device_id=binding.device_id,
                        device_owner=DEVICE_OWNER,
                    )
                )
            port_id, created = port, False
        active, reason = self._wait_active(port_id, timeout)
        return Plugged(port_id, created, active, reason)

    def _more_dhcpv6_addresses(self, made: Any, count: int) -> None:
        fixed = [(str(f["subnet_id"]), str(f["ip_address"])) for f in made.fixed_ips or ()]
        if count <= 1 or not any(":" in ip for _, ip in fixed):
            return
        with _translated(self.endpoint, f"read the subnets of network {made.network_id}"):
            stateful = [
                str(s.id)
                for s in self.conn.network.subnets(network_id=made.network_id, ip_version=6)
                if s.ipv6_address_mode == "dhcpv6-stateful"
            ]
        wanted = more_dhcpv6_addresses(fixed, stateful, count)
        if wanted is not None:
            with _translated(self.endpoint, f"add DHCPv6 addresses to port {made.id}"):
                _settled(lambda: self.conn.network.update_port(made.id, fixed_ips=wanted))

    def _wait_active(self, port_id: str, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        why = ""
        while True:
            with _translated(self.endpoint, f"read port {port_id}"):
                port = self._get(port_id)
            if port is None:
                return False, "the port was deleted"
            why = port.reason or f"status {port.status}"
            if port.active:
                return True, ""
            if port.status == "ERROR" or port.vif_type == "binding_failed":
                return False, why
            if time.monotonic() >= deadline:
                return False, f"timed out after {timeout:.0f} s waiting for ACTIVE ({why})"
            time.sleep(self.poll)

    def unplug(self, port_id: str, nic_host: str, *, delete: bool, timeout: float) -> bool:
        with _translated(self.endpoint, f"{'delete' if delete else 'unbind'} port {port_id}"):
            if delete:
                self.conn.network.delete_port(port_id, ignore_missing=True)
            elif self._get(port_id) is not None:
                _settled(
                    lambda: self.conn.network.update_port(
                        port_id, binding_host_id="", binding_profile={}
                    )
                )
        return True  # Neutron cannot confirm an unplug: nothing to wait for

    def verify_plugged(
        self, nic_host: str, port_ids: Sequence[str], timeout: float
    ) -> dict[str, Verdict]:
        # Neutron has no way to ask an agent to read OVS back: the port status (checked
        # by the boot gate before this) is all there is.
        return {p: Verdict(True) for p in port_ids}

    def set_dhcp_options(self, port_id: str, options: Sequence[DhcpOption]) -> None:
        body = [o.body() for o in options]
        with _translated(self.endpoint, f"set the DHCP options of port {port_id}"):
            _settled(lambda: self.conn.network.update_port(port_id, extra_dhcp_opts=body))
