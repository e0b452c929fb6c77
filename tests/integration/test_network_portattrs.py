"""Tags, allowed address pairs and extra DHCP options over real HTTP, the openstack CLI
and openstacksdk (a `metalnic serve` with http_basic users of two projects)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest

from tests.conftest import PASSWORDS
from tests.support import Server, add_user, openstack_cli, start_server

AGENT = ("pa-agent", "agent-secret-7")
NIC = "nic-pa1"


@pytest.fixture(scope="module")
def pa_server(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("portattrs")
    own_users = tmp / "users.toml"
    shutil.copy(users_file, own_users)
    add_user(own_users, AGENT[0], AGENT[1], "agent", None, nic_hosts=(NIC,))
    srv = start_server(
        tmp,
        "--auth",
        "http_basic",
        "--users-file",
        str(own_users),
        env={
            "METALNIC_NETWORK_VLAN_RANGES": '["physnet1:300:349"]',
            "METALNIC_AGENT_DOWN_TIME": "60",
        },
    )
    srv.auth = ("admin", PASSWORDS["admin"])
    yield srv
    srv.stop()


def api(server: Server, user: str = "alice") -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/network/v2.0", auth=(user, PASSWORDS[user]), timeout=30
    )


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    return dict(body["NeutronError"])


def make(c: httpx.Client, kind: str, **fields: Any) -> dict[str, Any]:
    """A new resource of ``kind`` (networks, ports, security-groups) as created."""
    if kind == "ports":
        net = make(c, "networks")
        fields = {"network_id": net["id"], **fields}
    key = {"networks": "network", "ports": "port", "security-groups": "security_group"}[kind]
    r = c.post(f"/{kind}", json={key: {"name": f"pa-{kind}", **fields}})
    assert r.status_code == 201, r.text
    return dict(r.json()[key])


def show(c: httpx.Client, kind: str, ident: str) -> dict[str, Any]:
    key = {"networks": "network", "ports": "port", "security-groups": "security_group"}[kind]
    r = c.get(f"/{kind}/{ident}")
    assert r.status_code == 200, r.text
    return dict(r.json()[key])


# --- tags ---------------------------------------------------------------------------------

KINDS = ("networks", "ports", "security-groups")


@pytest.mark.parametrize("kind", KINDS)
def test_tag_routes_status_codes_and_revisions(pa_server: Server, kind: str) -> None:
    with api(pa_server) as c:
        made = make(c, kind)
        base = f"/{kind}/{made['id']}/tags"
        rev = show(c, kind, made["id"])["revision_number"]
        assert made["tags"] == []
        assert c.get(base).json() == {"tags": []}

        r = c.put(base, json={"tags": ["red", "blue"]})
        assert r.status_code == 200 and r.json() == {"tags": ["blue", "red"]}
        shown = show(c, kind, made["id"])
        assert shown["tags"] == ["blue", "red"]
        assert shown["revision_number"] == rev + 1
        assert c.put(base, json={"tags": ["red", "blue"]}).status_code == 200  # no change
        assert show(c, kind, made["id"])["revision_number"] == rev + 1

        r = c.put(base + "/green")
        assert r.status_code == 201 and r.content == b""
        assert c.put(base + "/green").status_code == 201  # already there: no change
        assert show(c, kind, made["id"])["revision_number"] == rev + 2
        assert c.get(base + "/green").status_code == 204
        assert error(c.get(base + "/purple"), 404)["type"] == "TagNotFound"

        assert c.delete(base + "/red").status_code == 204
        assert error(c.delete(base + "/red"), 404)["type"] == "TagNotFound"
        assert c.get(base).json() == {"tags": ["blue", "green"]}
        assert c.delete(base).status_code == 204
        shown = show(c, kind, made["id"])
        assert shown["tags"] == [] and shown["revision_number"] == rev + 4

        # What a tag may be: a string of at most 255 characters, unique in a PUT.
        assert c.put(base + "/" + "x" * 255).status_code == 201
        error(c.put(base + "/" + "x" * 256), 400)
        error(c.get(base + "/" + "y" * 256), 400)
        for bad in (
            {"tags": ["a", "a"]},
            {"tags": ["z" * 256]},
            {"tags": [1]},
            {"tags": "a"},
            {},
            {"tags": ["a"], "other": 1},
        ):
            error(c.put(base, json=bad), 400)
        assert c.get(base).json() == {"tags": ["x" * 255]}  # nothing half-written


def test_tags_need_the_rights_on_the_resource(pa_server: Server) -> None:
    with api(pa_server, "alice") as alice, api(pa_server, "bob") as bob:
        net = make(alice, "networks")
        port = make(alice, "ports")
        group = make(alice, "security-groups")
        assert alice.put(f"/networks/{net['id']}/tags/mine").status_code == 201
        for kind, ident, missing in (
            ("networks", net["id"], "NetworkNotFound"),
            ("ports", port["id"], "PortNotFound"),
            ("security-groups", group["id"], "SecurityGroupNotFound"),
        ):
            base = f"/{kind}/{ident}/tags"
            for r in (
                bob.get(base),
                bob.put(base, json={"tags": ["theirs"]}),
                bob.delete(base),
                bob.get(base + "/mine"),
                bob.put(base + "/theirs"),
                bob.delete(base + "/mine"),
            ):
                assert error(r, 404)["type"] == missing
        # An observer reads tags but cannot change them.
        with api(pa_server, "olga") as olga:
            assert olga.get(f"/networks/{net['id']}/tags").json() == {"tags": ["mine"]}
            error(olga.put(f"/networks/{net['id']}/tags/o"), 403)
        # Bob's list filtered by alice's tag shows nothing of alice's.
        assert bob.get("/networks", params={"tags": "mine"}).json()["networks"] == []
        assert alice.get(f"/networks/{net['id']}/tags").json() == {"tags": ["mine"]}


@pytest.mark.parametrize("kind", KINDS)
def test_tag_filters(pa_server: Server, kind: str) -> None:
    with api(pa_server, "admin") as c:
        marker = f"f-{kind}"  # keeps this test's resources apart from the others'
        sets = {"ab": {"a", "b"}, "a": {"a"}, "bc": {"b", "c"}, "none": set()}
        ids = {}
        for name, tags in sets.items():
            made = make(c, kind)
            r = c.put(f"/{kind}/{made['id']}/tags", json={"tags": sorted(tags | {marker})})
            assert r.status_code == 200
            ids[name] = made["id"]
        key = kind.replace("-", "_")

        def listed(**params: str | list[str]) -> set[str]:
            r = c.get(f"/{kind}", params={"tags-any": marker, **params})
            assert r.status_code == 200, r.text
            found = {item["id"] for item in r.json()[key]}
            return {name for name, ident in ids.items() if ident in found}

        assert listed(tags="a") == {"ab", "a"}
        assert listed(tags="a,b") == {"ab"}
        assert listed(tags=["a", "b"]) == {"ab"}  # repeated: the same as a,b
        assert listed(**{"tags-any": f"{marker},c"}) == set(sets)
        assert listed(**{"not-tags": "a,b"}) == {"a", "bc", "none"}
        assert listed(**{"not-tags-any": "a,c"}) == {"none"}
        assert listed(tags="b", **{"not-tags-any": "c"}) == {"ab"}
        assert listed(tags="a,nosuch") == set()
        items = c.get(f"/{kind}", params={"tags": f"{marker},a"}).json()[key]
        assert sorted(i["id"] for i in items) == sorted([ids["ab"], ids["a"]])
        assert all(marker in i["tags"] for i in items)


# --- allowed address pairs ------------------------------------------------------------------


def test_allowed_address_pairs_rules(pa_server: Server) -> None:
    with api(pa_server) as c:
        net = make(c, "networks")
        pairs = [
            {"ip_address": "10.0.0.5"},
            {"ip_address": "10.1.0.0/16", "mac_address": "AA:BB:CC:00:00:01"},
            {"ip_address": "2001:db8::/64"},
        ]
        r = c.post(
            "/ports", json={"port": {"network_id": net["id"], "allowed_address_pairs": pairs}}
        )
        assert r.status_code == 201, r.text
        port = r.json()["port"]
        mac = port["mac_address"]
        assert port["allowed_address_pairs"] == [
            {"ip_address": "10.0.0.5", "mac_address": mac},
            {"ip_address": "10.1.0.0/16", "mac_address": "aa:bb:cc:00:00:01"},
            {"ip_address": "2001:db8::/64", "mac_address": mac},
        ]
        assert show(c, "ports", port["id"]) == port

        def create(**fields: Any) -> httpx.Response:
            return c.post("/ports", json={"port": {"network_id": net["id"], **fields}})

        for bad in (
            [{"ip_address": "10.0.0.300"}],
            [{"ip_address": "10.0.0.1/24"}],  # host bits: Neutron wants 10.0.0.0/24
            [{"ip_address": "224.0.0.1"}],
            [{"ip_address": "10.0.0.0/255.255.255.0"}],  # Neutron: 10.0.0.0/24 is recommended
            [{"ip_address": "fe80::1%eth0"}],
            [{"ip_address": "10.0.0.1", "mac_address": "zz:00:00:00:00:00"}],
            [{"ip_address": "10.0.0.1", "mac_address": "01:00:5e:00:00:01"}],  # multicast
            [{"mac_address": "aa:bb:cc:00:00:02"}],
            [{"ip_address": "10.0.0.1", "vlan": 3}],
            ["10.0.0.1"],
        ):
            assert error(create(allowed_address_pairs=bad), 400)["type"] == "HTTPBadRequest", bad
        dup = [{"ip_address": "10.0.0.9", "mac_address": "aa:bb:cc:00:00:03"}] * 2
        err = error(create(allowed_address_pairs=dup), 400)
        assert err["type"] == "DuplicateAddressPairInRequest"
        many = [{"ip_address": f"10.2.0.{i}"} for i in range(11)]
        err = error(create(allowed_address_pairs=many), 400)
        assert err["type"] == "AllowedAddressPairExhausted" and "10" in err["message"]
        assert create(allowed_address_pairs=many[:10]).status_code == 201
        err = error(create(allowed_address_pairs=pairs, port_security_enabled=False), 409)
        assert err["type"] == "AddressPairAndPortSecurityRequired"

        # PUT replaces the list; port security cannot go while pairs remain.
        base = f"/ports/{port['id']}"
        rev = port["revision_number"]
        r = c.put(base, json={"port": {"allowed_address_pairs": [{"ip_address": "10.9.9.9"}]}})
        assert r.status_code == 200, r.text
        assert r.json()["port"]["allowed_address_pairs"] == [
            {"ip_address": "10.9.9.9", "mac_address": mac}
        ]
        assert r.json()["port"]["revision_number"] > rev
        r = c.put(base, json={"port": {"port_security_enabled": False}})
        assert error(r, 409)["type"] == "AddressPairAndPortSecurityRequired"
        assert show(c, "ports", port["id"])["port_security_enabled"] is True
        r = c.put(
            base,
            json={
                "port": {
                    "port_security_enabled": False,
                    "allowed_address_pairs": [],
                    "security_groups": [],
                }
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["port"]["allowed_address_pairs"] == []
        r = c.put(base, json={"port": {"allowed_address_pairs": [{"ip_address": "10.9.9.9"}]}})
        assert error(r, 409)["type"] == "AddressPairAndPortSecurityRequired"


def test_allowed_address_pairs_reach_the_agent(pa_server: Server) -> None:
    profile = {"local_link_information": [{"hostname": NIC, "port_id": "pf0hpf"}]}
    with (
        api(pa_server, "admin") as c,
        httpx.Client(base_url=pa_server.url + "/network/v2.0", auth=AGENT, timeout=30) as agent,
    ):
        r = agent.post(
            "/metalnic/agents/heartbeat",
            json={"host": NIC, "configurations": {"mode": "local", "smartnic": True}},
        )
        assert r.status_code == 200, r.text
        net = make(c, "networks")
        port = make(
            c,
            "ports",
            network_id=net["id"],
            **{
                "binding:vnic_type": "smart-nic",
                "binding:host_id": NIC,
                "binding:profile": profile,
                "allowed_address_pairs": [{"ip_address": "192.0.2.10"}],
            },
        )
        assert port["binding:vif_type"] == "ovs"
        desired = agent.get(f"/metalnic/hosts/{NIC}/desired").json()
        mine = [p for p in desired["ports"] if p["id"] == port["id"]]
        assert mine[0]["allowed_address_pairs"] == [
            {"ip_address": "192.0.2.10", "mac_address": port["mac_address"]}
        ]
        before = desired["revision"]
        pairs = [{"ip_address": "192.0.2.0/28", "mac_address": "aa:bb:cc:00:00:10"}]
        r = c.put(f"/ports/{port['id']}", json={"port": {"allowed_address_pairs": pairs}})
        assert r.status_code == 200, r.text
        desired = agent.get(f"/metalnic/hosts/{NIC}/desired").json()
        assert desired["revision"] > before  # the agent is woken for the change
        mine = [p for p in desired["ports"] if p["id"] == port["id"]]
        assert mine[0]["allowed_address_pairs"] == pairs


# --- extra DHCP options ---------------------------------------------------------------------

IRONIC_OPTS: list[dict[str, Any]] = [
    {"opt_name": "tag:!ipxe,67", "opt_value": "undionly.kpxe"},
    {"opt_name": "tag:ipxe,67", "opt_value": "http://192.0.2.1:8080/boot.ipxe"},
    {"opt_name": "server-ip-address", "opt_value": "192.0.2.1"},
    {"opt_name": "tag:!ipxe6,59", "opt_value": "tftp://[2001:db8::1]/snponly.efi", "ip_version": 6},
]


def test_extra_dhcp_opts_create_merge_delete(pa_server: Server) -> None:
    with api(pa_server) as c:
        net = make(c, "networks")
        r = c.post(
            "/ports", json={"port": {"network_id": net["id"], "extra_dhcp_opts": IRONIC_OPTS}}
        )
        assert r.status_code == 201, r.text
        port = r.json()["port"]
        expected = [{**o, "ip_version": o.get("ip_version", 4)} for o in IRONIC_OPTS]
        assert port["extra_dhcp_opts"] == expected
        assert show(c, "ports", port["id"])["extra_dhcp_opts"] == expected

        base = f"/ports/{port['id']}"
        change = [
            {"opt_name": "server-ip-address", "opt_value": "192.0.2.2"},  # new value
            {"opt_name": "tag:!ipxe,67", "opt_value": None},  # removed
            {"opt_name": "dns-server", "opt_value": "192.0.2.53,192.0.2.54", "ip_version": "4"},
            {"opt_name": "server-ip-address", "opt_value": None, "ip_version": 6},  # absent
        ]
        r = c.put(base, json={"port": {"extra_dhcp_opts": change}})
        assert r.status_code == 200, r.text
        assert r.json()["port"]["extra_dhcp_opts"] == [
            expected[1],
            {"opt_name": "server-ip-address", "opt_value": "192.0.2.2", "ip_version": 4},
            expected[3],
            {"opt_name": "dns-server", "opt_value": "192.0.2.53,192.0.2.54", "ip_version": 4},
        ]
        kept = r.json()["port"]["extra_dhcp_opts"]
        assert (
            c.put(base, json={"port": {"name": "renamed"}}).json()["port"]["extra_dhcp_opts"]
            == kept
        )

        for bad in (
            {"opt_name": "bootfile-name", "opt_value": "a\nb"},  # a second dnsmasq line
            {"opt_name": "bootfile-name", "opt_value": "x.efi,tag:evil"},  # a cut value
            {"opt_name": "bootfile-name", "opt_value": 'x"y'},
            {"opt_name": "bootfile-name", "opt_value": ""},
            {"opt_name": "bootfile name", "opt_value": "x"},
            {"opt_name": "tag:ipxe", "opt_value": "x"},
            {"opt_name": "", "opt_value": "x"},
            {"opt_name": "67", "opt_value": "x", "ip_version": 5},
            {"opt_name": "67"},
            {"opt_name": "67", "opt_value": "x", "port_id": "p"},
            {"opt_name": "b" * 65, "opt_value": "x"},
            {"opt_name": "67", "opt_value": "v" * 256},
        ):
            r = c.put(base, json={"port": {"extra_dhcp_opts": [bad]}})
            assert error(r, 400)["type"] == "HTTPBadRequest", bad
        twice = [{"opt_name": "66", "opt_value": "a"}, {"opt_name": "66", "opt_value": "b"}]
        error(c.put(base, json={"port": {"extra_dhcp_opts": twice}}), 400)
        assert show(c, "ports", port["id"])["extra_dhcp_opts"] == kept  # nothing written
        r = c.put(
            base, json={"port": {"extra_dhcp_opts": [{"opt_name": "router", "opt_value": ""}]}}
        )
        assert r.status_code == 200, r.text  # Neutron lets router have no value


def test_port_list_equals_show_with_the_new_attributes(pa_server: Server) -> None:
    with api(pa_server) as c:
        net = make(c, "networks")
        r = c.post(
            "/ports",
            json={
                "port": {
                    "network_id": net["id"],
                    "allowed_address_pairs": [{"ip_address": "10.3.0.1"}],
                    "extra_dhcp_opts": IRONIC_OPTS[:2],
                    "tags": ["z", "a,comma", "ü"],
                }
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["port"]["tags"] == ["a,comma", "z", "ü"]
        plain = make(c, "ports", network_id=net["id"])
        listed = c.get("/ports", params={"network_id": net["id"]}).json()["ports"]
        assert listed == [show(c, "ports", r.json()["port"]["id"]), show(c, "ports", plain["id"])]


# --- the real clients -----------------------------------------------------------------------


def os_cli(server: Server, user: str, *args: str) -> Any:
    r = openstack_cli(server.url + "/network", *args, auth=(user, PASSWORDS[user]))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "json" in args else r.stdout


def test_openstack_cli_tags_pairs_and_dhcp_options(pa_server: Server) -> None:
    net = os_cli(
        pa_server, "alice", "network", "create", "pa-cli-net", "--tag", "blue", "-f", "json"
    )
    assert net["tags"] == ["blue"]
    os_cli(pa_server, "alice", "network", "set", "--tag", "red", net["id"])
    shown = os_cli(pa_server, "alice", "network", "show", net["id"], "-f", "json")
    assert sorted(shown["tags"]) == ["blue", "red"]
    listed = os_cli(pa_server, "alice", "network", "list", "--tags", "red,blue", "-f", "json")
    assert [n["ID"] for n in listed] == [net["id"]]
    none = os_cli(pa_server, "alice", "network", "list", "--not-tags", "red", "-f", "json")
    assert net["id"] not in [n["ID"] for n in none]
    os_cli(pa_server, "alice", "network", "unset", "--tag", "blue", net["id"])
    assert os_cli(pa_server, "alice", "network", "show", net["id"], "-f", "json")["tags"] == ["red"]

    port = os_cli(
        pa_server,
        "alice",
        "port",
        "create",
        "--network",
        net["id"],
        "--allowed-address",
        "ip-address=10.4.0.0/24,mac-address=aa:bb:cc:00:00:20",
        "--allowed-address",
        "ip-address=10.4.1.1",
        "--extra-dhcp-option",
        "name=bootfile-name,value=undionly.kpxe",
        "--extra-dhcp-option",
        "name=bootfile-url,value=http://[2001:db8::1]/boot.ipxe,ip-version=6",
        "pa-cli-port",
        "-f",
        "json",
    )
    assert port["allowed_address_pairs"] == [
        {"ip_address": "10.4.0.0/24", "mac_address": "aa:bb:cc:00:00:20"},
        {"ip_address": "10.4.1.1", "mac_address": port["mac_address"]},
    ]
    # (The CLI splits name=…,value=… on commas: a tag-conditioned name such as
    # tag:ipxe,67 goes through the API's JSON, as Ironic sends it; see the SDK test.)
    with api(pa_server) as c:
        stored = show(c, "ports", port["id"])["extra_dhcp_opts"]
    assert stored == [
        {"opt_name": "bootfile-name", "opt_value": "undionly.kpxe", "ip_version": 4},
        {
            "opt_name": "bootfile-url",
            "opt_value": "http://[2001:db8::1]/boot.ipxe",
            "ip_version": 6,
        },
    ]
    os_cli(pa_server, "alice", "port", "set", "--tag", "pxe", port["id"])
    ports = os_cli(pa_server, "alice", "port", "list", "--tags", "pxe", "-f", "json")
    assert [p["ID"] for p in ports] == [port["id"]]
    refused = openstack_cli(
        pa_server.url + "/network",
        "port",
        "create",
        "--network",
        net["id"],
        "--allowed-address",
        "ip-address=10.4.2.0/16",
        "bad-pair",
        auth=("alice", PASSWORDS["alice"]),
    )
    assert refused.returncode != 0 and "allowed_address_pairs.0.ip_address" in refused.stderr


def test_openstacksdk_tags_pairs_and_dhcp_options(pa_server: Server) -> None:
    conn = openstack.connect(
        auth_type="http_basic",
        username="alice",
        password=PASSWORDS["alice"],
        network_endpoint_override=pa_server.url + "/network",
        load_yaml_config=False,
        load_envvars=False,
    )
    net = conn.network.create_network(name="pa-sdk-net")
    conn.network.set_tags(net, ["sdk", "gold"])
    assert sorted(conn.network.get_network(net.id).tags) == ["gold", "sdk"]
    conn.network.add_tag(net, "extra")
    assert conn.network.check_tag(net, "extra")  # raises NotFound when absent
    conn.network.remove_tag(net, "gold")
    assert sorted(conn.network.get_network(net.id).tags) == ["extra", "sdk"]
    assert [n.id for n in conn.network.networks(tags="sdk,extra")] == [net.id]
    assert net.id not in [n.id for n in conn.network.networks(any_tags="gold")]
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.remove_tag(net, "gold")

    port = conn.network.create_port(
        network_id=net.id,
        allowed_address_pairs=[{"ip_address": "10.5.0.7"}],
        extra_dhcp_opts=[{"opt_name": "tag:ipxe,67", "opt_value": "http://192.0.2.1/x.ipxe"}],
    )
    assert port.allowed_address_pairs == [
        {"ip_address": "10.5.0.7", "mac_address": port.mac_address}
    ]
    assert port.extra_dhcp_opts == [
        {"opt_name": "tag:ipxe,67", "opt_value": "http://192.0.2.1/x.ipxe", "ip_version": 4}
    ]
    port = conn.network.update_port(
        port, extra_dhcp_opts=[{"opt_name": "tag:ipxe,67", "opt_value": None}]
    )
    assert port.extra_dhcp_opts == []
    conn.network.set_tags(port, ["p1"])
    assert [p.id for p in conn.network.ports(tags="p1")] == [port.id]
    group = conn.network.create_security_group(name="pa-sdk-sg")
    conn.network.add_tag(group, "sg-tag")
    assert conn.network.get_security_group(group.id).tags == ["sg-tag"]
    assert "standard-attr-tag" in {e.alias for e in conn.network.extensions()}


def test_concurrent_tag_adds_all_land(pa_server: Server) -> None:
    """Adding and removing one tag are relative to what is there: racing ones are all
    applied (made again on a fresh read when another won the row), none lost."""
    from concurrent.futures import ThreadPoolExecutor

    with api(pa_server) as c:
        net = make(c, "networks")
        base = f"/networks/{net['id']}/tags"
        assert c.put(base, json={"tags": [f"old-{i}" for i in range(10)]}).status_code == 200
        rev = show(c, "networks", net["id"])["revision_number"]

    def one(i: int) -> int:
        with api(pa_server) as own:
            if i < 10:
                return own.delete(f"{base}/old-{i}").status_code
            return own.put(f"{base}/new-{i}").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(30)))
    assert statuses == [204] * 10 + [201] * 20
    with api(pa_server) as c:
        shown = show(c, "networks", net["id"])
    assert shown["tags"] == sorted(f"new-{i}" for i in range(10, 30))
    assert shown["revision_number"] == rev + 30  # one revision per change
