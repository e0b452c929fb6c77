"""One suite for both NetworkClient implementations: what the bare-metal side may
rely on, whichever network service it talks to.

* ``embedded``: the adapter ``server.py`` wires (``metalnic.embedded_network``), in
  this process on a real SQLite database — the app itself is served by uvicorn in a
  thread, so that the fake agents reach it over the real HTTP contract;
* ``neutron``: the openstacksdk client against a real ``metalnic serve`` process
  (its Neutron-compatible ``/network/v2.0`` API standing in for Neutron).

Networks, tenant ports and agents are set up the same way for both: over HTTP.
Where Neutron cannot do what the embedded service does (confirm an unplug, read a
port back from OVS), ``Backend.confirms`` says so and the case checks the
documented weaker answer instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import uvicorn

from metalnic.baremetal.drivers.network.client import (
    DEVICE_OWNER,
    Binding,
    BindingProfile,
    DhcpOption,
    NetworkClient,
    NetworkConflict,
    NetworkObjectNotFound,
    NewPort,
    Verdict,
    get_port,
)
from metalnic.baremetal.drivers.network.neutron import NeutronClient
from metalnic.server import create_app
from metalnic.settings import Settings
from tests.integration.helpers import random_mac
from tests.integration.test_smartnic_interface import ENV, Agents
from tests.support import Server, free_port, start_server

MISSING = "00000000-0000-0000-0000-00000000dead"
AGENT_ERROR = "pf0 is missing on the NIC"


@dataclass
class Backend:
    name: str
    client: NetworkClient
    url: str  # the server whose /network/v2.0 API holds the networks and ports
    confirms: bool  # confirms unplugs and reads ports back from OVS (Neutron cannot)
    nets: dict[str, str]  # name -> id

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/network/v2.0", timeout=30)

    def tenant_port(self, **fields: Any) -> dict[str, Any]:
        body = {"network_id": self.nets["conf-net"], **fields}
        with self.http() as c:
            r = c.post("/ports", json={"port": body})
        assert r.status_code == 201, r.text
        port: dict[str, Any] = r.json()["port"]
        return port


class InProcess:
    """``create_app`` served by uvicorn in a thread (the embedded client's server)."""

    def __init__(self, tmp: Path) -> None:
        settings = Settings(
            state_dir=tmp,
            periodic_interval=float(ENV["METALNIC_PERIODIC_INTERVAL"]),
            agent_down_time=float(ENV["METALNIC_AGENT_DOWN_TIME"]),
        )
        self.app = create_app(settings)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "app did not start"
            time.sleep(0.05)

    @property
    def client(self) -> NetworkClient:
        client: NetworkClient = self.app.state.ctx.registry.network_client
        return client

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _networks(url: str) -> dict[str, str]:
    nets: dict[str, str] = {}
    with httpx.Client(base_url=url + "/network/v2.0", timeout=30) as c:
        for name in ("conf-net", "conf-other", "conf-twin", "conf-twin"):
            r = c.post("/networks", json={"network": {"name": name}})
            assert r.status_code == 201, r.text
            nets[name] = r.json()["network"]["id"]
    return nets


@pytest.fixture(scope="module", params=["embedded", "neutron"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    tmp = tmp_path_factory.mktemp(f"conformance-{request.param}")
    if request.param == "embedded":
        app = InProcess(tmp)
        stop, url, client = app.stop, app.url, app.client
    else:
        srv = start_server(tmp, env=ENV)
        stop, url = srv.stop, srv.url
        client = NeutronClient(srv.url + "/network", poll=0.05)
    agents = Agents(cast(Server, SimpleNamespace(url=url)), tmp)  # it reads only the url
    try:
        agents.start("nic-ok")
        agents.start("nic-err", "--error", AGENT_ERROR)
        agents.start("nic-silent", "--silent")
        with httpx.Client(base_url=url, timeout=30) as c:
            agents.wait_alive(c, "nic-ok", "nic-err", "nic-silent")
        yield Backend(request.param, client, url, request.param == "embedded", _networks(url))
    finally:
        agents.close()
        stop()


def binding(host: str = "nic-ok", device: str = "node-1", mac: str | None = None) -> Binding:
    profile = BindingProfile(
        local_link_information=[{"hostname": host, "port_id": "pf0hpf"}],
        baremetal_node=device,
    )
    return Binding(host, mac or random_mac(), device, profile)


def test_network_id_resolves_an_id_or_one_name(backend: Backend) -> None:
    client, net = backend.client, backend.nets["conf-net"]
    assert client.network_id(net) == net
    assert client.network_id("conf-net") == net
    with pytest.raises(NetworkObjectNotFound, match="Network no-such-net could not be found"):
        client.network_id("no-such-net")
    with pytest.raises(NetworkConflict, match="configure the network's id"):
        client.network_id("conf-twin")  # never a guess between two networks of one name


def test_agent_alive_is_per_nic_host(backend: Backend) -> None:
    assert backend.client.agent_alive("nic-ok")
    assert not backend.client.agent_alive("nic-nobody")


def test_plug_creates_a_port_and_waits_until_active(backend: Backend) -> None:
    client, net = backend.client, backend.nets["conf-net"]
    wanted = binding(device="node-create")
    plugged = client.plug(NewPort(net, "metalnic-conf-1"), wanted, timeout=10)
    assert (plugged.created, plugged.active, plugged.reason) == (True, True, "")
    port = get_port(client, plugged.port_id)
    assert port is not None and port.active
    assert (port.name, port.network_id, port.mac) == ("metalnic-conf-1", net, wanted.mac)
    assert (port.nic_host, port.device_id, port.device_owner) == (
        "nic-ok",
        "node-create",
        DEVICE_OWNER,
    )
    assert (port.port_security, port.security_groups, port.vif_type) == (False, (), "ovs")
    found = client.ports(device_id="node-create", name_prefix="metalnic-conf-")
    assert [p.id for p in found] == [plugged.port_id]
    assert client.unplug(plugged.port_id, "nic-ok", delete=True, timeout=10)
    assert get_port(client, plugged.port_id) is None
    # Unplugging what is gone already is no error: a retried clean-up must succeed.
    assert client.unplug(plugged.port_id, "nic-ok", delete=True, timeout=1)
    assert client.unplug(plugged.port_id, "nic-ok", delete=False, timeout=1)


def test_plug_with_security_groups_turns_port_security_on(backend: Backend) -> None:
    with backend.http() as c:
        r = c.post("/security-groups", json={"security_group": {"name": "admit-conductor"}})
        assert r.status_code == 201, r.text
        group = r.json()["security_group"]["id"]
    client = backend.client
    new = NewPort(backend.nets["conf-net"], "metalnic-conf-sg", (group,))
    plugged = client.plug(new, binding(device="node-sg"), timeout=10)
    port = get_port(client, plugged.port_id)
    assert port is not None and (port.port_security, port.security_groups) == (True, (group,))
    assert client.unplug(plugged.port_id, "nic-ok", delete=True, timeout=10)


def test_plug_gives_a_new_port_several_addresses_on_a_dhcpv6_stateful_subnet(
    backend: Backend,
) -> None:
    """Ironic's dhcpv6_stateful_address_count: one address per DHCPv6 identity that
    boots on the port (firmware, iPXE, the ramdisk); and its IP versions are shown."""
    with backend.http() as c:
        r = c.post("/networks", json={"network": {"name": "conf-v6"}})
        assert r.status_code == 201, r.text
        net = r.json()["network"]["id"]
        for body in (
            {"cidr": "10.77.0.0/24", "ip_version": 4},
            {"cidr": "2001:db8:77::/64", "ip_version": 6,
             "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"},
        ):  # fmt: skip
            made = c.post("/subnets", json={"subnet": {**body, "network_id": net}})
            assert made.status_code == 201, made.text
    client = backend.client
    plugged = client.plug(NewPort(net, "metalnic-conf-v6", dhcpv6_addresses=3), binding(), 10)
    assert plugged.active, plugged.reason
    with backend.http() as c:
        fixed = c.get(f"/ports/{plugged.port_id}").json()["port"]["fixed_ips"]
    v6 = {f["ip_address"] for f in fixed if ":" in f["ip_address"]}
    assert len(v6) == 3 and len(fixed) == 4, fixed  # and its one IPv4 address
    port = get_port(client, plugged.port_id)
    assert port is not None and port.ip_versions == (4, 6)
    assert client.unplug(plugged.port_id, "nic-ok", delete=True, timeout=10)


def test_ports_by_device_are_only_the_bare_metal_services_own(backend: Backend) -> None:
    client = backend.client
    # A tenant's port naming the node as its device, with the conductor's name prefix.
    lookalike = backend.tenant_port(
        name="metalnic-conf-fake", device_id="node-find", device_owner="compute:nova"
    )
    mine = client.plug(NewPort(backend.nets["conf-net"], "metalnic-conf-2"), binding(), 10)
    other = client.plug(
        NewPort(backend.nets["conf-other"], "metalnic-else-3"), binding(device="node-find"), 10
    )
    try:
        found = client.ports(device_id="node-find", name_prefix="metalnic-")
        assert [p.id for p in found] == [other.port_id]
        assert client.ports(device_id="node-find", name_prefix="metalnic-conf-") == []
        by_ids = client.ports(ids=[lookalike["id"], MISSING, mine.port_id])
        assert sorted(p.id for p in by_ids) == sorted([lookalike["id"], mine.port_id])
        assert get_port(client, MISSING) is None
    finally:
        for plugged in (mine, other):
            client.unplug(plugged.port_id, "nic-ok", delete=True, timeout=10)


def test_plug_binds_a_vif_and_unplug_only_unbinds_it(backend: Backend) -> None:
    client = backend.client
    vif = backend.tenant_port(name="tenant-vif")
    wanted = binding(device="node-vif")
    plugged = client.plug(vif["id"], wanted, timeout=10)
    assert (plugged.port_id, plugged.created, plugged.active) == (vif["id"], False, True)
    port = get_port(client, vif["id"])
    assert port is not None and (port.nic_host, port.device_id, port.mac) == (
        "nic-ok",
        "node-vif",
        wanted.mac,  # the bare-metal link's MAC: the host sends with it
    )
    assert client.unplug(vif["id"], "nic-ok", delete=False, timeout=10)
    port = get_port(client, vif["id"])
    assert port is not None and port.nic_host == "" and not port.active  # the tenant's still


@pytest.mark.parametrize(
    ("host", "timeout", "why"),
    [
        ("nic-err", 10, AGENT_ERROR),
        ("nic-nobody", 10, "no live Open vSwitch agent serves NIC host nic-nobody"),
        ("nic-silent", 1, "timed out after 1 s waiting for ACTIVE"),
    ],
    ids=["agent-error", "no-agent", "timeout"],
)
def test_plug_says_why_a_port_is_not_active(
    backend: Backend, host: str, timeout: float, why: str
) -> None:
    client = backend.client
    new = NewPort(backend.nets["conf-net"], f"metalnic-conf-{host}")
    plugged = client.plug(new, binding(host, device=f"node-{host}"), timeout=timeout)
    try:
        assert plugged.created and not plugged.active and why in plugged.reason
        assert get_port(client, plugged.port_id) is not None  # the caller decides: roll back
    finally:
        client.unplug(plugged.port_id, host, delete=True, timeout=1)
    assert get_port(client, plugged.port_id) is None


def test_errors_are_the_seams_and_write_nothing(backend: Backend) -> None:
    client, net = backend.client, backend.nets["conf-net"]
    with pytest.raises(NetworkObjectNotFound):
        client.plug(NewPort(MISSING, "metalnic-conf-lost"), binding(device="node-err"), 5)
    with pytest.raises(NetworkObjectNotFound):
        client.plug(MISSING, binding(device="node-err"), 5)
    taken = backend.tenant_port(name="holds-a-mac", mac_address=random_mac())
    with pytest.raises(NetworkConflict, match=taken["mac_address"]):
        client.plug(
            NewPort(net, "metalnic-conf-dup"),
            binding(device="node-err", mac=taken["mac_address"]),
            5,
        )
    assert client.ports(device_id="node-err") == []


def test_unplug_waits_for_the_agent_where_it_can(backend: Backend) -> None:
    """The embedded service knows when the agent has programmed the NIC without the
    port; Neutron cannot say, so its unplug returns at once."""
    client = backend.client
    new = NewPort(backend.nets["conf-net"], "metalnic-conf-stuck")
    plugged = client.plug(new, binding("nic-silent", device="node-stuck"), timeout=0.2)
    assert not plugged.active
    removed = client.unplug(plugged.port_id, "nic-silent", delete=True, timeout=1)
    assert removed is not backend.confirms  # a silent agent never confirms
    assert get_port(client, plugged.port_id) is None


def test_verify_plugged_asks_the_agent_where_it_can(backend: Backend) -> None:
    client = backend.client
    plugged = client.plug(NewPort(backend.nets["conf-net"], "metalnic-conf-v"), binding(), 10)
    try:
        assert client.verify_plugged("nic-ok", [plugged.port_id], 5) == {
            plugged.port_id: Verdict(True, "")
        }
        # A port the agent does not have: the embedded service hears "no" from the agent,
        # Neutron cannot ask (the boot gate checked the status before).
        answer = client.verify_plugged("nic-ok", [MISSING], 5)[MISSING]
        assert answer.plugged is not backend.confirms
    finally:
        client.unplug(plugged.port_id, "nic-ok", delete=True, timeout=10)


def test_set_dhcp_options_merges_and_removes_as_neutron_does(backend: Backend) -> None:
    """The ipxe boot interface's call: options land in the port's extra_dhcp_opts, a null
    value removes one, the port stays ACTIVE, and a missing port is NotFound."""
    client, net = backend.client, backend.nets["conf-net"]
    plugged = client.plug(NewPort(net, "metalnic-conf-dhcp"), binding(device="node-dhcp"), 10)
    script = DhcpOption("tag:ipxe,67", "http://192.0.2.1:6385/boot/boot.ipxe")
    options = [script, DhcpOption("tag:!ipxe,67", "snponly.efi"), DhcpOption("150", "192.0.2.1")]

    def shown() -> list[tuple[str, str, int]]:
        with backend.http() as c:
            port = c.get(f"/ports/{plugged.port_id}").json()["port"]
        assert port["status"] == "ACTIVE"  # setting options does not unplug the port
        return sorted(
            (o["opt_name"], o["opt_value"], o["ip_version"]) for o in port["extra_dhcp_opts"]
        )

    client.set_dhcp_options(plugged.port_id, options)
    assert shown() == sorted((o.name, str(o.value), 4) for o in options)
    client.set_dhcp_options(plugged.port_id, [DhcpOption("150", None)])
    assert shown() == sorted((o.name, str(o.value), 4) for o in options[:2])
    client.set_dhcp_options(plugged.port_id, [DhcpOption(o.name, None) for o in options])
    assert shown() == []
    with pytest.raises(NetworkObjectNotFound):
        client.set_dhcp_options(MISSING, [script])
    assert client.unplug(plugged.port_id, "nic-ok", delete=True, timeout=10)
