"""The embedded network service as the bare-metal side's NetworkClient.

Calls go straight to ``NetworkService`` in this process, as the internal
``metalnic-conductor`` admin; waits are woken by the service's notifier.  The
conductor's port updates are repeated when a concurrent write (a tenant's
update, the agent's status report) won the port's revision: they set values,
so repeating them is safe, and a flow must not fail on that race.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from metalnic.auth import Principal
from metalnic.db.session import retry_stale
from metalnic.errors import Conflict, MetalnicError, NetworkNotFound
from metalnic.network import access, feed
from metalnic.network.api.schemas import PortCreate, PortUpdate
from metalnic.network.models import Network, NetworkPort, Verification
from metalnic.network.service import NetworkService

CONDUCTOR = Principal("metalnic-conductor", frozenset({"admin"}), "admin")


class EmbeddedNetworkClient:
    def __init__(self, service: NetworkService) -> None:
        self.service = service

    def network_id(self, name_or_id: str) -> str:
        with self.service.db.transaction() as s:
            net = s.get(Network, name_or_id)
            if net is not None:
                return net.id
            named = list(s.scalars(select(Network.id).where(Network.name == name_or_id)))
            if not named:
                raise NetworkNotFound(name_or_id)
            if len(named) > 1:  # never guess which one carries the hosts
                raise Conflict(
                    f"{len(named)} networks are named {name_or_id}: configure the network's id."
                )
            return named[0]

    def agent_alive(self, nic_host: str) -> bool:
        with self.service.db.transaction() as s:
            return self.service.agents.serving(s, nic_host) is not None

    def get_port(self, port_id: str) -> dict[str, Any] | None:
        port = self.service.ports.find(port_id)
        return dict(port) if port is not None else None

    def find_ports(self, device_id: str, name_prefix: str) -> list[dict[str, Any]]:
        ports = self.service.ports.list(CONDUCTOR, {"device_id": device_id})
        # Only ports the control plane made (a tenant cannot mark a port so).
        return [
            dict(p)
            for p in ports
            if p["name"].startswith(name_prefix)
            and p["device_owner"].startswith(access.RESERVED_DEVICE_OWNER_PREFIX)
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
        port = self.service.ports.create(
            CONDUCTOR,
            PortCreate.parse(
                {
                    "network_id": network_id,
                    "name": name,
                    "mac_address": mac,
                    "binding:vnic_type": "smart-nic",
                    "binding:host_id": nic_host,
                    "binding:profile": profile,
                    "device_id": device_id,
                    "device_owner": "baremetal:none",
                    "port_security_enabled": bool(security_groups),
                    "security_groups": list(security_groups),
                },
                ("port",),
            ),
        )
        return dict(port)

    def bind_port(
        self, port_id: str, nic_host: str, profile: dict[str, Any], device_id: str, mac: str
    ) -> dict[str, Any]:
        body = {
            "mac_address": mac,
            "binding:vnic_type": "smart-nic",
            "binding:host_id": nic_host,
            "binding:profile": profile,
            "device_id": device_id,
            "device_owner": "baremetal:none",
        }
        change = PortUpdate.parse(body, ("port",))
        port = retry_stale(lambda: self.service.ports.update(CONDUCTOR, port_id, change))
        return dict(port)

    def unbind_port(self, port_id: str, nic_host: str) -> int | None:
        unbound = PortUpdate.parse({"binding:host_id": "", "binding:profile": {}})
        retry_stale(lambda: self.service.ports.update(CONDUCTOR, port_id, unbound))
        with self.service.db.transaction() as s:
            return feed.revisions(s, nic_host)[0]

    def delete_port(self, port_id: str) -> int | None:
        try:
            return retry_stale(lambda: self.service.ports.delete(CONDUCTOR, port_id))
        except MetalnicError:
            return None

    def wait_port_active(self, port_id: str, timeout: float) -> tuple[bool, str]:
        last: dict[str, Any] = {}

        def check(s: Any) -> bool:
            port = s.get(NetworkPort, port_id)
            if port is None:
                last["why"] = "the port was deleted"
                return True
            last["why"] = port.status_reason or f"status {port.status}"
            if port.vif_type == "binding_failed" or port.status == "ERROR":
                return True
            if port.status != "ACTIVE" and self.service.agents.serving(s, port.host_id) is None:
                last["why"] = f"the agent serving NIC host {port.host_id} stopped meanwhile"
                return True  # no point waiting for a dead agent
            return bool(port.status == "ACTIVE")

        done = self.service.feed.wait(check, timeout)
        port = self.get_port(port_id)
        if done and port is not None and port["status"] == "ACTIVE":
            return True, ""
        return False, last.get("why", "") if done else (
            f"timed out after {timeout:.0f} s waiting for ACTIVE ({last.get('why', '')})"
        )

    def verify_plugged(
        self, nic_host: str, port_ids: list[str], timeout: float
    ) -> dict[str, tuple[bool, str]]:
        ident = self.service.feed.request_verification(nic_host, port_ids)
        try:
            answered = self.service.feed.wait(
                lambda s: (
                    (row := s.get(Verification, ident)) is not None and row.result is not None
                ),
                timeout,
            )
            result = self.service.feed.verification(ident) if answered else None
        finally:
            self.service.feed.forget_verification(ident)
        if result is None:
            why = f"the agent of {nic_host} did not confirm within {timeout:.0f} s"
            return {p: (False, why) for p in port_ids}
        out: dict[str, tuple[bool, str]] = {}
        for p in port_ids:
            answer = result.get(p, {})
            ok = bool(answer.get("plugged"))
            out[p] = (ok, "" if ok else str(answer.get("reason") or "not confirmed"))
        return out

    def wait_removed(self, nic_host: str, revision: int, timeout: float) -> bool:
        return self.service.feed.wait(lambda s: feed.revisions(s, nic_host)[1] >= revision, timeout)
