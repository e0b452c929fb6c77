"""Subnets and fixed IPs over real HTTP, the openstack CLI and openstacksdk.

One `metalnic serve` with http_basic auth (admin; alice of project-a; bob of
project-b; olga the observer).  Error types are Neutron's (``NeutronError.type``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import netaddr
import openstack
import openstack.exceptions
import pytest

from tests.conftest import PASSWORDS
from tests.support import Server, openstack_cli, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("subnets"),
        "--auth",
        "http_basic",
        "--users-file",
        str(users_file),
        env={"METALNIC_NETWORK_VLAN_RANGES": '["physnet1:100:399"]'},
    )
    yield server
    server.stop()


def api(server: Server, user: str = "admin") -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/network/v2.0", auth=(user, PASSWORDS[user]), timeout=30
    )


def error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()["NeutronError"]
    assert body["type"] == kind, body
    return str(body["message"])


def network(c: httpx.Client, **fields: Any) -> dict[str, Any]:
    r = c.post("/networks", json={"network": {"name": "n", **fields}})
    assert r.status_code == 201, r.text
    return dict(r.json()["network"])


def subnet(c: httpx.Client, net_id: str, cidr: str, **fields: Any) -> dict[str, Any]:
    version = netaddr.IPNetwork(cidr).version
    body = {"network_id": net_id, "ip_version": version, "cidr": cidr, **fields}
    r = c.post("/subnets", json={"subnet": body})
    assert r.status_code == 201, r.text
    return dict(r.json()["subnet"])


def pool(start: str) -> list[dict[str, str]]:
    """An allocation pool from ``start`` to the end of its /24.  A test that names
    addresses names them below it: automatic allocation (a port's, the network's DHCP
    port's) picks at random in the pools and could otherwise have taken one first."""
    return [{"start": start, "end": start.rsplit(".", 1)[0] + ".254"}]


def port(c: httpx.Client, net_id: str, **fields: Any) -> httpx.Response:
    return c.post("/ports", json={"port": {"network_id": net_id, **fields}})


def ips(p: dict[str, Any]) -> list[str]:
    return [f["ip_address"] for f in p["fixed_ips"]]


# --- subnets ----------------------------------------------------------------------------


def test_subnet_crud_with_neutrons_defaults(srv: Server) -> None:
    with api(srv) as c:
        net = network(c)
        made = subnet(c, net["id"], "10.20.0.0/24", name="s1")
        assert made["gateway_ip"] == "10.20.0.1"
        assert made["allocation_pools"] == [{"start": "10.20.0.2", "end": "10.20.0.254"}]
        assert made["enable_dhcp"] is True
        assert made["dns_nameservers"] == [] and made["host_routes"] == []
        assert made["ipv6_ra_mode"] is None and made["project_id"] == net["project_id"]
        assert made["created_at"].endswith("Z") and made["revision_number"] >= 0
        assert c.get(f"/subnets/{made['id']}").json()["subnet"] == made
        assert c.get(f"/networks/{net['id']}").json()["network"]["subnets"] == [made["id"]]

        change = {
            "name": "s1b",
            "dns_nameservers": ["10.20.0.53", "8.8.8.8"],
            "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.20.0.254"}],
            "gateway_ip": None,
            "enable_dhcp": False,
        }
        r = c.put(f"/subnets/{made['id']}", json={"subnet": change})
        assert r.status_code == 200, r.text
        updated = r.json()["subnet"]
        assert updated["name"] == "s1b" and updated["gateway_ip"] is None
        assert updated["dns_nameservers"] == ["10.20.0.53", "8.8.8.8"]  # order kept
        assert updated["host_routes"] == change["host_routes"]
        assert updated["enable_dhcp"] is False
        assert updated["revision_number"] > made["revision_number"]
        r = c.put(f"/subnets/{made['id']}", json={"subnet": {"cidr": "10.21.0.0/24"}})
        assert r.status_code == 400  # not changeable
        stale = {"If-Match": f"revision_number={made['revision_number']}"}
        r = c.put(f"/subnets/{made['id']}", json={"subnet": {"name": "x"}}, headers=stale)
        error(r, 412, "RevisionNumberConstraintFailed")

        assert c.delete(f"/subnets/{made['id']}").status_code == 204
        error(c.get(f"/subnets/{made['id']}"), 404, "SubnetNotFound")
        assert c.get(f"/networks/{net['id']}").json()["network"]["subnets"] == []


def test_subnet_list_filters(srv: Server) -> None:
    with api(srv) as c:
        net, other = network(c), network(c)
        a = subnet(c, net["id"], "10.30.0.0/24", name="fa")
        b = subnet(c, net["id"], "fd00:30::/64", name="fb", enable_dhcp=False)
        d = subnet(c, other["id"], "10.30.0.0/24", name="fa")  # same CIDR, other network

        def found(**query: Any) -> set[str]:
            r = c.get("/subnets", params=query)
            assert r.status_code == 200, r.text
            return {s["id"] for s in r.json()["subnets"]}

        assert found(network_id=net["id"]) == {a["id"], b["id"]}
        assert found(network_id=net["id"], ip_version=6) == {b["id"]}
        assert found(cidr="10.30.0.0/24") == {a["id"], d["id"]}
        assert found(name="fa", network_id=other["id"]) == {d["id"]}
        assert found(network_id=net["id"], enable_dhcp="false") == {b["id"]}
        assert found(id=a["id"]) == {a["id"]}
        assert found(project_id="nobody") == set()
        listed = c.get("/subnets", params={"id": a["id"], "fields": ["id", "cidr"]}).json()
        assert listed["subnets"] == [{"id": a["id"], "cidr": "10.30.0.0/24"}]
        shown = c.get(f"/networks/{net['id']}").json()["network"]["subnets"]
        assert shown == [a["id"], b["id"]]  # oldest first
        assert {n["id"]: n["subnets"] for n in c.get("/networks").json()["networks"]}[
            other["id"]
        ] == [d["id"]]


def test_cidr_validation_in_neutrons_words(srv: Server) -> None:
    with api(srv) as c:
        net = network(c)
        body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.40.0.1/24"}
        message = error(c.post("/subnets", json={"subnet": body}), 400, "HTTPBadRequest")
        assert "'10.40.0.0/24' is recommended" in message
        body = {"network_id": net["id"], "ip_version": 6, "cidr": "10.40.0.0/24"}
        message = error(c.post("/subnets", json={"subnet": body}), 400, "InvalidInput")
        assert "does not match the ip_version" in message
        body = {"network_id": net["id"], "ip_version": 4, "cidr": "0.0.0.0/0"}
        error(c.post("/subnets", json={"subnet": body}), 400, "InvalidInput")
        body = {"network_id": net["id"], "ip_version": 5, "cidr": "10.40.0.0/24"}
        error(c.post("/subnets", json={"subnet": body}), 400, "HTTPBadRequest")
        subnet(c, net["id"], "10.40.0.0/24")
        body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.40.0.128/25"}
        message = error(c.post("/subnets", json={"subnet": body}), 400, "InvalidInput")
        assert "overlaps with another subnet" in message
        subnet(c, net["id"], "10.41.0.0/24")  # several subnets on one network
        assert len(c.get(f"/networks/{net['id']}").json()["network"]["subnets"]) == 2
    with api(srv, "alice") as alice:  # another project: the same CIDR is its own
        subnet(alice, network(alice)["id"], "10.40.0.0/24")


def test_pools_and_gateway(srv: Server) -> None:
    with api(srv) as c:
        net = network(c)
        base = {"network_id": net["id"], "ip_version": 4, "cidr": "10.50.0.0/24"}

        def refused(status: int, kind: str, **fields: Any) -> str:
            return error(c.post("/subnets", json={"subnet": {**base, **fields}}), status, kind)

        pools = [{"start": "10.50.0.1", "end": "10.50.0.20"}]
        message = refused(409, "GatewayConflictWithAllocationPools", allocation_pools=pools)
        assert "10.50.0.1" in message
        refused(
            400,
            "OutOfBoundsAllocationPool",
            allocation_pools=[{"start": "10.50.0.10", "end": "10.50.1.5"}],
        )
        refused(
            400,
            "OutOfBoundsAllocationPool",  # the broadcast address is no host
            allocation_pools=[{"start": "10.50.0.10", "end": "10.50.0.255"}],
        )
        refused(
            400,
            "InvalidAllocationPool",
            allocation_pools=[{"start": "10.50.0.30", "end": "10.50.0.20"}],
        )
        refused(
            409,
            "OverlappingAllocationPools",
            allocation_pools=[
                {"start": "10.50.0.10", "end": "10.50.0.20"},
                {"start": "10.50.0.15", "end": "10.50.0.30"},
            ],
        )
        refused(400, "InvalidInput", gateway_ip="10.50.0.0")  # the network's own address
        refused(400, "InvalidInput", gateway_ip="fd00::1")
        refused(400, "DNSNameServersExhausted", dns_nameservers=[f"10.0.0.{i}" for i in range(6)])
        refused(400, "HTTPBadRequest", dns_nameservers=["10.0.0.1", "10.0.0.1"])
        refused(400, "HTTPBadRequest", dns_nameservers=["not-an-ip"])
        route = {"destination": "fd00::/64", "nexthop": "10.50.0.1"}
        refused(400, "InvalidInput", host_routes=[route])

        none = subnet(c, net["id"], "10.50.0.0/24", gateway_ip=None)
        assert none["gateway_ip"] is None
        assert none["allocation_pools"] == [{"start": "10.50.0.1", "end": "10.50.0.254"}]
        r = c.put(f"/subnets/{none['id']}", json={"subnet": {"gateway_ip": "10.50.0.9"}})
        error(r, 409, "GatewayConflictWithAllocationPools")
        middle = subnet(c, network(c)["id"], "10.51.0.0/28", gateway_ip="10.51.0.7")
        assert middle["allocation_pools"] == [
            {"start": "10.51.0.1", "end": "10.51.0.6"},
            {"start": "10.51.0.8", "end": "10.51.0.14"},
        ]
        given = [{"start": "10.52.0.100", "end": "10.52.0.110"}]
        custom = subnet(c, network(c)["id"], "10.52.0.0/24", allocation_pools=given)
        assert custom["allocation_pools"] == given
        p = port(c, custom["network_id"]).json()["port"]
        assert 100 <= int(ips(p)[0].rsplit(".", 1)[1]) <= 110


def test_ipv6_modes(srv: Server) -> None:
    with api(srv) as c:
        net = network(c)
        base = {"network_id": net["id"], "ip_version": 6}

        def refused(**fields: Any) -> str:
            r = c.post("/subnets", json={"subnet": {**base, **fields}})
            return error(r, 400, "InvalidInput")

        assert "must be the same value" in refused(
            cidr="fd00:60::/64", ipv6_ra_mode="slaac", ipv6_address_mode="dhcpv6-stateful"
        )
        assert "EUI-64" in refused(cidr="fd00:60::/80", ipv6_address_mode="slaac")
        assert "enable_dhcp" in refused(
            cidr="fd00:60::/64", ipv6_address_mode="slaac", enable_dhcp=False
        )
        v4 = {"network_id": net["id"], "ip_version": 4, "cidr": "10.60.0.0/24"}
        r = c.post("/subnets", json={"subnet": {**v4, "ipv6_address_mode": "slaac"}})
        error(r, 400, "InvalidInput")
        r = c.post(
            "/subnets", json={"subnet": {**base, "cidr": "fd00:60::/64", "ipv6_ra_mode": "x"}}
        )
        error(r, 400, "HTTPBadRequest")

        v4s = subnet(c, net["id"], "10.60.0.0/24", allocation_pools=pool("10.60.0.100"))
        slaac = subnet(
            c, net["id"], "fd00:60::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac"
        )
        stateful = subnet(c, net["id"], "fd00:61::/64", ipv6_address_mode="dhcpv6-stateful")
        assert stateful["gateway_ip"] == "fd00:61::1"
        assert stateful["allocation_pools"] == [
            {"start": "fd00:61::2", "end": "fd00:61::ffff:ffff:ffff:ffff"}
        ]
        r = c.put(f"/subnets/{slaac['id']}", json={"subnet": {"enable_dhcp": False}})
        assert "Cannot disable enable_dhcp" in error(r, 400, "InvalidInput")

        mac = "fa:16:3e:12:34:56"
        made = port(c, net["id"], mac_address=mac).json()["port"]
        by_subnet = {f["subnet_id"]: f["ip_address"] for f in made["fixed_ips"]}
        assert set(by_subnet) == {v4s["id"], slaac["id"], stateful["id"]}
        assert by_subnet[slaac["id"]] == str(
            netaddr.EUI(mac).ipv6(netaddr.IPNetwork("fd00:60::/64").first)
        )
        assert netaddr.IPAddress(by_subnet[stateful["id"]]) in netaddr.IPNetwork("fd00:61::/64")
        assert netaddr.IPAddress(by_subnet[v4s["id"]]) in netaddr.IPNetwork("10.60.0.0/24")
        assert ips(made)[0] == by_subnet[v4s["id"]]  # IPv4 first
        wanted = {"subnet_id": slaac["id"], "ip_address": "fd00:60::5"}
        r = port(c, net["id"], fixed_ips=[wanted])
        assert "automatic addresses" in error(r, 400, "InvalidInput")
        # Naming only the IPv4 address: the SLAAC address comes along (Neutron).
        alone = port(c, net["id"], fixed_ips=[{"ip_address": "10.60.0.77"}]).json()["port"]
        assert {f["subnet_id"] for f in alone["fixed_ips"]} == {v4s["id"], slaac["id"]}
        # A new MAC (admins, unbound port): a new SLAAC address.
        mac2 = "fa:16:3e:65:43:21"
        r = c.put(f"/ports/{made['id']}", json={"port": {"mac_address": mac2}})
        assert r.status_code == 200, r.text
        again = {f["subnet_id"]: f["ip_address"] for f in r.json()["port"]["fixed_ips"]}
        assert again[slaac["id"]] == str(
            netaddr.EUI(mac2).ipv6(netaddr.IPNetwork("fd00:60::/64").first)
        )
        assert again[v4s["id"]] == by_subnet[v4s["id"]]
        # SLAAC addresses go with their subnet; a stateful one keeps it in use.
        error(c.delete(f"/subnets/{stateful['id']}"), 409, "SubnetInUse")
        assert c.delete(f"/subnets/{slaac['id']}").status_code == 204
        left = c.get(f"/ports/{made['id']}").json()["port"]
        assert {f["subnet_id"] for f in left["fixed_ips"]} == {v4s["id"], stateful["id"]}
        assert left["revision_number"] > r.json()["port"]["revision_number"]
        v6 = by_subnet[stateful["id"]].upper()  # a filter's address matches as normalized
        found = c.get("/ports", params={"fixed_ips": f"ip_address={v6}"}).json()["ports"]
        assert [p["id"] for p in found] == [made["id"]]


def test_ports_already_on_the_network_get_their_auto_addresses(srv: Server) -> None:
    """As in Neutron: a new SLAAC or DHCPv6-stateless subnet gives every port already on
    the network its EUI-64 address (not router interfaces); a stateful one gives none."""
    with api(srv) as c:
        net = network(c)
        mac, router_mac = "fa:16:3e:70:00:01", "fa:16:3e:70:00:02"
        host = port(c, net["id"], mac_address=mac).json()["port"]
        router = port(
            c, net["id"], mac_address=router_mac, device_owner="network:router_interface"
        ).json()["port"]
        assert host["fixed_ips"] == [] and router["fixed_ips"] == []
        made = {}
        for cidr, mode in (("fd00:70::/64", "slaac"), ("fd00:71::/64", "dhcpv6-stateless")):
            made[mode] = subnet(c, net["id"], cidr, ipv6_ra_mode=mode, ipv6_address_mode=mode)
        stateful = subnet(c, net["id"], "fd00:72::/64", ipv6_address_mode="dhcpv6-stateful")
        now = c.get(f"/ports/{host['id']}").json()["port"]
        assert {f["subnet_id"]: f["ip_address"] for f in now["fixed_ips"]} == {
            made[mode]["id"]: str(netaddr.EUI(mac).ipv6(netaddr.IPNetwork(cidr).first))
            for cidr, mode in (("fd00:70::/64", "slaac"), ("fd00:71::/64", "dhcpv6-stateless"))
        }
        assert now["revision_number"] >= host["revision_number"] + 2  # one per new address
        assert stateful["id"] not in {f["subnet_id"] for f in now["fixed_ips"]}
        assert c.get(f"/ports/{router['id']}").json()["port"]["fixed_ips"] == []
        found = c.get("/ports", params={"fixed_ips": f"subnet_id={made['slaac']['id']}"}).json()[
            "ports"
        ]
        assert [p["id"] for p in found if p["device_owner"] != "network:dhcp"] == [host["id"]]
        # They go with their subnets again.
        for mode in made:
            assert c.delete(f"/subnets/{made[mode]['id']}").status_code == 204
        assert c.get(f"/ports/{host['id']}").json()["port"]["fixed_ips"] == []


# --- fixed IPs --------------------------------------------------------------------------


def test_fixed_ips_requested_taken_released(srv: Server) -> None:
    with api(srv) as c:
        net = network(c)
        s1 = subnet(c, net["id"], "10.70.0.0/24", allocation_pools=pool("10.70.0.100"))
        s2 = subnet(c, net["id"], "10.71.0.0/24", allocation_pools=pool("10.71.0.210"))
        foreign = subnet(c, network(c)["id"], "10.72.0.0/24")

        a = port(c, net["id"], fixed_ips=[{"ip_address": "10.70.0.10"}])
        assert a.status_code == 201, a.text
        assert a.json()["port"]["fixed_ips"] == [
            {"subnet_id": s1["id"], "ip_address": "10.70.0.10"}
        ]
        again = port(c, net["id"], fixed_ips=[{"ip_address": "10.70.0.10"}])
        assert "already allocated" in error(again, 409, "IpAddressAlreadyAllocated")
        b = port(c, net["id"], fixed_ips=[{"subnet_id": s2["id"]}]).json()["port"]
        assert b["fixed_ips"][0]["subnet_id"] == s2["id"]
        both = [{"subnet_id": s2["id"], "ip_address": "10.71.0.200"}, {"subnet_id": s1["id"]}]
        multi = port(c, net["id"], fixed_ips=both).json()["port"]
        assert {f["subnet_id"] for f in multi["fixed_ips"]} == {s1["id"], s2["id"]}
        assert "10.71.0.200" in ips(multi)
        default = port(c, net["id"]).json()["port"]  # one IPv4 address: the first subnet's
        assert [f["subnet_id"] for f in default["fixed_ips"]] == [s1["id"]]
        bare = port(c, net["id"], fixed_ips=[]).json()["port"]
        assert bare["fixed_ips"] == []

        error(
            port(c, net["id"], fixed_ips=[{"ip_address": "10.99.0.1"}]), 400, "InvalidIpForNetwork"
        )
        wrong = [{"subnet_id": s1["id"], "ip_address": "10.71.0.5"}]
        error(port(c, net["id"], fixed_ips=wrong), 400, "InvalidIpForSubnet")
        broadcast = [{"subnet_id": s1["id"], "ip_address": "10.70.0.255"}]
        error(port(c, net["id"], fixed_ips=broadcast), 400, "InvalidIpForSubnet")
        r = port(c, net["id"], fixed_ips=[{"subnet_id": foreign["id"]}])
        assert "invalid subnet" in error(r, 400, "InvalidInput")
        error(port(c, net["id"], fixed_ips=[{"subnet_id": "no-such"}]), 404, "SubnetNotFound")
        error(port(c, net["id"], fixed_ips=[{}]), 400, "HTTPBadRequest")
        error(port(c, net["id"], fixed_ips=[{"ip_address": "10.70.0.300"}]), 400, "HTTPBadRequest")

        # A refused create leaves nothing behind: its first address is free again.
        count = len(c.get("/ports", params={"network_id": net["id"]}).json()["ports"])
        half = [{"ip_address": "10.70.0.50"}, {"ip_address": "10.70.0.10"}]
        error(port(c, net["id"], fixed_ips=half), 409, "IpAddressAlreadyAllocated")
        assert len(c.get("/ports", params={"network_id": net["id"]}).json()["ports"]) == count
        assert port(c, net["id"], fixed_ips=[{"ip_address": "10.70.0.50"}]).status_code == 201

        # Deleting the port releases its address.
        assert c.delete(f"/ports/{a.json()['port']['id']}").status_code == 204
        assert port(c, net["id"], fixed_ips=[{"ip_address": "10.70.0.10"}]).status_code == 201
        error(c.delete(f"/subnets/{s2['id']}"), 409, "SubnetInUse")


def test_fixed_ips_changed_with_put(srv: Server) -> None:
    with api(srv) as c:
        net = network(c)
        s1 = subnet(c, net["id"], "10.80.0.0/24", allocation_pools=pool("10.80.0.100"))
        p = port(c, net["id"], fixed_ips=[{"ip_address": "10.80.0.5"}]).json()["port"]
        r = c.put(f"/ports/{p['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.80.0.6"}]}})
        assert r.status_code == 200, r.text
        moved = r.json()["port"]
        assert ips(moved) == ["10.80.0.6"] and moved["revision_number"] > p["revision_number"]
        assert c.get(f"/ports/{p['id']}").json()["port"] == moved
        assert port(c, net["id"], fixed_ips=[{"ip_address": "10.80.0.5"}]).status_code == 201
        keep_add = [{"ip_address": "10.80.0.6", "subnet_id": s1["id"]}, {"ip_address": "10.80.0.7"}]
        r = c.put(f"/ports/{p['id']}", json={"port": {"fixed_ips": keep_add}})
        assert ips(r.json()["port"]) == ["10.80.0.6", "10.80.0.7"]
        r = c.put(f"/ports/{p['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.80.0.5"}]}})
        error(r, 409, "IpAddressAlreadyAllocated")
        assert ips(c.get(f"/ports/{p['id']}").json()["port"]) == ["10.80.0.6", "10.80.0.7"]
        r = c.put(f"/ports/{p['id']}", json={"port": {"fixed_ips": []}})
        assert r.json()["port"]["fixed_ips"] == []
        assert c.delete(f"/subnets/{s1['id']}").status_code == 409  # the other port
        # The network goes with its subnets once no port is left on it.
        for listed in c.get("/ports", params={"network_id": net["id"]}).json()["ports"]:
            c.delete(f"/ports/{listed['id']}")
        assert c.delete(f"/networks/{net['id']}").status_code == 204
        error(c.get(f"/subnets/{s1['id']}"), 404, "SubnetNotFound")


def test_port_list_filters_by_fixed_ips(srv: Server) -> None:
    with api(srv) as c:
        net = network(c)
        s1 = subnet(c, net["id"], "10.90.0.0/24", allocation_pools=pool("10.90.0.100"))
        s2 = subnet(c, net["id"], "10.91.0.0/24", allocation_pools=pool("10.91.0.100"))
        a = port(c, net["id"], fixed_ips=[{"ip_address": "10.90.0.10"}]).json()["port"]
        b = port(c, net["id"], fixed_ips=[{"ip_address": "10.91.0.10"}]).json()["port"]
        both = [{"ip_address": "10.90.0.11"}, {"ip_address": "10.91.0.11"}]
        d = port(c, net["id"], fixed_ips=both).json()["port"]

        def found(*pairs: str) -> set[str]:
            query = [("fixed_ips", p) for p in pairs]
            r = c.get("/ports", params=query)
            assert r.status_code == 200, r.text
            # (The network's DHCP port holds an address on each DHCP subnet too.)
            return {p["id"] for p in r.json()["ports"] if p["device_owner"] != "network:dhcp"}

        assert found("ip_address=10.90.0.10") == {a["id"]}
        assert found("ip_address=10.90.0.10", "ip_address=10.91.0.10") == {a["id"], b["id"]}
        assert found("subnet_id=" + s2["id"]) == {b["id"], d["id"]}
        assert found("subnet_id=" + s1["id"], "ip_address=10.91.0.11") == set()  # one address
        assert found("subnet_id=" + s1["id"], "ip_address=10.90.0.11") == {d["id"]}
        error(c.get("/ports", params={"fixed_ips": "mac=1"}), 400, "HTTPBadRequest")
        # The listed view equals each port's own view (the list's joined query).
        listed = {
            p["id"]: p for p in c.get("/ports", params={"network_id": net["id"]}).json()["ports"]
        }
        for p in (a, b, d):
            assert listed[p["id"]] == c.get(f"/ports/{p['id']}").json()["port"]


# --- who may see and use what -----------------------------------------------------------


def test_subnets_of_another_project_answer_404(srv: Server) -> None:
    with api(srv, "alice") as alice, api(srv, "bob") as bob, api(srv, "olga") as olga:
        net = network(alice)
        own = subnet(alice, net["id"], "10.100.0.0/24")
        error(bob.get(f"/subnets/{own['id']}"), 404, "SubnetNotFound")
        error(
            bob.put(f"/subnets/{own['id']}", json={"subnet": {"name": "x"}}), 404, "SubnetNotFound"
        )
        error(bob.delete(f"/subnets/{own['id']}"), 404, "SubnetNotFound")
        assert own["id"] not in {s["id"] for s in bob.get("/subnets").json()["subnets"]}
        body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.101.0.0/24"}
        error(bob.post("/subnets", json={"subnet": body}), 404, "NetworkNotFound")
        bobs = network(bob)
        r = port(bob, bobs["id"], fixed_ips=[{"subnet_id": own["id"]}])
        error(r, 404, "SubnetNotFound")  # not "invalid subnet": that would tell it exists
        assert olga.get(f"/subnets/{own['id']}").status_code == 200
        error(olga.delete(f"/subnets/{own['id']}"), 403, "PolicyNotAuthorized")

    with api(srv) as admin, api(srv, "bob") as bob:
        shared = network(admin, shared=True)
        common = subnet(admin, shared["id"], "10.102.0.0/24")
        assert bob.get(f"/subnets/{common['id']}").status_code == 200
        assert common["id"] in {s["id"] for s in bob.get("/subnets").json()["subnets"]}
        r = bob.put(f"/subnets/{common['id']}", json={"subnet": {"name": "mine"}})
        error(r, 403, "PolicyNotAuthorized")
        body = {"network_id": shared["id"], "ip_version": 4, "cidr": "10.103.0.0/24"}
        error(bob.post("/subnets", json={"subnet": body}), 403, "PolicyNotAuthorized")
        chosen = port(bob, shared["id"], fixed_ips=[{"ip_address": "10.102.0.9"}])
        error(chosen, 403, "PolicyNotAuthorized")
        r = port(bob, shared["id"], fixed_ips=[{"subnet_id": common["id"]}])
        assert r.status_code == 201, r.text


# --- the real clients -------------------------------------------------------------------


def cli(server: Server, *args: str) -> Any:
    r = openstack_cli(server.url + "/network", *args, auth=("admin", PASSWORDS["admin"]))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "json" in args else r.stdout


def test_openstack_cli_subnets_and_fixed_ips(srv: Server) -> None:
    net = cli(srv, "network", "create", "cli-subnet-net", "-f", "json")
    made = cli(
        srv,
        "subnet",
        "create",
        "--network",
        net["id"],
        "--subnet-range",
        "10.110.0.0/24",
        "--dns-nameserver",
        "10.110.0.53",
        "cli-subnet",
        "-f",
        "json",
    )
    assert made["cidr"] == "10.110.0.0/24" and made["gateway_ip"] == "10.110.0.1"
    listed = cli(srv, "subnet", "list", "--network", net["id"], "-f", "json")
    assert [s["ID"] for s in listed] == [made["id"]]
    p = cli(
        srv,
        "port",
        "create",
        "--network",
        net["id"],
        "--fixed-ip",
        f"subnet={made['id']},ip-address=10.110.0.42",
        "cli-fixed-port",
        "-f",
        "json",
    )
    assert "10.110.0.42" in json.dumps(p["fixed_ips"])
    found = cli(srv, "port", "list", "--fixed-ip", "ip-address=10.110.0.42", "-f", "json")
    assert [q["ID"] for q in found] == [p["id"]]
    found = cli(srv, "port", "list", "--fixed-ip", f"subnet={made['id']}", "-f", "json")
    # The subnet's addresses: this port's and the network's DHCP port's (as Neutron).
    assert sorted(q["ID"] for q in found) == sorted([p["id"], *dhcp_ports(srv, net["id"])])
    cli(srv, "port", "set", "--no-fixed-ip", "--fixed-ip", "ip-address=10.110.0.43", p["id"])
    shown = cli(srv, "port", "show", p["id"], "-f", "json")
    assert "10.110.0.43" in json.dumps(shown["fixed_ips"])
    assert "10.110.0.42" not in json.dumps(shown["fixed_ips"])
    v6 = cli(
        srv,
        "subnet",
        "create",
        "--network",
        net["id"],
        "--ip-version",
        "6",
        "--subnet-range",
        "fd00:110::/64",
        "--ipv6-ra-mode",
        "slaac",
        "--ipv6-address-mode",
        "slaac",
        "cli-v6",
        "-f",
        "json",
    )
    assert v6["ipv6_address_mode"] == "slaac" and v6["ip_version"] == 6
    cli(srv, "subnet", "delete", v6["id"])
    cli(srv, "subnet", "set", "--name", "renamed", made["id"])
    assert cli(srv, "subnet", "show", made["id"], "-f", "json")["name"] == "renamed"
    r = openstack_cli(
        srv.url + "/network", "subnet", "delete", made["id"], auth=("admin", PASSWORDS["admin"])
    )
    assert r.returncode != 0  # the port holds an address
    cli(srv, "port", "delete", p["id"])
    cli(srv, "subnet", "delete", made["id"])


def test_openstacksdk_subnets_and_fixed_ips(srv: Server) -> None:
    conn = openstack.connect(
        auth_type="http_basic",
        username="admin",
        password=PASSWORDS["admin"],
        network_endpoint_override=srv.url + "/network",
        load_yaml_config=False,
        load_envvars=False,
    )
    net = conn.network.create_network(name="sdk-subnet-net")
    sub = conn.network.create_subnet(
        network_id=net.id, ip_version=6, cidr="fd00:120::/64", ipv6_address_mode="dhcpv6-stateful"
    )
    assert sub.ipv6_address_mode == "dhcpv6-stateful" and sub.gateway_ip == "fd00:120::1"
    p = conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "fd00:120::99"}])
    assert p.fixed_ips == [{"subnet_id": sub.id, "ip_address": "fd00:120::99"}]
    found = list(conn.network.ports(fixed_ips="ip_address=fd00:120::99"))
    assert [q.id for q in found] == [p.id]
    assert [s.id for s in conn.network.subnets(network_id=net.id)] == [sub.id]
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.delete_subnet(sub)
    conn.network.delete_port(p)
    conn.network.delete_subnet(sub)
    assert conn.network.find_subnet(sub.id) is None


def dhcp_ports(srv: Server, network_id: str) -> list[str]:
    """The ids of the network's DHCP ports (made by the service with a DHCP subnet)."""
    with api(srv) as c:
        r = c.get("/ports", params={"network_id": network_id, "device_owner": "network:dhcp"})
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["ports"]]
