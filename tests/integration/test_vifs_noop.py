"""VIFs on a node with the ``noop`` network interface: accepted and not recorded,
as Ironic's noop network interface does (the openstack client and openstacksdk)."""

from __future__ import annotations

import uuid

from tests.conftest import PASSWORDS
from tests.integration.helpers import make_node, make_port
from tests.integration.test_openstack_clients import cli, sdk
from tests.support import Server


def test_a_noop_node_takes_any_vif_id_and_records_nothing(basic_server: Server) -> None:
    with basic_server.client() as c:
        node = make_node(c, owner="project-a", network_interface="noop")["uuid"]
        make_port(c, node)
    vif = str(uuid.uuid4())  # no such network port: the noop interface does not look
    attached = cli(basic_server, "alice", "baremetal", "node", "vif", "attach", node, vif)
    assert attached.returncode == 0, attached.stderr
    conn = sdk(basic_server, "alice")
    conn.baremetal.attach_vif_to_node(node, str(uuid.uuid4()))
    assert conn.baremetal.list_node_vifs(node) == []  # Ironic's noop lists none
    detached = cli(basic_server, "alice", "baremetal", "node", "vif", "detach", node, vif)
    assert detached.returncode == 0, detached.stderr
    for user, status in (("bob", 404), ("olga", 403)):  # the node's own rights still hold
        with basic_server.client(auth=(user, PASSWORDS[user])) as c:
            r = c.post(f"/v1/nodes/{node}/vifs", json={"id": vif})
            assert r.status_code == status, (user, r.text)
    with basic_server.client() as c:
        r = c.post(f"/v1/nodes/{node}/vifs", json={"id": 7})
        assert r.status_code == 400, r.text


def test_a_flat_node_still_needs_a_network_port_of_its_project(basic_server: Server) -> None:
    with basic_server.client() as c:
        node = make_node(c, owner="project-a", network_interface="flat")["uuid"]
        make_port(c, node)
        r = c.post(f"/v1/nodes/{node}/vifs", json={"id": str(uuid.uuid4())})
        assert r.status_code == 404, r.text
        assert c.get(f"/v1/nodes/{node}/vifs").json() == {"vifs": []}
