"""The openstacksdk NetworkClient (for a real Neutron) driving a deploy, against
metalnic's own Neutron-compatible API over real HTTP, with a fake agent on the real
contract.  What each client call does is checked for both NetworkClients by
test_network_client_conformance.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.baremetal.drivers.network.client import NetworkUnreachable
from metalnic.baremetal.drivers.network.neutron import NeutronClient
from tests.integration.conductor_helpers import history, provision, wait_for
from tests.integration.helpers import make_node, make_port
from tests.integration.test_smartnic_interface import ENV, Agents
from tests.support import Server, free_port, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    # The conductor of this server reaches the network service through
    # openstacksdk and HTTP — its own /network API standing in for Neutron.
    env = {
        **ENV,
        "METALNIC_NETWORK_CLIENT": "neutron",
        "METALNIC_NEUTRON_ENDPOINT": f"http://127.0.0.1:{port}/network",
    }
    srv = start_server(tmp_path_factory.mktemp("neutron"), env=env, port=port)
    with srv.client(None) as c:
        for name in ("provisioning", "tenant-n"):
            assert (
                c.post("/network/v2.0/networks", json={"network": {"name": name}}).status_code
                == 201
            )
    yield srv
    srv.stop()


def test_unreachable_network_service() -> None:
    client = NeutronClient("http://127.0.0.1:9/network")
    with pytest.raises(NetworkUnreachable, match="network service at http://127.0.0.1:9/network"):
        client.agent_alive("nic-1")


def test_deploy_through_the_adapter(server: Server, tmp_path: Path) -> None:
    agents = Agents(server, tmp_path)
    agents.start("nic-n2")
    try:
        with server.client() as c:
            agents.wait_alive(c, "nic-n2")
            node = make_node(c, network_interface="smartnic")["uuid"]
            make_port(
                c,
                node,
                is_smartnic=True,
                local_link_connection={"hostname": "nic-n2", "port_id": "pf0hpf"},
            )
            for verb, state in (
                ("manage", "manageable"),
                ("provide", "available"),
                ("active", "active"),
            ):
                provision(c, node, verb)
                shown = wait_for(c, node, state, timeout=60)
            texts = [e["event"] for e in history(c, node)]
        assert shown["last_error"] is None
        assert "attach provisioning network: done (ports ACTIVE)" in texts
    finally:
        agents.close()
