"""Bad input on /network/v2.0: 400 in Neutron's format, nothing written, later reads fine.

Each case is one hostile request against a real `metalnic serve` (http_basic);
the test counts the rows of every network table before and after, compares the
objects the request aimed at, and lists networks and ports afterwards as the
admin and as a member (a stored bad value would break those reads for all).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORDS
from tests.support import Server, add_user, start_server

API = "/network/v2.0"
TABLES = ("networks", "network_ports", "security_groups", "security_group_rules", "agents")
AGENT = ("nic-agent", "agent-secret-5")
NIC = "nic-bad-1"
Ctx = dict[str, str]
Call = Callable[[httpx.Client, httpx.Client, Ctx], httpx.Response]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("net-bad-input")
    users = tmp / "users.toml"
    shutil.copy(users_file, users)
    add_user(users, *AGENT, "agent", None, nic_hosts=(NIC,))
    server = start_server(
        tmp,
        "--auth",
        "http_basic",
        "--users-file",
        str(users),
        env={"METALNIC_NETWORK_VLAN_RANGES": '["physnet1:100:199"]'},
    )
    server.auth = ("admin", PASSWORDS["admin"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ctx(srv: Server) -> Ctx:
    with _client(srv, "admin") as admin, _client(srv, "nic-agent") as agent:
        beat = {"host": "agent-bad", "configurations": {"nic_hosts": [NIC], "smartnic": True}}
        assert agent.post("/metalnic/agents/heartbeat", json=beat).status_code == 200
        net = admin.post("/networks", json={"network": {"name": "bad-input"}}).json()["network"]
        profile = {"local_link_information": [{"hostname": NIC, "port_id": "pf0hpf"}]}
        port = admin.post(
            "/ports",
            json={
                "port": {
                    "network_id": net["id"],
                    "binding:vnic_type": "smart-nic",
                    "binding:host_id": NIC,
                    "binding:profile": profile,
                }
            },
        ).json()["port"]
        group = admin.post("/security-groups", json={"security_group": {"name": "g"}}).json()
        agent_id = admin.get("/agents").json()["agents"][0]["id"]
    return {
        "net": net["id"],
        "port": port["id"],
        "group": group["security_group"]["id"],
        "agent": agent_id,
    }


def _client(srv: Server, user: str) -> httpx.Client:
    auth = AGENT if user == "nic-agent" else (user, PASSWORDS[user])
    return httpx.Client(base_url=srv.url + API, auth=auth, timeout=60)


def raw(method: str, path: str, content: bytes, as_agent: bool = False) -> Call:
    def call(admin: httpx.Client, agent: httpx.Client, x: Ctx) -> httpx.Response:
        c = agent if as_agent else admin
        headers = {"Content-Type": "application/json"}
        body = content.replace(b"{net}", x["net"].encode())
        return c.request(method, path.format(**x), content=body, headers=headers)

    return call


def send(method: str, path: str, body: Any = None, as_agent: bool = False, **params: Any) -> Call:
    def call(admin: httpx.Client, agent: httpx.Client, x: Ctx) -> httpx.Response:
        c = agent if as_agent else admin
        return c.request(method, path.format(**x), json=body, params=params or None)

    return call


def net(**fields: Any) -> Call:
    return send("POST", "/networks", {"network": {"name": "n", **fields}})


def port(**fields: Any) -> Call:
    def call(admin: httpx.Client, agent: httpx.Client, x: Ctx) -> httpx.Response:
        body = {"port": {"network_id": x["net"], **fields}}
        return admin.post("/ports", json=body)

    return call


def rule(**fields: Any) -> Call:
    def call(admin: httpx.Client, agent: httpx.Client, x: Ctx) -> httpx.Response:
        body = {"security_group_id": x["group"], "direction": "ingress", **fields}
        return admin.post("/security-group-rules", json={"security_group_rule": body})

    return call


def report(body: Any) -> Call:
    return send("POST", f"/metalnic/hosts/{NIC}/report", body, as_agent=True)


def heartbeat(body: Any) -> Call:
    return send("POST", "/metalnic/agents/heartbeat", body, as_agent=True)


BIG = 2**64
LLI = "local_link_information"
CASES: dict[str, tuple[Call, str]] = {
    # an object where a string is expected (was a 500 that committed nothing, then 2xx)
    "physical_network object": (net(**{"provider:physical_network": {}}), "physical_network"),
    "network name object": (net(name={"a": 1}), "not a valid string"),
    "network type list": (net(**{"provider:network_type": ["vlan"]}), "network_type"),
    # unicode digits pass str.isdigit() and then fail int()
    "segmentation_id unicode digit": (net(**{"provider:segmentation_id": "²"}), "segmentation"),
    "mtu unicode digit": (net(mtu="²"), "mtu"),
    # Integers beyond 64 bits are refused by the JSON reader both APIs share, before any
    # field is looked at: the message names the rule, not the field.
    "mtu over 64 bits": (net(mtu=BIG), "64 bits"),
    "segmentation_id over 64 bits": (net(**{"provider:segmentation_id": BIG}), "64 bits"),
    "mtu boolean": (net(mtu=True), "mtu"),
    "integer of 5000 digits": (
        raw("POST", "/networks", b'{"network": {"mtu": ' + b"9" * 5000 + b"}}"),
        "64 bits",
    ),
    "lone surrogate in name": (
        raw("POST", "/networks", b'{"network": {"name": "a\\ud800b"}}'),
        "unicode",
    ),
    "unknown network attribute": (net(colour="red"), "Unrecognized attribute(s) 'colour'"),
    "update mtu not a number": (send("PUT", "/networks/{net}", {"network": {"mtu": "x"}}), "mtu"),
    "update mtu too small": (send("PUT", "/networks/{net}", {"network": {"mtu": 1}}), "mtu"),
    "update admin_state_up": (
        send("PUT", "/networks/{net}", {"network": {"admin_state_up": "maybe"}}),
        "boolean",
    ),
    # binding:profile: local_link_information is a list of objects
    "local_link_information string": (port(**{"binding:profile": {LLI: "x"}}), LLI),
    "local_link_information of strings": (port(**{"binding:profile": {LLI: ["x"]}}), LLI),
    "local_group_information string": (
        port(**{"binding:profile": {"local_group_information": "x"}}),
        "local_group_information",
    ),
    "link hostname object": (
        port(**{"binding:profile": {LLI: [{"hostname": {}, "port_id": "p"}]}}),
        "hostname",
    ),
    "profile integer over 64 bits": (port(**{"binding:profile": {"n": BIG}}), "64 bits"),
    "profile not an object": (port(**{"binding:profile": "x"}), "binding:profile"),
    "profile lone surrogate": (
        raw(
            "POST",
            "/ports",
            b'{"port": {"network_id": "{net}", "binding:profile": {"k": "\\udc00"}}}',
        ),
        "surrogate",
    ),
    "update profile local_link_information": (
        send("PUT", "/ports/{port}", {"port": {"binding:profile": {LLI: "x"}}}),
        LLI,
    ),
    "port security_groups not a list": (port(security_groups="default"), "security_groups"),
    "port mac object": (port(mac_address={}), "mac_address"),
    "port vnic_type unknown": (port(**{"binding:vnic_type": "sriov"}), "vnic_type"),
    "port fixed_ips not an address": (port(fixed_ips=[{"ip_address": "10.0.0.300"}]), "fixed_ips"),
    "port fixed_ips entry empty": (port(fixed_ips=[{}]), "fixed_ips"),
    "port without network": (send("POST", "/ports", {"port": {"name": "x"}}), "network_id"),
    # security group rules
    "remote_ip_prefix number": (rule(remote_ip_prefix=5), "remote_ip_prefix"),
    "port range over 64 bits": (rule(protocol="tcp", port_range_min=BIG), "64 bits"),
    "port range unicode digit": (rule(protocol="tcp", port_range_max="²"), "port_range_max"),
    "port range boolean": (rule(protocol="tcp", port_range_min=True), "port_range_min"),
    "protocol unicode digit": (rule(protocol="²"), "protocol"),
    "protocol number too big": (rule(protocol=256), "protocol"),
    "direction unknown": (rule(direction="sideways"), "direction"),
    "group name object": (
        send("POST", "/security-groups", {"security_group": {"name": {}}}),
        "not a valid string",
    ),
    "group description number": (
        send("POST", "/security-groups", {"security_group": {"description": 5}}),
        "description",
    ),
    # the agent contract
    "applied_revision string": (report({"applied_revision": "x"}), "applied_revision"),
    "applied_revision over 64 bits": (report({"applied_revision": BIG}), "64 bits"),
    "report status unknown": (report({"ports": {"p": {"status": "UP"}}}), "status"),
    "report ports not a map": (report({"ports": ["x"]}), "ports"),
    "report verified answer": (
        report({"verified": {"v": {"p": {"plugged": "yes"}}}}),
        "plugged",
    ),
    "heartbeat host object": (heartbeat({"host": {}}), "host"),
    "heartbeat nic_hosts string": (
        heartbeat({"host": "h2", "configurations": {"nic_hosts": "x"}}),
        "nic_hosts",
    ),
    "heartbeat smartnic string": (
        heartbeat({"host": "h2", "configurations": {"smartnic": "false"}}),
        "smartnic",
    ),
    "heartbeat mode unknown": (heartbeat({"host": "h2", "configurations": {"mode": "x"}}), "mode"),
    "desired since unicode digit": (
        send("GET", f"/metalnic/hosts/{NIC}/desired", as_agent=True, since="²"),
        "since",
    ),
    "desired wait negative": (
        send("GET", f"/metalnic/hosts/{NIC}/desired", as_agent=True, since="0", wait="--5"),
        "wait",
    ),
    "desired since over 64 bits": (
        send("GET", f"/metalnic/hosts/{NIC}/desired", as_agent=True, since=str(BIG)),
        "since",
    ),
    "filter with NUL": (send("GET", "/networks", name="a\x00b"), "name"),
    "path id with NUL": (send("GET", "/ports/a%00b"), "port_id"),
    "agent admin_state_up": (
        send("PUT", "/agents/{agent}", {"agent": {"admin_state_up": "maybe"}}),
        "boolean",
    ),
}


def _state(srv: Server, admin: httpx.Client, x: Ctx) -> tuple[Any, ...]:
    counts = tuple(srv.sqlite_count(t) for t in TABLES)
    objects = (
        admin.get(f"/networks/{x['net']}").json(),
        admin.get(f"/ports/{x['port']}").json(),
        admin.get(f"/security-groups/{x['group']}").json(),
        {
            k: v
            for k, v in admin.get(f"/agents/{x['agent']}").json()["agent"].items()
            if k != "heartbeat_timestamp" and k != "alive"
        },
    )
    return counts, objects


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_network_input(srv: Server, ctx: Ctx, case: str) -> None:
    call, needle = CASES[case]
    with _client(srv, "admin") as admin, _client(srv, "nic-agent") as agent:
        before = _state(srv, admin, ctx)
        r = call(admin, agent, ctx)
        assert r.status_code == 400, r.text
        body = r.json()
        assert set(body) == {"NeutronError"}, body
        assert body["NeutronError"]["type"] == "HTTPBadRequest"
        assert set(body["NeutronError"]) == {"type", "message", "detail"}
        assert needle.lower() in body["NeutronError"]["message"].lower(), body
        assert _state(srv, admin, ctx) == before
    for user in ("admin", "alice"):
        with _client(srv, user) as c:
            for collection in ("networks", "ports", "security-groups", "security-group-rules"):
                assert c.get(f"/{collection}").status_code == 200, (user, collection)


def test_a_valid_mtu_is_applied_on_update(srv: Server, ctx: Ctx) -> None:
    with _client(srv, "admin") as admin:
        r = admin.put(f"/networks/{ctx['net']}", json={"network": {"mtu": 9000}})
        assert r.status_code == 200 and r.json()["network"]["mtu"] == 9000, r.text
        assert admin.get(f"/networks/{ctx['net']}").json()["network"]["mtu"] == 9000
        r = admin.put(f"/networks/{ctx['net']}", json={"network": {"mtu": "1500"}})
        assert r.status_code == 200 and r.json()["network"]["mtu"] == 1500, r.text


def test_lenient_values_neutron_clients_send_still_work(srv: Server, ctx: Ctx) -> None:
    """Decimal strings for integers and "True"/"false" for booleans, as the CLI sends them."""
    with _client(srv, "admin") as admin:
        r = admin.post(
            "/networks",
            json={
                "network": {
                    "name": "lenient",
                    "provider:segmentation_id": "150",
                    "mtu": "1400",
                    "shared": "True",
                }
            },
        )
        assert r.status_code == 201, r.text
        made = r.json()["network"]
        assert (made["provider:segmentation_id"], made["mtu"], made["shared"]) == (150, 1400, True)
        body = {
            "security_group_id": ctx["group"],
            "direction": "ingress",
            "protocol": "TCP",
            "port_range_min": "22",
            "port_range_max": 22,
            "remote_ip_prefix": "10.0.0.0/8",
        }
        r = admin.post("/security-group-rules", json={"security_group_rule": body})
        assert r.status_code == 201, r.text
        assert r.json()["security_group_rule"]["protocol"] == "tcp"
        assert admin.delete(f"/networks/{made['id']}").status_code == 204
