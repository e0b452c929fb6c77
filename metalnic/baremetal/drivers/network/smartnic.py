"""The ``smartnic`` network interface: plugs a node's smart NIC ports into networks.

For every smart NIC port of the node — in parallel, one thread per port:

* attach: the agent serving exactly that NIC host must be alive → create the
  network port (``smart-nic``, the NIC host, a binding profile carrying the
  port's ``local_link_connection`` and the node) — or, for the tenant phase,
  bind the VIF attached through ``/v1/nodes/{id}/vifs`` → wait, event-driven,
  until the agent reports it ACTIVE;
* detach: the agent must be alive (only it can confirm) → delete the port (or
  unbind the VIF) → wait until the agent has programmed the revision without it.

When any port fails, every port this call created is removed again (VIFs are
unbound) and the error names the bare-metal port, the NIC host and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from metalnic.baremetal.drivers.base import (
    DriverConfigError,
    DriverError,
    NetworkInterface,
    NodeContext,
    PortInfo,
)
from metalnic.baremetal.drivers.network.client import NetworkClient

NAME_PREFIX = "metalnic-"


@dataclass(frozen=True)
class SmartNicConfig:
    networks: dict[str, str]  # phase -> network name or id (tenant uses VIFs)
    active_timeout: float
    removed_timeout: float


@dataclass
class _Done:
    port: PortInfo
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
        ports = self._ports_for(ctx, phase)
        if not ports:
            return
        network = None if phase == "tenant" else client.network_id(self._network(phase))
        done: list[_Done] = []
        errors = self._parallel(
            ports, lambda p: done.append(self._attach_one(client, ctx, p, phase, network))
        )
        if errors:
            self._rollback(client, done)
            raise DriverError("; ".join(errors))

    def _attach_one(
        self,
        client: NetworkClient,
        ctx: NodeContext,
        port: PortInfo,
        phase: str,
        network: str | None,
    ) -> _Done:
        host = port.local_link_connection["hostname"]
        self._require_agent(client, host)
        profile = {
            "local_link_information": [dict(port.local_link_connection)],
            "baremetal_node": ctx.uuid,
            "baremetal_port": port.uuid,
        }
        if network is None:
            assert port.vif is not None
            client.bind_port(port.vif, host, profile, ctx.uuid)
            result = _Done(port, port.vif, created=False)
        else:
            made = client.create_port(
                network, f"{NAME_PREFIX}{phase}-{port.uuid}", port.address, host, profile, ctx.uuid
            )
            result = _Done(port, made["id"], created=True)
        ok, why = client.wait_port_active(result.network_port, self.config.active_timeout)
        if not ok:
            self._rollback(client, [result])
            raise DriverError(why)
        return result

    def _rollback(self, client: NetworkClient, done: list[_Done]) -> None:
        for item in done:
            host = item.port.local_link_connection["hostname"]
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
        if phase == "tenant":
            targets = [(p, p.vif) for p in self._ports_for(ctx, phase)]
        else:
            mine = {p["name"]: p for p in client.find_ports(ctx.uuid, f"{NAME_PREFIX}{phase}-")}
            targets = [
                (p, mine[f"{NAME_PREFIX}{phase}-{p.uuid}"]["id"])
                for p in ctx.smartnic_ports
                if f"{NAME_PREFIX}{phase}-{p.uuid}" in mine
            ]
        if phase == "tenant":
            targets = [(p, v) for p, v in targets if self._bound(client, v)]
        if not targets:
            return
        by_port = {p.uuid: str(v) for p, v in targets}  # PortInfo is not hashable
        errors = self._parallel(
            [p for p, _ in targets], lambda p: self._detach_one(client, p, by_port[p.uuid], phase)
        )
        if errors:
            raise DriverError("; ".join(errors))

    @staticmethod
    def _bound(client: NetworkClient, vif: str | None) -> bool:
        port = client.get_port(vif) if vif else None
        return bool(port and port["binding:host_id"])

    def _detach_one(
        self, client: NetworkClient, port: PortInfo, network_port: str, phase: str
    ) -> None:
        host = port.local_link_connection["hostname"]
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

    # --- the boot gate ----------------------------------------------------------------

    def verify_active(self, ctx: NodeContext, phase: str) -> None:
        client = self.client()
        if phase == "tenant":
            ids = {p.uuid: p.vif for p in self._ports_for(ctx, phase)}
        else:
            mine = {
                p["name"]: p["id"] for p in client.find_ports(ctx.uuid, f"{NAME_PREFIX}{phase}-")
            }
            ids = {p.uuid: mine.get(f"{NAME_PREFIX}{phase}-{p.uuid}") for p in ctx.smartnic_ports}
        for bm_port, network_port in ids.items():
            found = client.get_port(network_port) if network_port else None
            if found is None or found["status"] != "ACTIVE":
                state = found["status"] if found else "missing"
                raise DriverError(f"boot gate: port {bm_port} is {state} on the {phase} network")

    # --- helpers ----------------------------------------------------------------------

    def _network(self, phase: str) -> str:
        try:
            return self.config.networks[phase]
        except KeyError:
            raise DriverConfigError(f"no network is configured for the {phase} phase") from None

    @staticmethod
    def _ports_for(ctx: NodeContext, phase: str) -> list[PortInfo]:
        if phase != "tenant":
            return list(ctx.smartnic_ports)
        return [p for p in ctx.smartnic_ports if p.vif]

    @staticmethod
    def _require_agent(client: NetworkClient, host: str) -> None:
        if not client.agent_alive(host):
            raise DriverError(f"no live agent serves NIC host {host}")

    @staticmethod
    def _parallel(ports: list[PortInfo], work: Callable[[PortInfo], Any]) -> list[str]:
        """Run ``work`` for every port at once; the errors, each naming its port and host."""
        errors: list[str] = []

        def run(port: PortInfo) -> None:
            try:
                work(port)
            except Exception as exc:  # collected: the caller rolls back and reports them all
                message = exc.message if isinstance(exc, DriverError) else str(exc)
                errors.append(
                    f"port {port.uuid} (NIC host "
                    f"{port.local_link_connection.get('hostname')}): {message}"
                )

        with ThreadPoolExecutor(max_workers=len(ports), thread_name_prefix="nic") as pool:
            list(pool.map(run, ports))
        return errors
