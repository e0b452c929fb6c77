"""The ``smartnic`` network interface: plugs a node's smart NIC ports into networks.

The unit is a *link* (``drivers.base.Link``): a smart NIC port, or a port
group bonding smart NIC ports of one NIC host — one network port each.  For
every link of the node — in parallel, one thread per link:

* attach: the agent serving exactly that NIC host must be alive → create the
  network port (``smart-nic``, the NIC host, a binding profile carrying every
  member's ``local_link_connection``, the bond and the node) — or, for the
  tenant phase, bind the VIF attached through ``/v1/nodes/{id}/vifs`` → wait,
  event-driven, until the agent reports it ACTIVE;
* detach: the agent must be alive (only it can confirm) → delete the port (or
  unbind the VIF) → wait until the agent has programmed the revision without it.

When any link fails, every port this call created is removed again (VIFs are
unbound) and the error names the bare-metal port or port group, the NIC host
and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from metalnic.baremetal.drivers.base import (
    DriverConfigError,
    DriverError,
    Link,
    NetworkInterface,
    NodeContext,
)
from metalnic.baremetal.drivers.network.client import NetworkClient

NAME_PREFIX = "metalnic-"


@dataclass(frozen=True)
class SmartNicConfig:
    networks: dict[str, str]  # phase -> network name or id (tenant uses VIFs)
    active_timeout: float
    removed_timeout: float
    # phase -> security group ids for its ports; none: port security off there
    security_groups: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Done:
    link: Link
    network_port: str
    created: bool  # False: a tenant VIF that was bound


class SmartNicNetwork(NetworkInterface):
    def __init__(self, client: Callable[[], NetworkClient | None], config: SmartNicConfig) -> None:
        self._client = client
        self.config = config

    def client(self) -> NetworkClient:
        client = self._client()
        if client is None:
            raise DriverConfigError("no network service is configured for the smartnic interface")
        return client

    def validate(self, ctx: NodeContext) -> None:
        self.client()
        if not ctx.smartnic_ports:
            raise DriverConfigError(
                f"node {ctx.uuid} uses the smartnic network interface but has no smart NIC port"
            )

    def need_power_on(self, ctx: NodeContext) -> bool:
        return bool(ctx.smartnic_ports)

    # --- attach -----------------------------------------------------------------------

    def attach(self, ctx: NodeContext, phase: str) -> None:
        client = self.client()
        links = self._links_for(ctx, phase)
        if not links:
            return
        network = None if phase == "tenant" else client.network_id(self._network(phase))
        done: list[_Done] = []
        errors = self._parallel(
            links, lambda link: done.append(self._attach_one(client, ctx, link, phase, network))
        )
        if errors:
            self._rollback(client, done)
            raise DriverError("; ".join(errors))

    def _attach_one(
        self,
        client: NetworkClient,
        ctx: NodeContext,
        link: Link,
        phase: str,
        network: str | None,
    ) -> _Done:
        self._require_agent(client, link.host)
        profile = binding_profile(ctx, link)
        if network is None:
            assert link.vif is not None
            client.bind_port(link.vif, link.host, profile, ctx.uuid, link.address)
            result = _Done(link, link.vif, created=False)
        else:
            made = client.create_port(
                network,
                _name(phase, link),
                link.address,
                link.host,
                profile,
                ctx.uuid,
                self.config.security_groups.get(phase, []),
            )
            result = _Done(link, made["id"], created=True)
        ok, why = client.wait_port_active(result.network_port, self.config.active_timeout)
        if not ok:
            self._rollback(client, [result])
            raise DriverError(why)
        return result

    def _rollback(self, client: NetworkClient, done: list[_Done]) -> None:
        for item in done:
            host = item.link.host
            revision = (
                client.delete_port(item.network_port)
                if item.created
                else client.unbind_port(item.network_port, host)
            )
            if revision is not None:
                client.wait_removed(host, revision, self.config.removed_timeout)

    # --- detach -----------------------------------------------------------------------

    def detach(self, ctx: NodeContext, phase: str) -> None:
        client = self.client()
        ids = {
            link.uuid: network_port
            for link, network_port in self._network_ports(client, ctx, phase)
            if network_port and (phase != "tenant" or self._bound(client, network_port))
        }
        targets = [link for link in ctx.smartnic_links if link.uuid in ids]
        if not targets:
            return
        errors = self._parallel(
            targets, lambda link: self._detach_one(client, link, ids[link.uuid], phase)
        )
        if errors:
            raise DriverError("; ".join(errors))

    @staticmethod
    def _bound(client: NetworkClient, vif: str | None) -> bool:
        port = client.get_port(vif) if vif else None
        return bool(port and port["binding:host_id"])

    def _detach_one(self, client: NetworkClient, link: Link, network_port: str, phase: str) -> None:
        host = link.host
        self._require_agent(client, host)
        revision = (
            client.unbind_port(network_port, host)
            if phase == "tenant"
            else client.delete_port(network_port)
        )
        if revision is not None and not client.wait_removed(
            host, revision, self.config.removed_timeout
        ):
            raise DriverError(
                f"timed out after {self.config.removed_timeout:.0f} s waiting for "
                "the agent to remove it from the NIC"
            )

    # --- one VIF of a deployed node ---------------------------------------------------

    def plug_vif(self, ctx: NodeContext, link: str) -> None:
        found = self._link(ctx, link)
        if found is None or found.vif is None:
            return  # not a smart NIC link: nothing to program
        client = self.client()
        errors = self._parallel(
            [found], lambda item: self._attach_one(client, ctx, item, "tenant", None)
        )
        if errors:
            raise DriverError(errors[0])

    def unplug_vif(self, ctx: NodeContext, link: str) -> None:
        found = self._link(ctx, link)
        if found is None or found.vif is None:
            return
        client = self.client()
        if not self._bound(client, found.vif):
            return
        vif = found.vif
        errors = self._parallel([found], lambda item: self._detach_one(client, item, vif, "tenant"))
        if errors:
            raise DriverError(errors[0])

    @staticmethod
    def _link(ctx: NodeContext, uuid: str) -> Link | None:
        return next((link for link in ctx.smartnic_links if link.uuid == uuid), None)

    # --- the boot gate ----------------------------------------------------------------

    def verify_active(self, ctx: NodeContext, phase: str) -> None:
        client = self.client()
        by_host: dict[str, dict[str, Link]] = {}
        for link, network_port in self._network_ports(client, ctx, phase):
            found = client.get_port(network_port) if network_port else None
            if found is None or found["status"] != "ACTIVE":
                state = found["status"] if found else "missing"
                raise DriverError(
                    f"boot gate: {link.kind} {link.uuid} is {state} on the {phase} network"
                )
            by_host.setdefault(link.host, {})[found["id"]] = link
        # The status is what the agent last said; now it reads OVS back, per NIC at once.
        hosts = sorted(by_host)
        with ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="gate") as pool:
            answers = list(
                pool.map(
                    lambda h: client.verify_plugged(
                        h, sorted(by_host[h]), self.config.active_timeout
                    ),
                    hosts,
                )
            )
        for host, answer in zip(hosts, answers, strict=True):
            for network_port, (ok, why) in sorted(answer.items()):
                if not ok:
                    link = by_host[host][network_port]
                    raise DriverError(
                        f"boot gate: {link.kind} {link.uuid} is not plugged on NIC host {host} "
                        f"as the {phase} network needs ({why})"
                    )

    # --- helpers ----------------------------------------------------------------------

    def _network(self, phase: str) -> str:
        try:
            return self.config.networks[phase]
        except KeyError:
            raise DriverConfigError(f"no network is configured for the {phase} phase") from None

    @staticmethod
    def _links_for(ctx: NodeContext, phase: str) -> list[Link]:
        if phase != "tenant":
            return list(ctx.smartnic_links)
        return [link for link in ctx.smartnic_links if link.vif]

    @staticmethod
    def _network_ports(
        client: NetworkClient, ctx: NodeContext, phase: str
    ) -> list[tuple[Link, str | None]]:
        """Each link's network port in ``phase`` (None: it has none); tenant: links with VIFs."""
        if phase == "tenant":
            return [(link, link.vif) for link in ctx.smartnic_links if link.vif]
        mine = {p["name"]: p["id"] for p in client.find_ports(ctx.uuid, f"{NAME_PREFIX}{phase}-")}
        return [(link, mine.get(_name(phase, link))) for link in ctx.smartnic_links]

    @staticmethod
    def _require_agent(client: NetworkClient, host: str) -> None:
        if not client.agent_alive(host):
            raise DriverError(f"no live agent serves NIC host {host}")

    @staticmethod
    def _parallel(links: list[Link], work: Callable[[Link], Any]) -> list[str]:
        """Run ``work`` for every link at once; the errors, each naming its link and host."""
        errors: list[str] = []

        def run(link: Link) -> None:
            try:
                work(link)
            except Exception as exc:  # collected: the caller rolls back and reports them all
                message = exc.message if isinstance(exc, DriverError) else str(exc)
                errors.append(f"{link.kind} {link.uuid} (NIC host {link.host}): {message}")

        with ThreadPoolExecutor(max_workers=len(links), thread_name_prefix="nic") as pool:
            list(pool.map(run, links))
        return errors


def _name(phase: str, link: Link) -> str:
    return f"{NAME_PREFIX}{phase}-{link.uuid}"


def binding_profile(ctx: NodeContext, link: Link) -> dict[str, Any]:
    """The network port's ``binding:profile``: what the NIC's agent needs to plug the link.

    ``local_link_information`` lists every member's connection (one for a plain
    port); a bond adds ``local_group_information`` in the shape Neutron uses
    for bare-metal port groups.
    """
    profile: dict[str, Any] = {
        "local_link_information": [dict(p.local_link_connection) for p in link.members],
        "baremetal_node": ctx.uuid,
    }
    if link.group is None:
        profile["baremetal_port"] = link.uuid
    else:
        profile["baremetal_portgroup"] = link.uuid
        profile["local_group_information"] = {
            "id": link.group.uuid,
            "name": link.group.name,
            "bond_mode": link.group.mode,
            "bond_properties": dict(link.group.properties),
        }
    return profile
