"""Node traits (/v1/nodes/{id}/traits, API 1.37) through real HTTP, the openstack
client and openstacksdk at their default negotiation, with Ironic's errors."""

from __future__ import annotations

import concurrent.futures
import json

import openstack.exceptions
import pytest

from tests.conftest import PASSWORDS
from tests.integration.helpers import fault, make_node
from tests.integration.test_openstack_clients import cli, sdk
from tests.support import Server

STANDARD = "HW_CPU_X86_VMX"  # one of os_traits' standard traits


def test_the_openstack_client_adds_lists_and_removes_traits(basic_server: Server) -> None:
    with basic_server.client() as c:
        node = make_node(c, owner="project-a")["uuid"]
    for trait in ("CUSTOM_GPU", STANDARD):
        added = cli(basic_server, "alice", "baremetal", "node", "add", "trait", node, trait)
        assert added.returncode == 0, added.stderr
    listed = cli(basic_server, "alice", "baremetal", "node", "trait", "list", node, "-f", "json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(row["traits"] for row in json.loads(listed.stdout)) == ["CUSTOM_GPU", STANDARD]
    shown = cli(basic_server, "olga", "baremetal", "node", "show", node, "-f", "json")
    assert sorted(json.loads(shown.stdout)["traits"]) == ["CUSTOM_GPU", STANDARD]
    removed = cli(basic_server, "alice", "baremetal", "node", "remove", "trait", node, "CUSTOM_GPU")
    assert removed.returncode == 0, removed.stderr
    again = cli(basic_server, "alice", "baremetal", "node", "remove", "trait", node, "CUSTOM_GPU")
    assert again.returncode != 0 and "does not have trait CUSTOM_GPU" in again.stderr
    bad = cli(basic_server, "alice", "baremetal", "node", "add", "trait", node, "gpu")
    assert bad.returncode != 0 and "Invalid trait 'gpu'" in bad.stderr
    cleared = cli(basic_server, "alice", "baremetal", "node", "remove", "trait", node, "--all")
    assert cleared.returncode == 0, cleared.stderr
    with basic_server.client() as c:
        assert c.get(f"/v1/nodes/{node}/traits").json() == {"traits": []}


def test_openstacksdk_sets_adds_and_removes_traits(basic_server: Server) -> None:
    conn = sdk(basic_server, "admin")
    node = conn.baremetal.create_node(driver="fake-hardware")
    conn.baremetal.set_node_traits(node, ["CUSTOM_B", "CUSTOM_A", "CUSTOM_A"])
    assert conn.baremetal.get_node(node.id).traits == ["CUSTOM_A", "CUSTOM_B"]
    conn.baremetal.add_node_trait(node, STANDARD)
    assert conn.baremetal.get_node(node.id).traits == ["CUSTOM_A", "CUSTOM_B", STANDARD]
    conn.baremetal.remove_node_trait(node, "CUSTOM_B")
    assert conn.baremetal.get_node(node.id).traits == ["CUSTOM_A", STANDARD]
    with pytest.raises(openstack.exceptions.BadRequestException) as err:
        conn.baremetal.set_node_traits(node, ["CUSTOM_OK", "custom_lower"])
    assert "Invalid trait 'custom_lower'" in str(err.value)
    assert conn.baremetal.get_node(node.id).traits == ["CUSTOM_A", STANDARD]  # nothing written


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"traits": ["CUSTOM_" + "X" * 249]}, "Invalid trait"),  # 256 characters
        ({"traits": ["CUSTOM_"]}, "Invalid trait"),
        ({"traits": ["CUSTOM_a"]}, "Invalid trait"),
        ({"traits": ["CUSTOM_A\n"]}, "Invalid trait"),
        ({"traits": ["NOT_A_STANDARD_TRAIT"]}, "Invalid trait"),
        ({"traits": [7]}, "Invalid trait"),
        ({"traits": "CUSTOM_A"}, 'Expected {"traits"'),
        ({"trait": ["CUSTOM_A"]}, 'Expected {"traits"'),
        ({"traits": [f"CUSTOM_{i}" for i in range(51)]}, "at most 50"),
    ],
)
def test_bad_traits_are_refused_and_nothing_is_written(
    server: Server, body: object, message: str
) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
        keep = c.put(f"/v1/nodes/{node}/traits", json={"traits": ["CUSTOM_KEEP"]})
        assert keep.status_code == 204
        r = c.put(f"/v1/nodes/{node}/traits", json=body)
        assert r.status_code == 400, r.text
        assert message in fault(r)
        assert c.get(f"/v1/nodes/{node}/traits").json() == {"traits": ["CUSTOM_KEEP"]}


def test_the_fifty_first_trait_is_refused(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
        fifty = [f"CUSTOM_{i}" for i in range(50)]
        assert c.put(f"/v1/nodes/{node}/traits", json={"traits": fifty}).status_code == 204
        assert c.put(f"/v1/nodes/{node}/traits/CUSTOM_0").status_code == 204  # already there
        r = c.put(f"/v1/nodes/{node}/traits/CUSTOM_MORE")
        assert r.status_code == 400 and "at most 50" in r.text
        assert len(c.get(f"/v1/nodes/{node}/traits").json()["traits"]) == 50


def test_traits_need_api_1_37_and_cannot_be_patched(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
    with server.client(version="1.36") as old:
        assert old.get(f"/v1/nodes/{node}/traits").status_code == 404
        assert old.put(f"/v1/nodes/{node}/traits/CUSTOM_A").status_code == 404
        assert "traits" not in old.get(f"/v1/nodes/{node}").json()
        assert old.get(f"/v1/nodes/{node}", params={"fields": "traits"}).status_code == 406
    with server.client() as c:
        r = c.patch(f"/v1/nodes/{node}", json=[{"op": "add", "path": "/traits", "value": ["X"]}])
        assert r.status_code == 400, r.text
        assert c.get(f"/v1/nodes/{node}/traits").json() == {"traits": []}
        assert c.get("/v1/nodes/no-such-node/traits").status_code == 404
        assert c.delete(f"/v1/nodes/{node}/traits/CUSTOM_NEVER").status_code == 404


def test_racing_additions_all_land(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]

    def add(i: int) -> int:
        with server.client() as c:
            return c.put(f"/v1/nodes/{node}/traits/CUSTOM_RACE_{i}").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(add, range(16)))
    assert codes == [204] * 16, codes
    with server.client() as c:
        assert len(c.get(f"/v1/nodes/{node}/traits").json()["traits"]) == 16


def test_traits_follow_the_node_rights(basic_server: Server) -> None:
    with basic_server.client() as c:
        node = make_node(c, owner="project-a")["uuid"]
        assert c.put(f"/v1/nodes/{node}/traits/CUSTOM_A").status_code == 204
    for user, read, write in (("alice", 200, 204), ("bob", 404, 404), ("olga", 200, 403)):
        with basic_server.client(auth=(user, PASSWORDS[user])) as c:
            assert c.get(f"/v1/nodes/{node}/traits").status_code == read, user
            assert c.put(f"/v1/nodes/{node}/traits/CUSTOM_B").status_code == write, user
            assert c.delete(f"/v1/nodes/{node}/traits").status_code == write, user
    with basic_server.client(auth=("admin", PASSWORDS["admin"])) as c:
        assert c.get(f"/v1/nodes/{node}/traits").json() == {"traits": []}  # alice's delete


def test_a_node_a_flow_holds_keeps_its_traits_and_traits_are_not_set_on_create(
    server: Server,
) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
        server.sqlite_exec("UPDATE nodes SET reservation=? WHERE uuid=?", "conductor-x", node)
        try:
            r = c.put(f"/v1/nodes/{node}/traits/CUSTOM_A")
            assert r.status_code == 409 and "locked by conductor-x" in fault(r), r.text
            assert c.get(f"/v1/nodes/{node}/traits").json() == {"traits": []}  # reads still work
        finally:
            server.sqlite_exec("UPDATE nodes SET reservation=NULL WHERE uuid=?", node)
        r = c.post("/v1/nodes", json={"driver": "fake-hardware", "traits": ["CUSTOM_A"]})
        assert r.status_code == 400, r.text
