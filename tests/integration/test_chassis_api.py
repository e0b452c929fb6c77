"""/v1/chassis and a node's chassis_uuid through real HTTP, the openstack client and
openstacksdk, with Ironic's errors and the infrastructure RBAC (admins write, admins
and observers read)."""

from __future__ import annotations

import json
import uuid

import openstack.exceptions
import pytest

from tests.conftest import PASSWORDS
from tests.integration.helpers import fault, make_node
from tests.integration.test_openstack_clients import cli, sdk
from tests.support import Server


def test_the_openstack_client_creates_lists_and_deletes_a_chassis(basic_server: Server) -> None:
    made = cli(basic_server, "admin", "baremetal", "chassis", "create",
               "--description", "rack 7", "--extra", "row=b", "-f", "json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    chassis = json.loads(made.stdout)
    assert chassis["description"] == "rack 7" and chassis["extra"] == {"row": "b"}
    listed = cli(basic_server, "olga", "baremetal", "chassis", "list", "-f", "json")
    assert chassis["uuid"] in [row["uuid"] for row in json.loads(listed.stdout)], listed.stdout
    node = cli(basic_server, "admin", "baremetal", "node", "create", "--driver", "fake-hardware",
               "--chassis-uuid", chassis["uuid"], "-f", "json")  # fmt: skip
    assert node.returncode == 0, node.stderr
    assert json.loads(node.stdout)["chassis_uuid"] == chassis["uuid"]
    in_chassis = cli(basic_server, "admin", "baremetal", "node", "list",
                     "--chassis", chassis["uuid"], "-f", "json")  # fmt: skip
    assert [row["uuid"] for row in json.loads(in_chassis.stdout)] == [
        json.loads(node.stdout)["uuid"]
    ]
    refused = cli(basic_server, "admin", "baremetal", "chassis", "delete", chassis["uuid"])
    assert refused.returncode != 0 and "contains nodes" in refused.stderr
    with basic_server.client() as c:
        r = c.patch(f"/v1/nodes/{json.loads(node.stdout)['uuid']}",
                    json=[{"op": "remove", "path": "/chassis_uuid"}])  # fmt: skip
        assert r.status_code == 200 and r.json()["chassis_uuid"] is None, r.text
    deleted = cli(basic_server, "admin", "baremetal", "chassis", "delete", chassis["uuid"])
    assert deleted.returncode == 0, deleted.stderr


def test_openstacksdk_creates_updates_and_lists_chassis_nodes(basic_server: Server) -> None:
    conn = sdk(basic_server, "admin")
    chassis = conn.baremetal.create_chassis(description="enclosure 1")
    node = conn.baremetal.create_node(driver="fake-hardware", chassis_id=chassis.id)
    assert node.chassis_id == chassis.id
    updated = conn.baremetal.update_chassis(chassis, description="enclosure 2")
    assert updated.description == "enclosure 2"
    assert conn.baremetal.get_chassis(chassis.id).description == "enclosure 2"
    with basic_server.client() as c:
        nodes = c.get(f"/v1/chassis/{chassis.id}/nodes").json()["nodes"]
        assert [n["uuid"] for n in nodes] == [node.id]
        detail = c.get(f"/v1/chassis/{chassis.id}/nodes/detail").json()["nodes"]
        assert detail[0]["chassis_uuid"] == chassis.id
    with pytest.raises(openstack.exceptions.BadRequestException) as err:
        conn.baremetal.delete_chassis(chassis)
    assert "contains nodes" in str(err.value)


def test_bad_chassis_input_is_refused_and_stores_nothing(server: Server) -> None:
    with server.client() as c:
        missing = str(uuid.uuid4())
        r = c.post("/v1/nodes", json={"driver": "fake-hardware", "chassis_uuid": missing})
        assert r.status_code == 400 and f"Chassis {missing} could not be found" in fault(r)
        before = len(c.get("/v1/chassis").json()["chassis"])
        for body in ({"description": "x" * 256}, {"extra": "not a dict"}, {"nodes": []},
                     {"uuid": "not-a-uuid"}, {"name": "chassis have no name"}):  # fmt: skip
            r = c.post("/v1/chassis", json=body)
            assert r.status_code == 400, (body, r.text)
        assert len(c.get("/v1/chassis").json()["chassis"]) == before
        made = c.post("/v1/chassis", json={"description": "d"}).json()
        assert c.post("/v1/chassis", json={"uuid": made["uuid"]}).status_code == 409
        r = c.patch(f"/v1/chassis/{made['uuid']}", json=[{"op": "add", "path": "/uuid",
                                                         "value": str(uuid.uuid4())}])  # fmt: skip
        assert r.status_code == 400, r.text
        assert c.get(f"/v1/chassis/{missing}").status_code == 404
        assert c.get("/v1/chassis/not-a-uuid").status_code == 404
        assert c.get("/v1/nodes", params={"chassis_uuid": missing}).status_code == 404
        assert c.get(f"/v1/chassis/{missing}/nodes").status_code == 404
        assert c.get("/v1/chassis", params={"sort_key": "owner"}).status_code == 400


def test_chassis_are_infrastructure(basic_server: Server) -> None:
    with basic_server.client() as c:
        made = c.post("/v1/chassis", json={"description": "rbac"}).json()["uuid"]
        node = make_node(c, owner="project-a")["uuid"]
    for user, read, write in (("olga", 200, 403), ("alice", 403, 403), ("bob", 403, 403)):
        with basic_server.client(auth=(user, PASSWORDS[user])) as c:
            assert c.get("/v1/chassis").status_code == read, user
            assert c.get(f"/v1/chassis/{made}").status_code == read, user
            assert c.post("/v1/chassis", json={}).status_code == write, user
            patch = [{"op": "add", "path": "/description", "value": user}]
            assert c.patch(f"/v1/chassis/{made}", json=patch).status_code == write, user
            assert c.delete(f"/v1/chassis/{made}").status_code == write, user
    with basic_server.client(auth=("alice", PASSWORDS["alice"])) as c:
        # the owner may not put its node into a chassis: the field is admin-only
        r = c.patch(f"/v1/nodes/{node}", json=[{"op": "add", "path": "/chassis_uuid",
                                                "value": made}])  # fmt: skip
        assert r.status_code == 403, r.text
    with basic_server.client() as c:
        assert c.get(f"/v1/chassis/{made}").json()["description"] == "rbac"
