"""Neutron's ``tag-creation`` (``POST …/tags``), its per-resource tag limit, and the
``ip-substring-filtering`` port filter, over real HTTP, the openstack CLI and
openstacksdk (the server of ``test_network_portattrs.py``)."""

from __future__ import annotations

import openstack
import pytest

from tests.conftest import PASSWORDS
from tests.integration.test_network_portattrs import (
    KINDS,
    api,
    error,
    make,
    os_cli,
    pa_server,
    show,
)
from tests.support import Server

__all__ = ["pa_server"]  # the fixture, shared with test_network_portattrs.py


@pytest.mark.parametrize("kind", KINDS)
def test_post_tags_adds_them_as_neutron_does(pa_server: Server, kind: str) -> None:
    with api(pa_server) as c:
        made = make(c, kind)
        base = f"/{kind}/{made['id']}/tags"
        rev = show(c, kind, made["id"])["revision_number"]
        assert c.put(base + "/old").status_code == 201
        # 200 with the body as given; the tags it names are added, the others stay.
        r = c.post(base, json={"tags": ["red", "blue", "old"]})
        assert r.status_code == 200, r.text
        assert r.json() == {"tags": ["red", "blue", "old"]}
        shown = show(c, kind, made["id"])
        assert shown["tags"] == ["blue", "old", "red"]
        assert shown["revision_number"] == rev + 2
        again = c.post(base, json={"tags": ["red"]})  # idempotent: nothing changes
        assert again.status_code == 200 and again.json() == {"tags": ["red"]}
        assert show(c, kind, made["id"])["revision_number"] == rev + 2
        for bad in ({"tags": ["a", "a"]}, {"tags": ["z" * 256]}, {"tags": "a"}, {}):
            error(c.post(base, json=bad), 400)
        assert error(c.post(f"/{kind}/{'0' * 32}/tags", json={"tags": ["x"]}), 404)
        assert c.get(base).json() == {"tags": ["blue", "old", "red"]}


def test_post_tags_needs_the_right_to_change_the_resource(pa_server: Server) -> None:
    with api(pa_server, "alice") as alice, api(pa_server, "bob") as bob:
        net = make(alice, "networks")
        base = f"/networks/{net['id']}/tags"
        assert error(bob.post(base, json={"tags": ["theirs"]}), 404)["type"] == "NetworkNotFound"
        with api(pa_server, "olga") as olga:  # an observer
            error(olga.post(base, json={"tags": ["o"]}), 403)
        assert alice.get(base).json() == {"tags": []}


def test_the_per_resource_limit_of_50_tags(pa_server: Server) -> None:
    """Neutron checks the tags a PUT or POST names, and a resource's tags plus the one
    ``PUT …/tags/{tag}`` adds: more than 50 is a 400 BadRequest."""
    with api(pa_server) as c:
        net = make(c, "networks")
        base = f"/networks/{net['id']}/tags"
        fifty = [f"t{i}" for i in range(50)]
        for method in (c.put, c.post):
            body = error(method(base, json={"tags": [*fifty, "one-more"]}), 400)
            assert body["type"] == "BadRequest"
            assert body["message"] == (
                "Bad networks request: The number of tags exceed the per-resource limit of 50."
            )
        assert c.put(base, json={"tags": fifty}).status_code == 200
        assert c.put(base + "/t0").status_code == 201  # already there: still 50
        assert error(c.put(base + "/t50"), 400)["type"] == "BadRequest"
        assert len(c.get(base).json()["tags"]) == 50


def test_tags_in_create_bodies_as_neutron(pa_server: Server) -> None:
    """Neutron takes ``tags`` in a create body for ports only
    (``tag-ports-during-bulk-creation``); elsewhere it is not an attribute of a POST."""
    with api(pa_server) as c:
        port = make(c, "ports", tags=["b", "a"])
        assert port["tags"] == ["a", "b"]
        r = c.post("/networks", json={"network": {"name": "x", "tags": ["a"]}})
        assert error(r, 400)["type"] in ("HTTPBadRequest", "InvalidInput", "BadRequest")


def _port_with(c: object, net: str, subnet: str, ip: str) -> str:
    from httpx import Client

    assert isinstance(c, Client)
    r = c.post(
        "/ports",
        json={"port": {"network_id": net, "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}]}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["port"]["id"])


def test_ip_substring_filter_over_http_cli_and_sdk(pa_server: Server) -> None:
    with api(pa_server) as c:
        aliases = {e["alias"] for e in c.get("/extensions").json()["extensions"]}
        assert {"ip-substring-filtering", "tag-creation"} <= aliases
        net = make(c, "networks")
        # The network's DHCP port takes a random address in the pool: one without "17"
        # in it, so that it cannot match the substrings below.
        v4 = make(
            c,
            "subnets",
            network_id=net["id"],
            cidr="10.66.0.0/24",
            allocation_pools=[{"start": "10.66.0.180", "end": "10.66.0.199"}],
        )
        v6 = make(
            c, "subnets", network_id=net["id"], ip_version=6, cidr="fd66::/64", enable_dhcp=False
        )
        a = _port_with(c, net["id"], v4["id"], "10.66.0.17")
        b = _port_with(c, net["id"], v4["id"], "10.66.0.170")
        d = _port_with(c, net["id"], v6["id"], "fd66::17")

        def listed(*specs: str) -> set[str]:
            r = c.get("/ports", params={"network_id": net["id"], "fixed_ips": list(specs)})
            assert r.status_code == 200, r.text
            return {p["id"] for p in r.json()["ports"]}

        assert listed("ip_address_substr=.17") == {a, b}
        assert listed("ip_address_substr=17") == {a, b, d}
        assert listed("ip_address_substr=.170", "ip_address_substr=::") == {b, d}  # any of
        assert listed("ip_address_substr=17", "subnet_id=" + v6["id"]) == {d}  # and the others
        assert listed("ip_address_substr=17", "ip_address=10.66.0.17") == {a}
        assert listed("ip_address_substr=10.99") == set()
        error(c.get("/ports", params={"fixed_ips": "ip_substr=1"}), 400)

    cli = os_cli(
        pa_server,
        "alice",
        "port",
        "list",
        "--network",
        net["id"],
        "--fixed-ip",
        "ip-substring=.17",
        "-f",
        "json",
    )
    assert {p["ID"] for p in cli} == {a, b}
    conn = openstack.connect(
        auth_type="http_basic",
        username="alice",
        password=PASSWORDS["alice"],
        network_endpoint_override=pa_server.url + "/network",
        load_yaml_config=False,
        load_envvars=False,
    )
    found = conn.network.ports(network_id=net["id"], fixed_ips="ip_address_substr=::17")
    assert {p.id for p in found} == {d}
