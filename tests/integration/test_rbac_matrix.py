"""The RBAC matrix: every route of /v1 and /network/v2.0 × every kind of caller.

Each row is one request (built afresh for every cell when it changes
something) and the status each caller must get.  The routes are enumerated
from the FastAPI app, so a new route without a row fails
``test_every_route_has_a_row``.  Beyond one row per route there are rows for
every cross-project reference (an id of an object the caller may not use must
be answered exactly like an id that does not exist: same status, same error
body) and for the spec's field rules per role and provision state.

Callers: ``admin``; ``owner`` (alice, member of project-a, which owns the
objects); ``other`` (bob, member of project-b); ``observer`` (olga);
``agent`` (an agent user granted NIC host ``nic-rbac-1``); ``agent_other`` (an
agent user without that grant, serving ``nic-rbac-2``); ``anonymous``.

All against one real ``metalnic serve`` with http_basic.
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from metalnic.server import create_app
from metalnic.settings import Settings
from tests.conftest import PASSWORDS
from tests.integration.helpers import SMART_LLC, random_mac
from tests.support import H153, Server, add_user, start_server

ROLES = ("admin", "owner", "other", "observer", "agent", "agent_other", "anonymous")
AGENT_PASSWORDS = {"rbac-agent": "rbac-agent-secret-7", "rbac-agent2": "rbac-agent-secret-8"}
USERS: dict[str, tuple[str, str] | None] = {
    "admin": ("admin", PASSWORDS["admin"]),
    "owner": ("alice", PASSWORDS["alice"]),
    "other": ("bob", PASSWORDS["bob"]),
    "observer": ("olga", PASSWORDS["olga"]),
    "agent": ("rbac-agent", AGENT_PASSWORDS["rbac-agent"]),
    "agent_other": ("rbac-agent2", AGENT_PASSWORDS["rbac-agent2"]),
    "anonymous": None,
}
# The NIC hosts each agent user is granted: ``agent`` has NIC_HOST, ``agent_other``
# does not.  grant() writes them as the users file's ``nic_hosts``; and each
# agent's first heartbeat (World.register_agents) registers them, which is what
# makes a host an agent's where grants are not known.
AGENT_GRANTS = {"rbac-agent": ["nic-rbac-1"], "rbac-agent2": ["nic-rbac-2"]}
NIC_HOST = "nic-rbac-1"
DHCP_HOST = "dhcp-rbac-1"


def grant(users_file: Path) -> None:
    """Give each agent user its NIC hosts (AGENT_GRANTS) in the users file."""
    doc = tomllib.loads(users_file.read_text())
    for name, hosts in AGENT_GRANTS.items():
        doc["users"][name]["nic_hosts"] = hosts
    users_file.write_text(tomli_w.dumps(doc))


# --- the server and the objects the matrix acts on -------------------------------------


@dataclass
class World:
    server: Server
    admin: httpx.Client
    net: httpx.Client  # admin on /network/v2.0
    ids: dict[str, str] = field(default_factory=dict)
    callers: dict[str, httpx.Client] = field(default_factory=dict)

    def node(self, owner: str = "project-a", ports: int = 0, **fields: Any) -> str:
        r = self.admin.post("/v1/nodes", json={"driver": "fake-hardware", "owner": owner, **fields})
        assert r.status_code == 201, r.text
        node = str(r.json()["uuid"])
        for _ in range(ports):
            self.port(node)
        return node

    def chassis(self) -> str:
        r = self.admin.post("/v1/chassis", json={"description": "matrix"})
        assert r.status_code == 201, r.text
        return str(r.json()["uuid"])

    def conductor(self) -> str:
        listed = self.admin.get("/v1/conductors").json()["conductors"]
        return str(listed[0]["hostname"])

    def traited_node(self, trait: str = "CUSTOM_A") -> str:
        node = self.node()
        assert self.admin.put(f"/v1/nodes/{node}/traits/{trait}").status_code == 204
        return node

    def port(self, node: str, **fields: Any) -> str:
        body = {"node_uuid": node, "address": random_mac(), **fields}
        r = self.admin.post("/v1/ports", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["uuid"])

    def portgroup(self, node: str, **fields: Any) -> str:
        r = self.admin.post("/v1/portgroups", json={"node_uuid": node, **fields})
        assert r.status_code == 201, r.text
        return str(r.json()["uuid"])

    def set_state(self, node: str, state: str) -> None:
        self.server.sqlite_exec("UPDATE nodes SET provision_state=? WHERE uuid=?", state, node)

    def network(self, project: str = "project-a", shared: bool = False) -> str:
        body = {"network": {"name": "m", "project_id": project, "shared": shared}}
        r = self.net.post("/networks", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["network"]["id"])

    def net_port(self, network: str | None = None, project: str = "project-a", **extra: Any) -> str:
        network = network or self.ids[f"net_{project[-1]}"]
        body = {"port": {"network_id": network, "project_id": project, **extra}}
        r = self.net.post("/ports", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["port"]["id"])

    def subnet(self, network: str | None = None, cidr: str = "10.200.0.0/24") -> str:
        network = network or self.network()
        body = {"subnet": {"network_id": network, "ip_version": 4, "cidr": cidr}}
        r = self.net.post("/subnets", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["subnet"]["id"])

    def secgroup(self, project: str = "project-a") -> str:
        body = {"security_group": {"name": "m", "project_id": project}}
        r = self.net.post("/security-groups", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["security_group"]["id"])

    def rule(self, group: str) -> str:
        body = {"security_group_rule": {"security_group_id": group, "direction": "ingress"}}
        r = self.net.post("/security-group-rules", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["security_group_rule"]["id"])

    def attach(self, node: str, vif: str) -> None:
        r = self.admin.post(f"/v1/nodes/{node}/vifs", json={"id": vif})
        assert r.status_code == 204, r.text

    def heartbeat(self, auth: tuple[str, str] | None, host: str) -> httpx.Response:
        body = {"host": host, "configurations": {"mode": "local", "smartnic": True}}
        with httpx.Client(base_url=self.server.url, auth=auth, timeout=30) as c:
            return c.post("/network/v2.0/metalnic/agents/heartbeat", json=body)

    def agent_id(self, host: str) -> str:
        r = self.net.get("/agents", params={"host": host})
        assert r.status_code == 200, r.text
        return str(r.json()["agents"][0]["id"])

    def register_agents(self) -> None:
        for name, hosts in AGENT_GRANTS.items():
            for host in hosts:
                r = self.heartbeat((name, AGENT_PASSWORDS[name]), host)
                assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("rbac-matrix")
    own_users = tmp / "users.toml"  # the shared file stays as other tests expect it
    shutil.copy(users_file, own_users)
    for name, password in AGENT_PASSWORDS.items():
        add_user(own_users, name, password, "agent", None)
    grant(own_users)
    srv = start_server(
        tmp,
        "--auth",
        "http_basic",
        "--users-file",
        str(own_users),
        env={"METALNIC_NETWORK_VLAN_RANGES": '["physnet1:100:3000"]'},
    )
    admin = httpx.Client(base_url=srv.url, headers=H153, auth=USERS["admin"], timeout=30)
    net = httpx.Client(base_url=srv.url + "/network/v2.0", auth=USERS["admin"], timeout=30)
    w = World(srv, admin, net)
    w.register_agents()
    ids = w.ids
    ids["node_a"] = w.node("project-a")
    ids["port_a"] = w.port(ids["node_a"])
    ids["pg_a"] = w.portgroup(ids["node_a"])
    ids["node_b"] = w.node("project-b")
    ids["pg_b"] = w.portgroup(ids["node_b"])
    ids["net_a"] = w.network("project-a")
    ids["net_b"] = w.network("project-b")
    ids["net_shared"] = w.network("project-b", shared=True)
    ids["subnet_a"] = w.subnet(ids["net_a"])
    ids["subnet_b"] = w.subnet(ids["net_b"])  # the same CIDR: another project's own
    ids["subnet_shared"] = w.subnet(ids["net_shared"], "10.201.0.0/24")
    ids["nport_a"] = w.net_port(ids["net_a"], "project-a")
    ids["nport_b"] = w.net_port(ids["net_b"], "project-b")
    ids["sg_a"] = w.secgroup("project-a")
    ids["sg_b"] = w.secgroup("project-b")
    ids["rule_a"] = w.rule(ids["sg_a"])
    ids["agent"] = w.agent_id(NIC_HOST)
    yield w
    for client in w.callers.values():
        client.close()
    admin.close()
    net.close()
    srv.stop()


# --- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    body: Any = None
    params: dict[str, str] | None = None


Build = Callable[[World], Req]


@dataclass(frozen=True)
class Row:
    route: tuple[str, str]  # (method, path) as the app declares it
    name: str
    build: Build
    expect: dict[str, int]
    # The same request naming an object that does not exist: where the row expects
    # 404, the answer must be the same (status and body, ids aside).
    missing: Build | None = None


def E(
    admin: int,
    owner: int,
    other: int,
    observer: int,
    agent: int = 403,
    agent_other: int | None = None,
    anonymous: int = 401,
) -> dict[str, int]:
    return {
        "admin": admin,
        "owner": owner,
        "other": other,
        "observer": observer,
        "agent": agent,
        "agent_other": agent if agent_other is None else agent_other,
        "anonymous": anonymous,
    }


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


READ_ALL = E(200, 200, 200, 200)  # listings and catalogues: each sees its own part
READ_A = E(200, 200, 404, 200)  # an object of project-a
WRITE_A = E(200, 200, 404, 403)
CREATE = E(201, 201, 201, 403)
ADMIN_ONLY = E(200, 403, 403, 403)
ADMIN_OBS = E(200, 403, 403, 200)  # infrastructure: admins and observers (system readers)


def fixed(method: str, path: str, body: Any = None, **params: str) -> Build:
    """A request whose path and body name objects of the world by key: ``{node_a}``."""
    return lambda w: Req(method, path.format(**w.ids), _filled(body, w.ids), params or None)


def _filled(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_filled(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v, ids) for k, v in value.items()}
    return value


def random_id() -> str:
    return str(uuid.uuid4())


# --- builders of the requests that need a fresh or prepared object ---------------------------


def _attached_elsewhere(w: World) -> Req:
    vif = w.net_port()
    w.attach(w.node(ports=1), vif)
    return Req("POST", f"/v1/nodes/{w.node(ports=1)}/vifs", {"id": vif})


def _with_vif(w: World) -> Req:
    node, vif = w.node(ports=1), w.net_port()
    w.attach(node, vif)
    return Req("DELETE", f"/v1/nodes/{node}/vifs/{vif}")


def _on_active_port(w: World, op: dict[str, Any]) -> Req:
    node = w.node()
    port = w.port(node)
    op = {**op, "value": w.portgroup(node)} if op["value"] == "{pg}" else op
    w.set_state(node, "active")
    return Req("PATCH", f"/v1/ports/{port}", [op])


def _on_active_node(w: World, name: str, value: str, maintenance: bool) -> Req:
    node = w.node()
    if name == "driver":  # a real change: from another hardware type
        r = w.admin.patch(
            f"/v1/nodes/{node}", json=[{"op": "replace", "path": "/driver", "value": "redfish"}]
        )
        assert r.status_code == 200, r.text
    w.set_state(node, "active")
    if maintenance:
        assert w.admin.put(f"/v1/nodes/{node}/maintenance").status_code == 202
    return Req(
        "PATCH", f"/v1/nodes/{node}", [{"op": "replace", "path": f"/{name}", "value": value}]
    )


def _in_state(w: World, state: str, name: str, value: str) -> Req:
    node = w.node()
    w.set_state(node, state)
    return Req(
        "PATCH", f"/v1/nodes/{node}", [{"op": "replace", "path": f"/{name}", "value": value}]
    )


def _smartnic_group(w: World, ops: list[dict[str, Any]]) -> Req:
    node = w.node()
    group = w.portgroup(node)
    w.port(node, is_smartnic=True, local_link_connection=SMART_LLC, portgroup_uuid=group)
    return Req("PATCH", f"/v1/portgroups/{group}", ops)


_FRESH = itertools.count(1)


def _subnet_body(network: str, fresh: bool = False) -> dict[str, Any]:
    """A subnet for ``network``: a CIDR of its own when the network is reused."""
    n = next(_FRESH)
    cidr = f"10.{202 + n // 250}.{n % 250}.0/24" if fresh else "10.9.0.0/24"
    return {"network_id": network, "ip_version": 4, "cidr": cidr}


def _ip() -> str:
    """A fresh address of the shared network's subnet (10.201.0.0/24)."""
    return f"10.201.0.{2 + next(_FRESH) % 250}"


GRANT = {"agent_grant": {"nic_hosts": ["nic-rbac-3"]}}


def _alive(w: World, req: Req) -> Req:
    """``req`` after a heartbeat of the agent granted NIC_HOST (its claim is live)."""
    r = w.heartbeat(("rbac-agent", AGENT_PASSWORDS["rbac-agent"]), NIC_HOST)
    assert r.status_code == 200, r.text
    return req


def _dhcp_registered(w: World, req: Req) -> Req:
    """``req`` after rbac-agent registered the DHCP agent of DHCP_HOST (no grant needed:
    a DHCP agent claims no NIC host)."""
    body = {"host": DHCP_HOST, "agent_type": "DHCP agent", "binary": "metalnic-dhcp-agent"}
    auth = ("rbac-agent", AGENT_PASSWORDS["rbac-agent"])
    with httpx.Client(base_url=w.server.url, auth=auth, timeout=30) as c:
        r = c.post("/network/v2.0/metalnic/agents/heartbeat", json=body)
    assert r.status_code == 200, r.text
    return req


def _granted(w: World, req: Req) -> Req:
    """``req`` after an admin granted rbac-agent2 a NIC host through the API."""
    r = w.net.put("/metalnic/agent-grants/rbac-agent2", json=GRANT)
    assert r.status_code == 200, r.text
    return req


def _fresh_agent(w: World) -> Req:
    host = f"nic-gone-{uuid.uuid4().hex[:8]}"
    assert w.heartbeat(USERS["admin"], host).status_code == 200
    return Req("DELETE", N + f"/agents/{w.agent_id(host)}")


V1 = "/v1"
N = "/network/v2.0"

ROWS: list[Row] = [
    # --- discovery and the ramdisk agent's routes: no credentials needed ------------------
    Row(("GET", "/"), "root", fixed("GET", "/"), everyone(200)),
    Row(("GET", "/v1"), "v1", fixed("GET", "/v1"), everyone(200)),
    Row(("GET", "/v1/"), "v1/", fixed("GET", "/v1/"), everyone(200)),
    Row(("GET", "/network"), "network", fixed("GET", "/network"), everyone(200)),
    Row(("GET", "/network/"), "network/", fixed("GET", "/network/"), everyone(200)),
    Row(("GET", "/network/v2.0"), "v2.0", fixed("GET", N), everyone(200)),
    Row(("GET", "/network/v2.0/"), "v2.0/", fixed("GET", N + "/"), everyone(200)),
    Row(
        ("GET", "/network/v2.0/openapi.json"),
        "the network API's OpenAPI document (public, like the versions)",
        fixed("GET", N + "/openapi.json"),
        everyone(200),
    ),
    Row(
        ("GET", "/v1/lookup"),
        "lookup of a node that is not booting a ramdisk",
        lambda w: Req("GET", "/v1/lookup", params={"node_uuid": w.ids["node_a"]}),
        everyone(404),
    ),
    Row(
        ("POST", "/v1/heartbeat/{ident}"),
        "ramdisk heartbeat without the agent token",
        fixed("POST", "/v1/heartbeat/{node_a}", {"callback_url": "http://x", "agent_token": "x"}),
        everyone(401),
    ),
    # --- what a network-booting host fetches (the ipxe boot interface): no credentials ----
    Row(
        ("GET", "/boot/boot.ipxe"),
        "the generic iPXE script",
        fixed("GET", "/boot/boot.ipxe"),
        everyone(200),
    ),
    Row(
        ("GET", "/boot/pxelinux.cfg/{name}"),
        "the iPXE script of a MAC whose node boots no ramdisk",
        fixed("GET", "/boot/pxelinux.cfg/52-54-00-00-00-01"),
        everyone(404),
    ),
    Row(
        ("GET", "/boot/{node}/config"),
        "the iPXE script of a node that boots no ramdisk",
        fixed("GET", "/boot/{node_a}/config"),
        everyone(404),
    ),
    Row(
        ("GET", "/boot/images/{ramdisk}/{part}"),
        "a ramdisk image that is not configured",
        fixed("GET", "/boot/images/deploy/kernel"),
        everyone(404),
    ),
    # --- nodes -------------------------------------------------------------------------------
    Row(("GET", "/v1/nodes"), "list nodes", fixed("GET", "/v1/nodes"), READ_ALL),
    Row(("GET", "/v1/nodes/detail"), "node details", fixed("GET", "/v1/nodes/detail"), READ_ALL),
    Row(
        ("POST", "/v1/nodes"),
        "create a node (a member's is its project's)",
        fixed("POST", "/v1/nodes", {"driver": "fake-hardware"}),
        CREATE,
    ),
    Row(
        ("POST", "/v1/nodes"),
        "create a node for another project",
        fixed("POST", "/v1/nodes", {"driver": "fake-hardware", "owner": "project-b"}),
        E(201, 403, 201, 403),
    ),
    Row(
        ("GET", "/v1/nodes/{ident}"),
        "show node",
        fixed("GET", "/v1/nodes/{node_a}"),
        READ_A,
        fixed("GET", f"/v1/nodes/{random_id()}"),
    ),
    Row(
        ("PATCH", "/v1/nodes/{ident}"),
        "patch node extra",
        fixed("PATCH", "/v1/nodes/{node_a}", [{"op": "add", "path": "/extra/k", "value": 1}]),
        WRITE_A,
    ),
    Row(
        ("DELETE", "/v1/nodes/{ident}"),
        "delete node",
        lambda w: Req("DELETE", f"/v1/nodes/{w.node()}"),
        E(204, 204, 404, 403),
    ),
    Row(
        ("PUT", "/v1/nodes/{ident}/maintenance"),
        "set maintenance",
        lambda w: Req("PUT", f"/v1/nodes/{w.node()}/maintenance", {"reason": "m"}),
        E(202, 202, 404, 403),
    ),
    Row(
        ("DELETE", "/v1/nodes/{ident}/maintenance"),
        "unset maintenance",
        lambda w: Req("DELETE", f"/v1/nodes/{w.node()}/maintenance"),
        E(202, 202, 404, 403),
    ),
    Row(
        ("GET", "/v1/nodes/{ident}/states"),
        "states",
        fixed("GET", "/v1/nodes/{node_a}/states"),
        READ_A,
    ),
    Row(
        ("GET", "/v1/nodes/{ident}/ports"),
        "node ports",
        fixed("GET", "/v1/nodes/{node_a}/ports"),
        READ_A,
    ),
    Row(
        ("GET", "/v1/nodes/{ident}/portgroups"),
        "node port groups",
        fixed("GET", "/v1/nodes/{node_a}/portgroups"),
        READ_A,
    ),
    Row(
        ("PUT", "/v1/nodes/{ident}/states/provision"),
        "provision verb",
        lambda w: Req("PUT", f"/v1/nodes/{w.node()}/states/provision", {"target": "manage"}),
        E(202, 202, 404, 403),
    ),
    Row(
        ("PUT", "/v1/nodes/{ident}/states/power"),
        "power verb",
        lambda w: Req("PUT", f"/v1/nodes/{w.node()}/states/power", {"target": "power on"}),
        E(202, 202, 404, 403),
    ),
    Row(
        ("PUT", "/v1/nodes/{ident}/management/boot_device"),
        "set boot device",
        lambda w: Req(
            "PUT", f"/v1/nodes/{w.node()}/management/boot_device", {"boot_device": "pxe"}
        ),
        E(204, 204, 404, 403),
    ),
    Row(
        ("GET", "/v1/nodes/{ident}/management/boot_device"),
        "boot device",
        fixed("GET", "/v1/nodes/{node_a}/management/boot_device"),
        READ_A,
    ),
    Row(
        ("GET", "/v1/nodes/{ident}/management/boot_device/supported"),
        "supported boot devices",
        fixed("GET", "/v1/nodes/{node_a}/management/boot_device/supported"),
        READ_A,
    ),
    Row(
        ("GET", "/v1/nodes/{ident}/validate"),
        "validate",
        fixed("GET", "/v1/nodes/{node_a}/validate"),
        READ_A,
    ),
    Row(
        ("GET", "/v1/nodes/{ident}/history"),
        "history",
        fixed("GET", "/v1/nodes/{node_a}/history"),
        READ_A,
    ),
    # --- chassis ------------------------------------------------------------------------------
    Row(("GET", "/v1/chassis"), "list chassis", fixed("GET", "/v1/chassis"), ADMIN_OBS),
    Row(
        ("GET", "/v1/chassis/detail"),
        "list chassis in detail",
        fixed("GET", "/v1/chassis/detail"),
        ADMIN_OBS,
    ),  # fmt: skip
    Row(
        ("POST", "/v1/chassis"),
        "create a chassis (admin only)",
        fixed("POST", "/v1/chassis", {"description": "matrix"}),
        E(201, 403, 403, 403),
    ),
    Row(
        ("GET", "/v1/chassis/{ident}"),
        "show a chassis",
        lambda w: Req("GET", f"/v1/chassis/{w.chassis()}"),
        ADMIN_OBS,
    ),
    Row(
        ("PATCH", "/v1/chassis/{ident}"),
        "change a chassis (admin only)",
        lambda w: Req(
            "PATCH",
            f"/v1/chassis/{w.chassis()}",
            [{"op": "add", "path": "/description", "value": "changed"}],
        ),  # fmt: skip
        ADMIN_ONLY,
    ),
    Row(
        ("DELETE", "/v1/chassis/{ident}"),
        "delete a chassis (admin only)",
        lambda w: Req("DELETE", f"/v1/chassis/{w.chassis()}"),
        E(204, 403, 403, 403),
    ),
    Row(
        ("GET", "/v1/chassis/{ident}/nodes"),
        "list a chassis's nodes",
        lambda w: Req("GET", f"/v1/chassis/{w.chassis()}/nodes"),
        ADMIN_OBS,
    ),
    Row(
        ("GET", "/v1/chassis/{ident}/nodes/detail"),
        "list a chassis's nodes in detail",
        lambda w: Req("GET", f"/v1/chassis/{w.chassis()}/nodes/detail"),
        ADMIN_OBS,
    ),
    Row(
        ("POST", "/v1/nodes"),
        "create a node in a chassis (admin only)",
        lambda w: Req(
            "POST", "/v1/nodes", {"driver": "fake-hardware", "chassis_uuid": w.chassis()}
        ),
        E(201, 403, 403, 403),
    ),
    # --- BIOS settings -------------------------------------------------------------------------
    Row(
        ("GET", "/v1/nodes/{ident}/bios"),
        "list BIOS settings",
        fixed("GET", "/v1/nodes/{node_a}/bios"),
        READ_A,
    ),  # fmt: skip
    Row(
        ("GET", "/v1/nodes/{ident}/bios/{setting}"),
        "show a BIOS setting (none are cached: 404 for everyone who may see the node)",
        fixed("GET", "/v1/nodes/{node_a}/bios/ProcVirtualization"),
        E(404, 404, 404, 404),
    ),
    # --- conductors ---------------------------------------------------------------------------
    Row(("GET", "/v1/conductors"), "list conductors", fixed("GET", "/v1/conductors"), ADMIN_OBS),
    Row(
        ("GET", "/v1/conductors/{hostname}"),
        "show a conductor",
        lambda w: Req("GET", f"/v1/conductors/{w.conductor()}"),
        ADMIN_OBS,
    ),
    # --- traits -------------------------------------------------------------------------------
    Row(
        ("GET", "/v1/nodes/{ident}/traits"),
        "list traits",
        fixed("GET", "/v1/nodes/{node_a}/traits"),
        READ_A,
    ),
    Row(
        ("PUT", "/v1/nodes/{ident}/traits"),
        "set traits",
        lambda w: Req("PUT", f"/v1/nodes/{w.node()}/traits", {"traits": ["CUSTOM_A"]}),
        E(204, 204, 404, 403),
    ),
    Row(
        ("PUT", "/v1/nodes/{ident}/traits/{trait}"),
        "add a trait",
        lambda w: Req("PUT", f"/v1/nodes/{w.node()}/traits/CUSTOM_A"),
        E(204, 204, 404, 403),
    ),
    Row(
        ("DELETE", "/v1/nodes/{ident}/traits"),
        "remove all traits",
        lambda w: Req("DELETE", f"/v1/nodes/{w.traited_node()}/traits"),
        E(204, 204, 404, 403),
    ),
    Row(
        ("DELETE", "/v1/nodes/{ident}/traits/{trait}"),
        "remove a trait",
        lambda w: Req("DELETE", f"/v1/nodes/{w.traited_node()}/traits/CUSTOM_A"),
        E(204, 204, 404, 403),
    ),
    # --- VIFs ---------------------------------------------------------------------------------
    Row(
        ("GET", "/v1/nodes/{ident}/vifs"),
        "list VIFs",
        fixed("GET", "/v1/nodes/{node_a}/vifs"),
        READ_A,
    ),
    Row(
        ("POST", "/v1/nodes/{ident}/vifs"),
        "attach a VIF of the node's project",
        lambda w: Req("POST", f"/v1/nodes/{w.node(ports=1)}/vifs", {"id": w.net_port()}),
        E(204, 204, 404, 403),
    ),
    Row(
        ("POST", "/v1/nodes/{ident}/vifs"),
        "attach another project's network port as VIF",
        lambda w: Req("POST", f"/v1/nodes/{w.node(ports=1)}/vifs", {"id": w.ids["nport_b"]}),
        E(404, 404, 404, 403),
        lambda w: Req("POST", f"/v1/nodes/{w.node(ports=1)}/vifs", {"id": random_id()}),
    ),
    Row(
        ("POST", "/v1/nodes/{ident}/vifs"),
        "attach a network port another node has as VIF",
        lambda w: _attached_elsewhere(w),
        E(409, 409, 404, 403),
    ),
    Row(
        ("POST", "/v1/nodes/{ident}/vifs"),
        "attach a network port another device uses",
        lambda w: Req(
            "POST", f"/v1/nodes/{w.node(ports=1)}/vifs", {"id": w.net_port(device_id="vm-1")}
        ),
        E(409, 409, 404, 403),
    ),
    Row(
        ("DELETE", "/v1/nodes/{ident}/vifs/{vif}"),
        "detach VIF",
        lambda w: _with_vif(w),
        E(204, 204, 404, 403),
    ),
    # --- ports --------------------------------------------------------------------------------
    Row(("GET", "/v1/ports"), "list ports", fixed("GET", "/v1/ports"), READ_ALL),
    Row(("GET", "/v1/ports/detail"), "port details", fixed("GET", "/v1/ports/detail"), READ_ALL),
    Row(
        ("POST", "/v1/ports"),
        "create a port",
        lambda w: Req("POST", "/v1/ports", {"node_uuid": w.ids["node_a"], "address": random_mac()}),
        E(201, 201, 404, 403),
        lambda w: Req("POST", "/v1/ports", {"node_uuid": random_id(), "address": random_mac()}),
    ),
    Row(
        ("POST", "/v1/ports"),
        "create a port on another project's node",
        lambda w: Req("POST", "/v1/ports", {"node_uuid": w.ids["node_b"], "address": random_mac()}),
        E(201, 404, 201, 403),
        lambda w: Req("POST", "/v1/ports", {"node_uuid": random_id(), "address": random_mac()}),
    ),
    Row(
        ("POST", "/v1/ports"),
        "create a port in another project's port group",
        lambda w: Req(
            "POST",
            "/v1/ports",
            {
                "node_uuid": w.ids["node_a"],
                "address": random_mac(),
                "portgroup_uuid": w.ids["pg_b"],
            },
        ),
        E(400, 404, 404, 403),
        lambda w: Req(
            "POST",
            "/v1/ports",
            {"node_uuid": w.ids["node_a"], "address": random_mac(), "portgroup_uuid": random_id()},
        ),
    ),
    Row(
        ("POST", "/v1/ports"),
        "create a port in a port group of another node of the project",
        lambda w: Req(
            "POST",
            "/v1/ports",
            {
                "node_uuid": w.ids["node_a"],
                "address": random_mac(),
                "portgroup_uuid": w.portgroup(w.node()),
            },
        ),
        E(400, 400, 404, 403),
    ),
    Row(
        ("POST", "/v1/ports"),
        "create a smart NIC port (admin only)",
        lambda w: Req(
            "POST",
            "/v1/ports",
            {
                "node_uuid": w.ids["node_a"],
                "address": random_mac(),
                "is_smartnic": True,
                "local_link_connection": SMART_LLC,
            },
        ),
        E(201, 403, 404, 403),
    ),
    Row(
        ("POST", "/v1/ports"),
        "create a port with a local_link_connection (admin only)",
        lambda w: Req(
            "POST",
            "/v1/ports",
            {
                "node_uuid": w.ids["node_a"],
                "address": random_mac(),
                "local_link_connection": {"switch_id": "00:11:22:33:44:55", "port_id": "e1"},
            },
        ),
        E(201, 403, 404, 403),
    ),
    Row(
        ("GET", "/v1/ports/{uuid}"),
        "show port",
        fixed("GET", "/v1/ports/{port_a}"),
        READ_A,
        fixed("GET", f"/v1/ports/{random_id()}"),
    ),
    Row(
        ("PATCH", "/v1/ports/{uuid}"),
        "patch port extra",
        fixed("PATCH", "/v1/ports/{port_a}", [{"op": "add", "path": "/extra/k", "value": 1}]),
        WRITE_A,
    ),
    Row(
        ("PATCH", "/v1/ports/{uuid}"),
        "move a port to another project's node",
        lambda w: Req(
            "PATCH",
            f"/v1/ports/{w.port(w.node())}",
            [{"op": "replace", "path": "/node_uuid", "value": w.ids["node_b"]}],
        ),
        E(200, 404, 404, 403),
        lambda w: Req(
            "PATCH",
            f"/v1/ports/{w.port(w.node())}",
            [{"op": "replace", "path": "/node_uuid", "value": random_id()}],
        ),
    ),
    Row(
        ("PATCH", "/v1/ports/{uuid}"),
        "put a port in another project's port group",
        lambda w: Req(
            "PATCH",
            f"/v1/ports/{w.port(w.ids['node_a'])}",
            [{"op": "add", "path": "/portgroup_uuid", "value": w.ids["pg_b"]}],
        ),
        E(400, 404, 404, 403),
        lambda w: Req(
            "PATCH",
            f"/v1/ports/{w.port(w.ids['node_a'])}",
            [{"op": "add", "path": "/portgroup_uuid", "value": random_id()}],
        ),
    ),
    Row(
        ("PATCH", "/v1/ports/{uuid}"),
        "set is_smartnic and local_link_connection (admin only)",
        lambda w: Req(
            "PATCH",
            f"/v1/ports/{w.port(w.node())}",
            [
                {"op": "replace", "path": "/is_smartnic", "value": True},
                {"op": "add", "path": "/local_link_connection", "value": SMART_LLC},
            ],
        ),
        E(200, 403, 404, 403),
    ),
    Row(
        ("PATCH", "/v1/ports/{uuid}"),
        "change a smart NIC port's NIC port (admin only)",
        lambda w: Req(
            "PATCH",
            f"/v1/ports/{w.port(w.node(), is_smartnic=True, local_link_connection=SMART_LLC)}",
            [{"op": "replace", "path": "/local_link_connection/port_id", "value": "pf9"}],
        ),
        E(200, 403, 404, 403),
    ),
    *(
        Row(
            ("PATCH", "/v1/ports/{uuid}"),
            f"change {what} on an active node",
            functools.partial(_on_active_port, op=op),
            E(409, 409, 404, 403),
        )
        for what, op in (
            ("pxe_enabled", {"op": "replace", "path": "/pxe_enabled", "value": False}),
            ("physical_network", {"op": "add", "path": "/physical_network", "value": "physnet9"}),
            ("portgroup_uuid", {"op": "add", "path": "/portgroup_uuid", "value": "{pg}"}),
        )
    ),
    Row(
        ("PATCH", "/v1/ports/{uuid}"),
        "change extra on an active node",
        lambda w: _on_active_port(w, {"op": "add", "path": "/extra/k", "value": 1}),
        E(200, 200, 404, 403),
    ),
    Row(
        ("DELETE", "/v1/ports/{uuid}"),
        "delete port",
        lambda w: Req("DELETE", f"/v1/ports/{w.port(w.node())}"),
        E(204, 204, 404, 403),
    ),
    # --- port groups --------------------------------------------------------------------------
    Row(("GET", "/v1/portgroups"), "list port groups", fixed("GET", "/v1/portgroups"), READ_ALL),
    Row(
        ("GET", "/v1/portgroups/detail"),
        "port group details",
        fixed("GET", "/v1/portgroups/detail"),
        READ_ALL,
    ),
    Row(
        ("POST", "/v1/portgroups"),
        "create a port group",
        fixed("POST", "/v1/portgroups", {"node_uuid": "{node_a}"}),
        E(201, 201, 404, 403),
    ),
    Row(
        ("POST", "/v1/portgroups"),
        "create a port group on another project's node",
        fixed("POST", "/v1/portgroups", {"node_uuid": "{node_b}"}),
        E(201, 404, 201, 403),
        fixed("POST", "/v1/portgroups", {"node_uuid": random_id()}),
    ),
    Row(
        ("GET", "/v1/portgroups/{ident}"),
        "show port group",
        fixed("GET", "/v1/portgroups/{pg_a}"),
        READ_A,
        fixed("GET", f"/v1/portgroups/{random_id()}"),
    ),
    Row(
        ("PATCH", "/v1/portgroups/{ident}"),
        "patch port group extra",
        fixed("PATCH", "/v1/portgroups/{pg_a}", [{"op": "add", "path": "/extra/k", "value": 1}]),
        WRITE_A,
    ),
    Row(
        ("PATCH", "/v1/portgroups/{ident}"),
        "move a port group to another project's node",
        lambda w: Req(
            "PATCH",
            f"/v1/portgroups/{w.portgroup(w.node())}",
            [{"op": "replace", "path": "/node_uuid", "value": w.ids["node_b"]}],
        ),
        E(200, 404, 404, 403),
        lambda w: Req(
            "PATCH",
            f"/v1/portgroups/{w.portgroup(w.node())}",
            [{"op": "replace", "path": "/node_uuid", "value": random_id()}],
        ),
    ),
    Row(
        ("PATCH", "/v1/portgroups/{ident}"),
        "change a smart NIC bond's mode (admin only)",
        lambda w: _smartnic_group(w, [{"op": "replace", "path": "/mode", "value": "802.3ad"}]),
        E(200, 403, 404, 403),
    ),
    Row(
        ("DELETE", "/v1/portgroups/{ident}"),
        "delete port group",
        lambda w: Req("DELETE", f"/v1/portgroups/{w.portgroup(w.node())}"),
        E(204, 204, 404, 403),
    ),
    Row(
        ("GET", "/v1/portgroups/{ident}/ports"),
        "port group ports",
        fixed("GET", "/v1/portgroups/{pg_a}/ports"),
        READ_A,
    ),
    Row(
        ("GET", "/v1/portgroups/{ident}/ports/detail"),
        "port group port details",
        fixed("GET", "/v1/portgroups/{pg_a}/ports/detail"),
        READ_A,
    ),
    # --- the spec's rules on node fields --------------------------------------------------------
    *(
        Row(
            ("PATCH", "/v1/nodes/{ident}"),
            f"change {field_} on an active node{' in maintenance' if maint else ''}",
            functools.partial(_on_active_node, name=field_, value=value, maintenance=maint),
            E(200 if maint else 409, 409, 404, 403),
        )
        for field_, value in (
            ("deploy_interface", "ramdisk"),
            ("network_interface", "noop"),
            ("boot_interface", "pxe"),
            ("driver", "fake-hardware"),
        )
        for maint in (False, True)
    ),
    Row(
        ("PATCH", "/v1/nodes/{ident}"),
        "change deploy_interface on an available node",
        lambda w: _in_state(w, "available", "deploy_interface", "ramdisk"),
        E(200, 200, 404, 403),
    ),
    # --- drivers ---------------------------------------------------------------------------------
    Row(("GET", "/v1/drivers"), "drivers", fixed("GET", "/v1/drivers"), READ_ALL),
    Row(
        ("GET", "/v1/drivers/{name}"), "driver", fixed("GET", "/v1/drivers/fake-hardware"), READ_ALL
    ),
    Row(
        ("GET", "/v1/drivers/{name}/properties"),
        "driver properties",
        fixed("GET", "/v1/drivers/fake-hardware/properties"),
        READ_ALL,
    ),
    # --- network API: discovery ------------------------------------------------------------------
    Row(
        ("GET", "/network/v2.0/extensions"),
        "extensions",
        fixed("GET", N + "/extensions"),
        E(200, 200, 200, 200, agent=200),
    ),
    # --- networks -------------------------------------------------------------------------------
    Row(("GET", N + "/networks"), "list networks", fixed("GET", N + "/networks"), READ_ALL),
    Row(
        ("POST", N + "/networks"),
        "create network",
        fixed("POST", N + "/networks", {"network": {"name": "m"}}),
        CREATE,
    ),
    Row(
        ("POST", N + "/networks"),
        "create a shared network (admin only)",
        fixed("POST", N + "/networks", {"network": {"name": "m", "shared": True}}),
        E(201, 403, 403, 403),
    ),
    Row(
        ("POST", N + "/networks"),
        "create a network named like a phase network (admin only)",
        fixed("POST", N + "/networks", {"network": {"name": "provisioning"}}),
        E(201, 403, 403, 403),
    ),
    Row(
        ("PUT", N + "/networks/{net_id}"),
        "rename a network like a phase network (admin only)",
        lambda w: Req("PUT", N + f"/networks/{w.network()}", {"network": {"name": "provisioning"}}),
        E(200, 403, 404, 403),
    ),
    Row(
        ("PUT", N + "/networks/{net_id}"),
        "share a network (admin only)",
        lambda w: Req("PUT", N + f"/networks/{w.network()}", {"network": {"shared": True}}),
        E(200, 403, 404, 403),
    ),
    Row(
        ("GET", N + "/networks/{net_id}"),
        "show network",
        fixed("GET", N + "/networks/{net_a}"),
        READ_A,
        fixed("GET", N + f"/networks/{random_id()}"),
    ),
    Row(
        ("GET", N + "/networks/{net_id}"),
        "show a shared network",
        fixed("GET", N + "/networks/{net_shared}"),
        READ_ALL,
    ),
    Row(
        ("PUT", N + "/networks/{net_id}"),
        "update network",
        fixed("PUT", N + "/networks/{net_a}", {"network": {"name": "n"}}),
        WRITE_A,
        fixed("PUT", N + f"/networks/{random_id()}", {"network": {"name": "n"}}),
    ),
    Row(
        ("PUT", N + "/networks/{net_id}"),
        "update a network shared by another project",
        fixed("PUT", N + "/networks/{net_shared}", {"network": {"name": "n"}}),
        E(200, 403, 200, 403),
    ),
    Row(
        ("DELETE", N + "/networks/{net_id}"),
        "delete network",
        lambda w: Req("DELETE", N + f"/networks/{w.network()}"),
        E(204, 204, 404, 403),
    ),
    # --- subnets --------------------------------------------------------------------------------
    Row(("GET", N + "/subnets"), "list subnets", fixed("GET", N + "/subnets"), READ_ALL),
    Row(
        ("POST", N + "/subnets"),
        "create subnet",
        lambda w: Req("POST", N + "/subnets", {"subnet": _subnet_body(w.network())}),
        E(201, 201, 404, 403),
        lambda w: Req("POST", N + "/subnets", {"subnet": _subnet_body(random_id())}),
    ),
    Row(
        ("POST", N + "/subnets"),
        "create a subnet on a network shared by another project",
        lambda w: Req(
            "POST", N + "/subnets", {"subnet": _subnet_body(w.ids["net_shared"], fresh=True)}
        ),
        E(201, 403, 201, 403),
    ),
    Row(
        ("GET", N + "/subnets/{subnet_id}"),
        "show subnet",
        fixed("GET", N + "/subnets/{subnet_a}"),
        READ_A,
        fixed("GET", N + f"/subnets/{random_id()}"),
    ),
    Row(
        ("GET", N + "/subnets/{subnet_id}"),
        "show a shared network's subnet",
        fixed("GET", N + "/subnets/{subnet_shared}"),
        READ_ALL,
    ),
    Row(
        ("PUT", N + "/subnets/{subnet_id}"),
        "update subnet",
        fixed("PUT", N + "/subnets/{subnet_a}", {"subnet": {"name": "n"}}),
        WRITE_A,
        fixed("PUT", N + f"/subnets/{random_id()}", {"subnet": {"name": "n"}}),
    ),
    Row(
        ("PUT", N + "/subnets/{subnet_id}"),
        "update a subnet of a network shared by another project",
        fixed("PUT", N + "/subnets/{subnet_shared}", {"subnet": {"name": "n"}}),
        E(200, 403, 200, 403),
    ),
    Row(
        ("DELETE", N + "/subnets/{subnet_id}"),
        "delete subnet",
        lambda w: Req("DELETE", N + f"/subnets/{w.subnet()}"),
        E(204, 204, 404, 403),
    ),
    # --- network ports --------------------------------------------------------------------------
    Row(("GET", N + "/ports"), "list network ports", fixed("GET", N + "/ports"), READ_ALL),
    Row(
        ("POST", N + "/ports"),
        "create a port with an address of another project's subnet",
        fixed(
            "POST",
            N + "/ports",
            {"port": {"network_id": "{net_a}", "fixed_ips": [{"subnet_id": "{subnet_b}"}]}},
        ),
        E(400, 404, 404, 403),  # admin: a subnet of another network (InvalidInput)
        fixed(
            "POST",
            N + "/ports",
            {"port": {"network_id": "{net_a}", "fixed_ips": [{"subnet_id": random_id()}]}},
        ),
    ),
    Row(
        ("POST", N + "/ports"),
        "choose the address of a port on a shared network (its owner and admins only)",
        lambda w: Req(
            "POST",
            N + "/ports",
            {"port": {"network_id": w.ids["net_shared"], "fixed_ips": [{"ip_address": _ip()}]}},
        ),
        E(201, 403, 201, 403),
    ),
    Row(
        ("POST", N + "/ports"),
        "create a network port",
        fixed("POST", N + "/ports", {"port": {"network_id": "{net_a}"}}),
        E(201, 201, 404, 403),
        fixed("POST", N + "/ports", {"port": {"network_id": random_id()}}),
    ),
    Row(
        ("POST", N + "/ports"),
        "create a port on another project's network",
        fixed("POST", N + "/ports", {"port": {"network_id": "{net_b}"}}),
        E(201, 404, 201, 403),
        fixed("POST", N + "/ports", {"port": {"network_id": random_id()}}),
    ),
    Row(
        ("POST", N + "/ports"),
        "create a port on a shared network",
        fixed("POST", N + "/ports", {"port": {"network_id": "{net_shared}"}}),
        CREATE,
    ),
    Row(
        ("POST", N + "/ports"),
        "create a port with another project's security group",
        fixed(
            "POST", N + "/ports", {"port": {"network_id": "{net_a}", "security_groups": ["{sg_b}"]}}
        ),
        E(404, 404, 404, 403),
        fixed(
            "POST",
            N + "/ports",
            {"port": {"network_id": "{net_a}", "security_groups": [random_id()]}},
        ),
    ),
    Row(
        ("POST", N + "/ports"),
        "create a port with its project's security group",
        fixed(
            "POST", N + "/ports", {"port": {"network_id": "{net_a}", "security_groups": ["{sg_a}"]}}
        ),
        E(201, 201, 404, 403),
    ),
    Row(
        ("POST", N + "/ports"),
        "create a port marked as the bare-metal service's",
        fixed(
            "POST",
            N + "/ports",
            {"port": {"network_id": "{net_a}", "device_owner": "baremetal:none"}},
        ),
        E(201, 403, 403, 403),
    ),
    Row(
        ("GET", N + "/ports/{port_id}"),
        "show network port",
        fixed("GET", N + "/ports/{nport_a}"),
        READ_A,
        fixed("GET", N + f"/ports/{random_id()}"),
    ),
    Row(
        ("PUT", N + "/ports/{port_id}"),
        "update network port",
        fixed("PUT", N + "/ports/{nport_a}", {"port": {"name": "n"}}),
        WRITE_A,
        fixed("PUT", N + f"/ports/{random_id()}", {"port": {"name": "n"}}),
    ),
    Row(
        ("PUT", N + "/ports/{port_id}"),
        "give a port another project's security group",
        fixed("PUT", N + "/ports/{nport_a}", {"port": {"security_groups": ["{sg_b}"]}}),
        E(404, 404, 404, 403),
        fixed("PUT", N + "/ports/{nport_a}", {"port": {"security_groups": [random_id()]}}),
    ),
    Row(
        ("PUT", N + "/ports/{port_id}"),
        "re-point a port the bare-metal service uses to another node",
        lambda w: Req(
            "PUT",
            N + f"/ports/{w.net_port(device_owner='baremetal:none')}",
            {"port": {"device_id": w.ids["node_b"]}},
        ),
        E(200, 403, 404, 403),
    ),
    Row(
        ("DELETE", N + "/ports/{port_id}"),
        "delete network port",
        lambda w: Req("DELETE", N + f"/ports/{w.net_port()}"),
        E(204, 204, 404, 403),
    ),
    # --- security groups and rules ---------------------------------------------------------------
    Row(
        ("GET", N + "/security-groups"),
        "list security groups",
        fixed("GET", N + "/security-groups"),
        READ_ALL,
    ),
    Row(
        ("POST", N + "/security-groups"),
        "create security group",
        fixed("POST", N + "/security-groups", {"security_group": {"name": "m"}}),
        CREATE,
    ),
    Row(
        ("GET", N + "/security-groups/{gid}"),
        "show security group",
        fixed("GET", N + "/security-groups/{sg_a}"),
        READ_A,
        fixed("GET", N + f"/security-groups/{random_id()}"),
    ),
    Row(
        ("PUT", N + "/security-groups/{gid}"),
        "update security group",
        fixed("PUT", N + "/security-groups/{sg_a}", {"security_group": {"description": "d"}}),
        WRITE_A,
        fixed(
            "PUT", N + f"/security-groups/{random_id()}", {"security_group": {"description": "d"}}
        ),
    ),
    Row(
        ("DELETE", N + "/security-groups/{gid}"),
        "delete security group",
        lambda w: Req("DELETE", N + f"/security-groups/{w.secgroup()}"),
        E(204, 204, 404, 403),
    ),
    Row(
        ("GET", N + "/security-group-rules"),
        "list rules",
        fixed("GET", N + "/security-group-rules"),
        READ_ALL,
    ),
    Row(
        ("POST", N + "/security-group-rules"),
        "create rule",
        fixed(
            "POST",
            N + "/security-group-rules",
            {"security_group_rule": {"security_group_id": "{sg_a}", "direction": "ingress"}},
        ),
        E(201, 201, 404, 403),
    ),
    Row(
        ("POST", N + "/security-group-rules"),
        "create a rule whose remote group is another project's",
        fixed(
            "POST",
            N + "/security-group-rules",
            {
                "security_group_rule": {
                    "security_group_id": "{sg_a}",
                    "direction": "ingress",
                    "remote_group_id": "{sg_b}",
                }
            },
        ),
        E(404, 404, 404, 403),
        fixed(
            "POST",
            N + "/security-group-rules",
            {
                "security_group_rule": {
                    "security_group_id": "{sg_a}",
                    "direction": "ingress",
                    "remote_group_id": random_id(),
                }
            },
        ),
    ),
    Row(
        ("GET", N + "/security-group-rules/{rule_id}"),
        "show rule",
        fixed("GET", N + "/security-group-rules/{rule_a}"),
        READ_A,
        fixed("GET", N + f"/security-group-rules/{random_id()}"),
    ),
    Row(
        ("DELETE", N + "/security-group-rules/{rule_id}"),
        "delete rule",
        lambda w: Req("DELETE", N + f"/security-group-rules/{w.rule(w.ids['sg_a'])}"),
        E(204, 204, 404, 403),
    ),
    # --- agents: admins only, as in Neutron ---
    Row(("GET", N + "/agents"), "list agents", fixed("GET", N + "/agents"), ADMIN_ONLY),
    Row(
        ("GET", N + "/agents/{agent_id}"),
        "show agent",
        fixed("GET", N + "/agents/{agent}"),
        ADMIN_ONLY,
    ),
    Row(
        ("PUT", N + "/agents/{agent_id}"),
        "update agent",
        fixed("PUT", N + "/agents/{agent}", {"agent": {"admin_state_up": True}}),
        ADMIN_ONLY,
    ),
    Row(
        ("DELETE", N + "/agents/{agent_id}"),
        "delete agent",
        lambda w: _fresh_agent(w),
        E(204, 403, 403, 403),
    ),
    # --- the agent contract: an agent speaks only for the NIC hosts it is granted ---
    Row(
        ("POST", N + "/metalnic/agents/heartbeat"),
        "heartbeat for the granted NIC host",
        fixed(
            "POST",
            N + "/metalnic/agents/heartbeat",
            {"host": NIC_HOST, "configurations": {"mode": "local", "smartnic": True}},
        ),
        E(200, 403, 403, 403, agent=200, agent_other=403),
    ),
    Row(
        ("GET", N + "/metalnic/hosts/{nic_host}/desired"),
        "desired state of the granted NIC host",
        lambda w: _alive(w, Req("GET", N + f"/metalnic/hosts/{NIC_HOST}/desired")),
        E(200, 403, 403, 403, agent=200, agent_other=403),
    ),
    Row(
        ("POST", N + "/metalnic/hosts/{nic_host}/report"),
        "report for the granted NIC host",
        lambda w: _alive(w, Req("POST", N + f"/metalnic/hosts/{NIC_HOST}/report", {"ports": {}})),
        E(204, 403, 403, 403, agent=204, agent_other=403),
    ),
    Row(
        ("GET", N + "/metalnic/dhcp-agents/{host}/desired"),
        "desired state of the DHCP agent it registered",
        lambda w: _dhcp_registered(w, Req("GET", N + f"/metalnic/dhcp-agents/{DHCP_HOST}/desired")),
        E(200, 403, 403, 403, agent=200, agent_other=403),
    ),
    # --- agent grants (admin only) ---
    Row(
        ("GET", N + "/metalnic/agent-grants"),
        "list grants",
        fixed("GET", N + "/metalnic/agent-grants"),
        ADMIN_ONLY,
    ),
    Row(
        ("PUT", N + "/metalnic/agent-grants/{user}"),
        "grant NIC hosts",
        fixed("PUT", N + "/metalnic/agent-grants/rbac-agent2", GRANT),
        ADMIN_ONLY,
    ),
    Row(
        ("GET", N + "/metalnic/agent-grants/{user}"),
        "show a grant",
        lambda w: _granted(w, Req("GET", N + "/metalnic/agent-grants/rbac-agent2")),
        ADMIN_ONLY,
    ),
    Row(
        ("DELETE", N + "/metalnic/agent-grants/{user}"),
        "revoke a grant",
        lambda w: _granted(w, Req("DELETE", N + "/metalnic/agent-grants/rbac-agent2")),
        E(204, 403, 403, 403),
    ),
]


# --- tags: the same seven routes on each kind of resource, with the resource's own rights ---------

_TAGGED = {  # kind → (the key of project-a's object in the world, how to make a fresh one)
    "networks": ("net_a", lambda w: w.network()),
    "subnets": ("subnet_a", lambda w: w.subnet(w.network())),
    "ports": ("nport_a", lambda w: w.net_port()),
    "security-groups": ("sg_a", lambda w: w.secgroup()),
}


def _tagged(w: World, kind: str) -> str:
    """A fresh object of project-a of ``kind`` with the tag ``t``."""
    ident = str(_TAGGED[kind][1](w))
    assert w.net.put(f"/{kind}/{ident}/tags/t").status_code == 201
    return ident


def _tag_rows(kind: str) -> list[Row]:
    key = _TAGGED[kind][0]
    base = N + f"/{kind}/{{resource_id}}/tags"

    def on_fresh(method: str, tail: str = "", body: Any = None) -> Build:
        return lambda w: Req(method, N + f"/{kind}/{_tagged(w, kind)}/tags{tail}", body)

    def on_missing(method: str, tail: str = "", body: Any = None) -> Build:
        return lambda _w: Req(method, N + f"/{kind}/{random_id()}/tags{tail}", body)

    tags = {"tags": ["x", "y"]}
    return [
        Row(
            ("GET", base),
            f"list {kind} tags",
            fixed("GET", N + f"/{kind}/{{{key}}}/tags"),
            READ_A,
            on_missing("GET"),
        ),
        Row(
            ("PUT", base),
            f"replace {kind} tags",
            on_fresh("PUT", "", tags),
            WRITE_A,
            on_missing("PUT", "", tags),
        ),
        Row(
            ("POST", base),
            f"add {kind} tags (tag-creation)",
            on_fresh("POST", "", tags),
            WRITE_A,
            on_missing("POST", "", tags),
        ),
        Row(
            ("DELETE", base),
            f"remove all {kind} tags",
            on_fresh("DELETE"),
            E(204, 204, 404, 403),
            on_missing("DELETE"),
        ),
        Row(
            ("GET", base + "/{tag}"),
            f"check a {kind} tag",
            on_fresh("GET", "/t"),
            E(204, 204, 404, 204),
            on_missing("GET", "/t"),
        ),
        Row(
            ("PUT", base + "/{tag}"),
            f"add a {kind} tag",
            on_fresh("PUT", "/u"),
            E(201, 201, 404, 403),
            on_missing("PUT", "/u"),
        ),
        Row(
            ("DELETE", base + "/{tag}"),
            f"remove a {kind} tag",
            on_fresh("DELETE", "/t"),
            E(204, 204, 404, 403),
            on_missing("DELETE", "/t"),
        ),
    ]


ROWS += [row for kind in _TAGGED for row in _tag_rows(kind)]
ROWS += [
    Row(
        ("GET", N + "/networks/{resource_id}/tags"),
        "list the tags of a network shared by another project",
        fixed("GET", N + "/networks/{net_shared}/tags"),
        READ_ALL,
    ),
    Row(
        ("PUT", N + "/networks/{resource_id}/tags/{tag}"),
        "tag a network shared by another project (its owner only)",
        fixed("PUT", N + "/networks/{net_shared}/tags/s"),
        E(201, 403, 201, 403),
    ),
]


# --- the tests ---------------------------------------------------------------------------------


def _send(w: World, role: str, req: Req) -> httpx.Response:
    if role not in w.callers:  # one client (and connection) per caller for the module
        w.callers[role] = httpx.Client(
            base_url=w.server.url, headers=H153, auth=USERS[role], timeout=30
        )
    return w.callers[role].request(req.method, req.path, json=req.body, params=req.params)


def _error_format(r: httpx.Response, path: str) -> None:
    """Errors come in the API's own format: Ironic's on /v1, Neutron's on /v2.0."""
    body = r.json()
    if path.startswith("/network"):
        assert set(body) == {"NeutronError"}, body
        assert set(body["NeutronError"]) == {"type", "message", "detail"}
    else:
        assert set(body) == {"error_message"}, body
        assert set(json.loads(body["error_message"])) == {"faultcode", "faultstring", "debuginfo"}


def _without_ids(text: str, *ids: str) -> str:
    for ident in ids:
        text = text.replace(ident, "<id>")
    return text


def _app_routes(tmp: Path) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, from the OpenAPI document FastAPI derives
    from its routes (no route of metalnic is left out of the schema)."""
    paths = create_app(Settings(state_dir=tmp)).openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_every_route_has_a_row(tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)
    assert routes, "no routes enumerated"
    rows = {row.route for row in ROWS}
    assert routes - rows == set(), "routes without a row in the RBAC matrix"
    assert rows - routes == set(), "rows for routes the app does not have"


CELLS = [(row, role) for row in ROWS for role in ROLES]


@pytest.mark.parametrize(
    ("row", "role"),
    CELLS,
    ids=[f"{row.route[0]} {row.route[1]} [{row.name}] {role}" for row, role in CELLS],
)
def test_matrix_cell(world: World, row: Row, role: str) -> None:
    req = row.build(world)
    r = _send(world, role, req)
    want = row.expect[role]
    assert r.status_code == want, f"{req.method} {req.path} as {role}: {r.status_code} {r.text}"
    if r.status_code >= 400:
        _error_format(r, req.path)
    if want == 404 and row.missing is not None and role != "anonymous":
        absent = row.missing(world)
        r2 = _send(world, role, absent)
        assert r2.status_code == 404, r2.text
        hidden = _hidden_ids(req, absent)
        assert _without_ids(r.text, *hidden) == _without_ids(r2.text, *hidden), (
            "a hidden object is answered differently from a missing one"
        )


def _hidden_ids(req: Req, absent: Req) -> list[str]:
    """The ids in which the two requests differ (the hidden one and the random one)."""
    words = set(json.dumps([req.path, req.body]).replace("/", '"').split('"'))
    other = set(json.dumps([absent.path, absent.body]).replace("/", '"').split('"'))
    return sorted(words ^ other, key=len, reverse=True)


def test_refused_references_write_nothing(world: World) -> None:
    """The issue's reproductions: B's security group on A's port, B's port as A's VIF —
    refused, and nothing of them is stored."""
    alice = USERS["owner"]
    ports_before = {p["id"] for p in world.net.get("/ports").json()["ports"]}
    with httpx.Client(base_url=world.server.url, headers=H153, auth=alice, timeout=30) as c:
        body = {"port": {"network_id": world.ids["net_a"], "security_groups": [world.ids["sg_b"]]}}
        assert c.post(N + "/ports", json=body).status_code == 404
        update = {"port": {"security_groups": [world.ids["sg_b"]]}}
        assert c.put(N + f"/ports/{world.ids['nport_a']}", json=update).status_code == 404
        node = world.node(ports=1)
        r = c.post(f"/v1/nodes/{node}/vifs", json={"id": world.ids["nport_b"]})
        assert r.status_code == 404
        assert c.get(f"/v1/nodes/{node}/vifs").json() == {"vifs": []}
    assert {p["id"] for p in world.net.get("/ports").json()["ports"]} == ports_before
    shown = world.net.get(f"/ports/{world.ids['nport_a']}").json()["port"]
    assert world.ids["sg_b"] not in shown["security_groups"]
    assert world.net.get(f"/ports/{world.ids['nport_b']}").json()["port"]["device_id"] == ""
