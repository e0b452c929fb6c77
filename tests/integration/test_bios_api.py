"""/v1/nodes/{id}/bios (1.40): no BIOS interface here reads settings, so every list is
empty, as Ironic shows a node with the fake or no-bios interface."""

from __future__ import annotations

from tests.conftest import PASSWORDS
from tests.integration.helpers import fault, make_node
from tests.integration.test_openstack_clients import cli
from tests.support import Server


def test_bios_settings_are_empty_for_every_node_as_ironic_shows_fake_and_no_bios(
    basic_server: Server,
) -> None:
    with basic_server.client() as c:
        node = make_node(c, owner="project-a", bios_interface="no-bios")["uuid"]
        assert c.get(f"/v1/nodes/{node}/bios").json() == {"bios": []}
        r = c.get(f"/v1/nodes/{node}/bios/ProcVirtualization")
        assert r.status_code == 404 and "ProcVirtualization could not be found" in fault(r)
    with basic_server.client(version="1.39") as old:
        assert old.get(f"/v1/nodes/{node}/bios").status_code == 404
    with basic_server.client(auth=("bob", PASSWORDS["bob"])) as other:
        r = other.get(f"/v1/nodes/{node}/bios")
        assert r.status_code == 404 and f"Node {node} could not be found" in fault(r)
    listed = cli(basic_server, "alice", "baremetal", "node", "bios", "setting", "list", node)
    assert listed.returncode == 0, listed.stderr
