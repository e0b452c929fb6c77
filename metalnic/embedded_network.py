"""The embedded network service as the bare-metal side's ``NetworkClient``.

The adapter between the two packages, so it lives at the composition root
(``server.py`` builds it): the bare-metal side owns the protocol and its values
(``baremetal/drivers/network/client.py``), the network side knows nothing of
them, and this module calls only ``NetworkService``'s public methods, as the
internal ``metalnic-conductor`` admin.  Waits are woken by the service's
notifier.  The service's errors are translated into the seam's in one place
(``_translated``).

The conductor's port updates are repeated when a concurrent write (a tenant's
update, the agent's status report) won the port's revision: they set values,
so repeating them is safe, and a flow must not fail on that race.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from metalnic.auth import Principal
from metalnic.baremetal.drivers.network.client import (
    DEVICE_OWNER,
    VNIC_TYPE,
    Binding,
    DhcpOption,
    NetworkClientError,
    NetworkConflict,
    NetworkObjectNotFound,
    NetworkPort,
    NewPort,
    Plugged,
    Verdict,
    more_dhcpv6_addresses,
    selected,
)
from metalnic.db.session import retry_stale
from metalnic.errors import Conflict, MetalnicError, NotFound
from metalnic.network.inputs import PortCreate, PortUpdate
from metalnic.network.service import NetworkService
from metalnic.network.views import PortView

CONDUCTOR = Principal("metalnic-conductor", frozenset({"admin"}), "admin")
UNBOUND = {"binding:host_id": "", "binding:profile": {}}


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise NetworkObjectNotFound(exc.message) from exc
    except Conflict as exc:
        raise NetworkConflict(exc.message) from exc
    except MetalnicError as exc:
        raise NetworkClientError(exc.message) from exc


def _port(p: PortView) -> NetworkPort:
    """The seam's port from the service's view of it."""
    return NetworkPort(
        id=p["id"],
        name=p["name"],
        network_id=p["network_id"],
        project_id=p["project_id"],
        mac=p["mac_address"],
        device_id=p["device_id"],
        device_owner=p["device_owner"],
        nic_host=p["binding:host_id"],
        status=p["status"],
        vif_type=p["binding:vif_type"],
        reason=str(p["binding:vif_details"].get("reason") or ""),
        port_security=p["port_security_enabled"],
        security_groups=tuple(p["security_groups"]),
        ip_versions=NetworkPort.versions_of([f["ip_address"] for f in p["fixed_ips"]]),
    )


class EmbeddedNetworkClient:
    def __init__(self, service: NetworkService) -> None:
        self.service = service

    def network_id(self, name_or_id: str) -> str:
        with _translated():
            by_id = self.service.networks.list(CONDUCTOR, {"id": name_or_id})
            named = by_id or self.service.networks.list(CONDUCTOR, {"name": name_or_id})
        if not named:
            raise NetworkObjectNotFound(f"Network {name_or_id} could not be found.")
        if len(named) > 1:  # never guess which one carries the hosts
            raise NetworkConflict(
                f"{len(named)} networks are named {name_or_id}: configure the network's id."
            )
        return named[0]["id"]

    def agent_alive(self, nic_host: str) -> bool:
        with _translated(), self.service.db.transaction() as s:
            return self.service.agents.serving(s, nic_host) is not None

    def ports(
        self, *, ids: Sequence[str] = (), device_id: str | None = None, name_prefix: str = ""
    ) -> list[NetworkPort]:
        if not ids and device_id is None:
            raise ValueError("ports() needs ids or device_id")
        with _translated():
            if ids:
                found = [p for i in ids if (p := self.service.ports.find(i)) is not None]
            else:
                found = self.service.ports.list(CONDUCTOR, {"device_id": str(device_id)})
            converted = [_port(p) for p in found]
        return [p for p in converted if selected(p, device_id, name_prefix)]

    def plug(self, port: NewPort | str, binding: Binding, timeout: float) -> Plugged:
        body: dict[str, object] = {
            "mac_address": binding.mac,
            "binding:vnic_type": VNIC_TYPE,
            "binding:host_id": binding.nic_host,
            "binding:profile": dict(binding.profile),
            "device_id": binding.device_id,
            "device_owner": DEVICE_OWNER,
        }
        with _translated():
            if isinstance(port, NewPort):
                new = {
                    **body,
                    "network_id": port.network_id,
                    "name": port.name,
                    "port_security_enabled": bool(port.security_groups),
                    "security_groups": list(port.security_groups),
                }
                made = self.service.ports.create(CONDUCTOR, PortCreate.parse(new, ("port",)))
                port_id, created = made["id"], True
                try:
                    self._more_dhcpv6_addresses(made, port.dhcpv6_addresses)
                except MetalnicError:
                    self.service.ports.delete(CONDUCTOR, port_id)  # nothing created
                    raise
            else:
                change = PortUpdate.parse(body, ("port",))
                retry_stale(lambda: self.service.ports.update(CONDUCTOR, port, change))
                port_id, created = port, False
        active, reason = self._wait_active(port_id, timeout)
        return Plugged(port_id, created, active, reason)

    def _more_dhcpv6_addresses(self, made: PortView, count: int) -> None:
        fixed = [(f["subnet_id"], f["ip_address"]) for f in made["fixed_ips"]]
        if count <= 1 or not any(":" in ip for _, ip in fixed):
            return  # (no subnet read for a port without IPv6 addresses)
        stateful = [
            s["id"]
            for s in self.service.subnets.list(CONDUCTOR, {"network_id": made["network_id"]})
            if s["ipv6_address_mode"] == "dhcpv6-stateful"
        ]
        wanted = more_dhcpv6_addresses(fixed, stateful, count)
        if wanted is not None:
            change = PortUpdate.parse({"fixed_ips": wanted}, ("port",))
            retry_stale(lambda: self.service.ports.update(CONDUCTOR, made["id"], change))

    def _wait_active(self, port_id: str, timeout: float) -> tuple[bool, str]:
        last = {"why": ""}

        def settled(s: object) -> bool:
            view = self.service.ports.find(port_id)
            if view is None:
                last["why"] = "the port was deleted"
                return True
            port = _port(view)
            last["why"] = port.reason or f"status {port.status}"
            if port.vif_type == "binding_failed" or port.status in ("ERROR", "ACTIVE"):
                return True
            if not self.agent_alive(port.nic_host):
                last["why"] = f"the agent serving NIC host {port.nic_host} stopped meanwhile"
                return True  # no point waiting for a dead agent
            return False

        if not self.service.feed.wait(settled, timeout):
            return False, f"timed out after {timeout:.0f} s waiting for ACTIVE ({last['why']})"
        found = self.service.ports.find(port_id)
        if found is not None and found["status"] == "ACTIVE":
            return True, ""
        return False, last["why"]

    def unplug(self, port_id: str, nic_host: str, *, delete: bool, timeout: float) -> bool:
        try:
            with _translated():
                if delete:
                    revision = retry_stale(lambda: self.service.ports.delete(CONDUCTOR, port_id))
                else:
                    unbound = PortUpdate.parse(dict(UNBOUND), ("port",))
                    retry_stale(lambda: self.service.ports.update(CONDUCTOR, port_id, unbound))
                    revision = self.service.feed.revision(nic_host)[0]
        except NetworkObjectNotFound:
            return True  # gone already: nothing on the NIC to wait for
        if revision is None:
            return True  # it was not bound: no NIC has it
        wanted = revision
        return self.service.feed.wait(
            lambda _s: self.service.feed.revision(nic_host)[1] >= wanted, timeout
        )

    def verify_plugged(
        self, nic_host: str, port_ids: Sequence[str], timeout: float
    ) -> dict[str, Verdict]:
        ident = self.service.feed.request_verification(nic_host, list(port_ids))
        try:
            answered = self.service.feed.wait(
                lambda _s: self.service.feed.verification(ident) is not None, timeout
            )
            result = self.service.feed.verification(ident) if answered else None
        finally:
            self.service.feed.forget_verification(ident)
        if result is None:
            why = f"the agent of {nic_host} did not confirm within {timeout:.0f} s"
            return {p: Verdict(False, why) for p in port_ids}
        verdicts: dict[str, Verdict] = {}
        for p in port_ids:
            answer = result.get(p)
            ok = answer is not None and answer["plugged"]
            reason = answer["reason"] if answer is not None else ""
            verdicts[p] = Verdict(ok, "" if ok else reason or "not confirmed")
        return verdicts

    def set_dhcp_options(self, port_id: str, options: Sequence[DhcpOption]) -> None:
        with _translated():
            change = PortUpdate.parse({"extra_dhcp_opts": [o.body() for o in options]}, ("port",))
            retry_stale(lambda: self.service.ports.update(CONDUCTOR, port_id, change))
