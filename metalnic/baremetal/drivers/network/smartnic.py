"""The ``smartnic`` network interface: plugs a node's smart NIC ports into networks.

The unit is a *link* (``drivers.base.Link``): a smart NIC port, or a port
group bonding smart NIC ports of one NIC host — one network port each.  For
every link of the node — in parallel, one thread per link:

* attach: the agent serving exactly that NIC host must be alive → ``plug``:
  create the network port (``smart-nic``, the NIC host, a binding profile
  carrying every member's ``local_link_connection``, the bond and the node) —
  or, for the tenant phase, bind the VIF attached through
  ``/v1/nodes/{id}/vifs`` — and wait until the agent reports it ACTIVE;
* detach: the agent must be alive (only it can confirm) → ``unplug``: delete
  the port (or unbind the VIF) and wait until the agent has taken it off the NIC.

The network service is reached only through the ``NetworkClient`` given at
construction (``drivers/network/client.py``).

When any link fails, every port this call created is removed again (VIFs are
unbound) and the error names the bare-metal port or port group, the NIC host
and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from metalnic.baremetal.drivers.base import (
    DriverConfigError,
    DriverError,
    Link,
    NetworkInterface,
    NetworkPhase,
    NodeContext,
)
from metalnic.baremetal.drivers.network.client import (
    DHCPV6_STATEFUL_ADDRESSES,
    Binding,
    BindingProfile,
    GroupInformation,
    LinkInformation,
    NetworkClient,
    NetworkPort,
    NewPort,
    Plugged,
    get_port,
)

NAME_PREFIX = "metalnic-"
TENANT = NetworkPhase.TENANT


@dataclass(frozen=True)
class SmartNicConfig:
    networks: dict[NetworkPhase, str]  # phase -> network name or id (tenant uses VIFs)
    active_timeout: float
    removed_timeout: float
    # phase -> security group ids for its ports; none: port security off there
    security_groups: dict[NetworkPhase, list[str]] = field(default_factory=dict)
    # addresses per phase port on each dhcpv6-stateful subnet
    dhcpv6_addresses: int = DHCPV6_STATEFUL_ADDRESSES


class SmartNicNetwork(NetworkInterface):
    def __init__(self, client: NetworkClient | None, config: SmartNicConfig) -> None:
        self._client = client
        self.config = config

    def client(self) -> NetworkClient:
        if self._client is None:
            raise DriverConfigError("no network service is configured for the smartnic interface")
        return self._client

    def validate(self, ctx: NodeContext) -> None:
        self.client()
        if not ctx.smartnic_ports:
            raise DriverConfigError(
                f"node {ctx.uuid} uses the smartnic network interface but has no smart NIC port"
            )

    def need_power_on(self, ctx: NodeContext) -> bool:
        return bool(ctx.smartnic_ports)

    # --- attach -----------------------------------------------------------------------

    def attach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        client = self.client()
        links = self._links_for(ctx, phase)
        if not links:
            return
        network = None if phase == TENANT else client.network_id(self._network(phase))
        done: list[tuple[Link, Plugged]] = []
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
        phase: NetworkPhase,
        network: str | None,
    ) -> tuple[Link, Plugged]:
        """Plug ``link``: a new port on ``network``, or (None) the link's tenant VIF."""
        self._require_agent(client, link.host)
        binding = Binding(link.host, link.address, ctx.uuid, binding_profile(ctx, link))
        if network is None:
            assert link.vif is not None
            target: NewPort | str = link.vif
        else:
            groups = tuple(self.config.security_groups.get(phase, ()))
            target = NewPort(network, _name(phase, link), groups, self.config.dhcpv6_addresses)
        plugged = client.plug(target, binding, self.config.active_timeout)
        if not plugged.active:
            self._rollback(client, [(link, plugged)])
            raise DriverError(plugged.reason)
        return link, plugged

    def _rollback(self, client: NetworkClient, done: Sequence[tuple[Link, Plugged]]) -> None:
        """Take off what this call plugged: delete the ports it made, unbind the VIFs."""
        for link, plugged in done:
            client.unplug(
                plugged.port_id,
                link.host,
                delete=plugged.created,
                timeout=self.config.removed_timeout,
            )

    # --- detach -----------------------------------------------------------------------

    def detach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        client = self.client()
        found = {
            link.uuid: port
            for link, port in self._network_ports(client, ctx, phase)
            if port is not None and (phase != TENANT or port.nic_host)
        }
        targets = [link for link in ctx.smartnic_links if link.uuid in found]
        if not targets:
            return
        errors = self._parallel(
            targets, lambda link: self._detach_one(client, link, found[link.uuid].id, phase)
        )
        if errors:
            raise DriverError("; ".join(errors))

    def _detach_one(
        self, client: NetworkClient, link: Link, network_port: str, phase: NetworkPhase
    ) -> None:
        self._require_agent(client, link.host)
        removed = client.unplug(
            network_port,
            link.host,
            delete=phase != TENANT,  # a tenant VIF is the tenant's: it is only unbound
            timeout=self.config.removed_timeout,
        )
        if not removed:
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
            [found], lambda item: self._attach_one(client, ctx, item, TENANT, None)
        )
        if errors:
            raise DriverError(errors[0])

    def unplug_vif(self, ctx: NodeContext, link: str) -> None:
        found = self._link(ctx, link)
        if found is None or found.vif is None:
            return
        client = self.client()
        port = get_port(client, found.vif)
        if port is None or not port.nic_host:
            return
        errors = self._parallel(
            [found], lambda item: self._detach_one(client, item, port.id, TENANT)
        )
        if errors:
            raise DriverError(errors[0])

    def phase_ports(self, ctx: NodeContext, phase: NetworkPhase) -> tuple[str, ...]:
        client = self.client()
        return tuple(p.id for _, p in self._network_ports(client, ctx, phase) if p is not None)

    @staticmethod
    def _link(ctx: NodeContext, uuid: str) -> Link | None:
        return next((link for link in ctx.smartnic_links if link.uuid == uuid), None)

    # --- the boot gate ----------------------------------------------------------------

    def verify_active(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        client = self.client()
        by_host: dict[str, dict[str, Link]] = {}
        for link, port in self._network_ports(client, ctx, phase):
            if port is None or not port.active:
                state = port.status if port else "missing"
                raise DriverError(
                    f"boot gate: {link.kind} {link.uuid} is {state} on the {phase} network"
                )
            by_host.setdefault(link.host, {})[port.id] = link
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
            for network_port, verdict in sorted(answer.items()):
                if not verdict.plugged:
                    link = by_host[host][network_port]
                    raise DriverError(
                        f"boot gate: {link.kind} {link.uuid} is not plugged on NIC host {host} "
                        f"as the {phase} network needs ({verdict.reason})"
                    )

    # --- helpers ----------------------------------------------------------------------

    def _network(self, phase: NetworkPhase) -> str:
        try:
            return self.config.networks[phase]
        except KeyError:
            raise DriverConfigError(f"no network is configured for the {phase} phase") from None

    @staticmethod
    def _links_for(ctx: NodeContext, phase: NetworkPhase) -> list[Link]:
        if phase != TENANT:
            return list(ctx.smartnic_links)
        return [link for link in ctx.smartnic_links if link.vif]

    @staticmethod
    def _network_ports(
        client: NetworkClient, ctx: NodeContext, phase: NetworkPhase
    ) -> list[tuple[Link, NetworkPort | None]]:
        """Each link's network port in ``phase`` (None: it has none); tenant: links with VIFs."""
        if phase == TENANT:
            links = [link for link in ctx.smartnic_links if link.vif]
            if not links:
                return []
            vifs = {p.id: p for p in client.ports(ids=[str(link.vif) for link in links])}
            return [(link, vifs.get(str(link.vif))) for link in links]
        mine = {
            p.name: p
            for p in client.ports(device_id=ctx.uuid, name_prefix=f"{NAME_PREFIX}{phase}-")
        }
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


def _name(phase: NetworkPhase, link: Link) -> str:
    return f"{NAME_PREFIX}{phase}-{link.uuid}"


def binding_profile(ctx: NodeContext, link: Link) -> BindingProfile:
    """The network port's ``binding:profile``: what the NIC's agent needs to plug the link.

    ``local_link_information`` lists every member's connection (one for a plain
    port); a bond adds ``local_group_information`` in the shape Neutron uses
    for bare-metal port groups.
    """
    profile = BindingProfile(
        local_link_information=[
            cast(LinkInformation, dict(p.local_link_connection)) for p in link.members
        ],
        baremetal_node=ctx.uuid,
    )
    if link.group is None:
        profile["baremetal_port"] = link.uuid
    else:
        profile["baremetal_portgroup"] = link.uuid
        profile["local_group_information"] = GroupInformation(
            id=link.group.uuid,
            name=link.group.name,
            bond_mode=link.group.mode,
            bond_properties=dict(link.group.properties),
        )
    return profile
