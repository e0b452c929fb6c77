"""http_basic authentication and RBAC on every route, through a real server."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORDS
from tests.integration.helpers import SMART_LLC, fault, make_node, make_port, random_mac
from tests.support import Server


def creds(name: str) -> tuple[str, str]:
    return (name, PASSWORDS[name])


@pytest.mark.parametrize(
    "auth", [None, ("admin", "wrong"), ("nobody", "x")], ids=["none", "wrong-password", "unknown"]
)
def test_unauthenticated_is_401_with_challenge(basic_server: Server, auth: object) -> None:
    r = httpx.get(
        basic_server.url + "/v1/nodes",
        auth=auth,  # type: ignore[arg-type]
        headers={"X-OpenStack-Ironic-API-Version": "1.53"},
    )
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "authentication" in fault(r)


def test_discovery_needs_no_credentials(basic_server: Server) -> None:
    assert httpx.get(basic_server.url + "/").status_code == 200
    assert httpx.get(basic_server.url + "/v1").status_code == 200


ROUTES = [
    ("GET", "/v1/nodes"),
    ("GET", "/v1/nodes/detail"),
    ("POST", "/v1/nodes"),
    ("GET", "/v1/nodes/{node}"),
    ("PATCH", "/v1/nodes/{node}"),
    ("DELETE", "/v1/nodes/{node}"),
    ("PUT", "/v1/nodes/{node}/maintenance"),
    ("DELETE", "/v1/nodes/{node}/maintenance"),
    ("GET", "/v1/nodes/{node}/states"),
    ("GET", "/v1/nodes/{node}/ports"),
    ("GET", "/v1/ports"),
    ("GET", "/v1/ports/detail"),
    ("POST", "/v1/ports"),
    ("GET", "/v1/ports/{port}"),
    ("PATCH", "/v1/ports/{port}"),
    ("DELETE", "/v1/ports/{port}"),
    ("GET", "/v1/portgroups"),
    ("GET", "/v1/portgroups/detail"),
    ("POST", "/v1/portgroups"),
    ("GET", "/v1/portgroups/{pg}"),
    ("PATCH", "/v1/portgroups/{pg}"),
    ("DELETE", "/v1/portgroups/{pg}"),
    ("GET", "/v1/portgroups/{pg}/ports"),
    ("GET", "/v1/portgroups/{pg}/ports/detail"),
    ("GET", "/v1/nodes/{node}/portgroups"),
    ("GET", "/v1/drivers"),
    ("GET", "/v1/drivers/fake-hardware"),
    ("GET", "/v1/drivers/fake-hardware/properties"),
    ("PUT", "/v1/nodes/{node}/states/provision"),
    ("PUT", "/v1/nodes/{node}/states/power"),
    ("PUT", "/v1/nodes/{node}/management/boot_device"),
    ("GET", "/v1/nodes/{node}/management/boot_device"),
    ("GET", "/v1/nodes/{node}/management/boot_device/supported"),
    ("GET", "/v1/nodes/{node}/validate"),
    ("GET", "/v1/nodes/{node}/history"),
    ("GET", "/v1/chassis"),
    ("GET", "/v1/chassis/detail"),
    ("POST", "/v1/chassis"),
    ("GET", "/v1/chassis/{node}"),
    ("PATCH", "/v1/chassis/{node}"),
    ("DELETE", "/v1/chassis/{node}"),
    ("GET", "/v1/chassis/{node}/nodes"),
    ("GET", "/v1/chassis/{node}/nodes/detail"),
    ("GET", "/v1/nodes/{node}/bios"),
    ("GET", "/v1/nodes/{node}/bios/ProcVirtualization"),
    ("GET", "/v1/conductors"),
    ("GET", "/v1/conductors/{node}"),
    ("GET", "/v1/nodes/{node}/traits"),
    ("PUT", "/v1/nodes/{node}/traits"),
    ("PUT", "/v1/nodes/{node}/traits/CUSTOM_A"),
    ("DELETE", "/v1/nodes/{node}/traits"),
    ("DELETE", "/v1/nodes/{node}/traits/CUSTOM_A"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_requires_authentication(basic_server: Server, method: str, path: str) -> None:
    url = basic_server.url + path.format(
        node="7b4c1a52-5c4f-4b59-9f57-2f1f07f3a0f1",
        port="7b4c1a52-5c4f-4b59-9f57-2f1f07f3a0f2",
        pg="7b4c1a52-5c4f-4b59-9f57-2f1f07f3a0f3",
    )
    r = httpx.request(method, url, headers={"X-OpenStack-Ironic-API-Version": "1.53"})
    assert r.status_code == 401


def test_observer_reads_but_cannot_write(basic_server: Server) -> None:
    with basic_server.client() as admin:
        node = make_node(admin, owner="project-a")
        port = make_port(admin, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
    with basic_server.client(auth=creds("olga")) as olga:
        assert olga.get(f"/v1/nodes/{node['uuid']}").status_code == 200
        assert olga.get(f"/v1/ports/{port['uuid']}").json()["is_smartnic"] is True
        writes = [
            olga.post("/v1/nodes", json={"driver": "fake-hardware"}),
            olga.patch(
                f"/v1/nodes/{node['uuid']}", json=[{"op": "add", "path": "/extra/x", "value": 1}]
            ),
            olga.delete(f"/v1/nodes/{node['uuid']}"),
            olga.post("/v1/ports", json={"node_uuid": node["uuid"], "address": random_mac()}),
            olga.patch(
                f"/v1/ports/{port['uuid']}",
                json=[{"op": "replace", "path": "/is_smartnic", "value": False}],
            ),
            olga.delete(f"/v1/ports/{port['uuid']}"),
            olga.put(f"/v1/nodes/{node['uuid']}/maintenance"),
            olga.put(f"/v1/nodes/{node['uuid']}/states/provision", json={"target": "manage"}),
            olga.put(f"/v1/nodes/{node['uuid']}/states/power", json={"target": "power on"}),
            olga.put(
                f"/v1/nodes/{node['uuid']}/management/boot_device", json={"boot_device": "pxe"}
            ),
        ]
    for r in writes:
        assert r.status_code == 403, r.text
        assert "olga" in fault(r)
    with basic_server.client() as admin:
        assert admin.get(f"/v1/ports/{port['uuid']}").json()["is_smartnic"] is True
        shown = admin.get(f"/v1/nodes/{node['uuid']}").json()
        assert shown["maintenance"] is False
        assert shown["provision_state"] == "enroll" and shown["reservation"] is None
    with basic_server.client(auth=creds("olga")) as olga:
        assert olga.get(f"/v1/nodes/{node['uuid']}/history").status_code == 200


def test_member_sees_and_changes_only_its_project(basic_server: Server) -> None:
    with basic_server.client() as admin:
        theirs = make_node(admin, owner="project-b")
        their_port = make_port(admin, theirs["uuid"])
    with basic_server.client(auth=creds("alice")) as alice:
        mine = make_node(alice)  # owner defaults to alice's project
        assert mine["owner"] == "project-a"
        # Smart NIC wiring is the admin's (the spec: "readable by observer, writable by admin").
        with basic_server.client() as admin:
            my_port = make_port(
                admin, mine["uuid"], is_smartnic=True, local_link_connection=SMART_LLC
            )
        assert alice.get(f"/v1/ports/{my_port['uuid']}").json()["is_smartnic"] is True
        listed = [n["uuid"] for n in alice.get("/v1/nodes").json()["nodes"]]
        assert mine["uuid"] in listed and theirs["uuid"] not in listed
        ports = [p["uuid"] for p in alice.get("/v1/ports").json()["ports"]]
        assert my_port["uuid"] in ports and their_port["uuid"] not in ports
        assert alice.get(f"/v1/nodes/{theirs['uuid']}").status_code == 404
        assert alice.get(f"/v1/ports/{their_port['uuid']}").status_code == 404
        assert alice.delete(f"/v1/ports/{their_port['uuid']}").status_code == 404
        r = alice.post("/v1/ports", json={"node_uuid": theirs["uuid"], "address": random_mac()})
        assert r.status_code == 404
        r = alice.patch(
            f"/v1/nodes/{mine['uuid']}",
            json=[{"op": "replace", "path": "/owner", "value": "project-b"}],
        )
        assert r.status_code == 403
        r = alice.post("/v1/nodes", json={"driver": "fake-hardware", "owner": "project-b"})
        assert r.status_code == 403
        r = alice.patch(
            f"/v1/nodes/{mine['uuid']}", json=[{"op": "add", "path": "/extra/ok", "value": True}]
        )
        assert r.status_code == 200
    with basic_server.client() as admin:
        assert admin.get(f"/v1/ports/{their_port['uuid']}").status_code == 200


def test_no_password_or_hash_in_log_or_responses(basic_server: Server, users_file: object) -> None:
    from pathlib import Path

    hashes = [
        line.split('"')[1]
        for line in Path(str(users_file)).read_text().splitlines()
        if line.startswith("password_hash")
    ]
    assert len(hashes) == 4
    with basic_server.client(auth=creds("bob")) as bob:
        bob.get("/v1/nodes")
        r = bob.get("/v1/nodes", auth=("bob", "not-" + PASSWORDS["bob"]))
        assert r.status_code == 401
        assert not any(h in r.text for h in hashes)
    log = basic_server.log()
    assert "GET /v1/nodes" in log  # the access log is on, so the check below means something
    for secret in [*PASSWORDS.values(), *hashes]:
        assert secret not in log
