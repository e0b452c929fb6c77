"""Version discovery and microversion negotiation, as the OpenStack clients expect."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support import Server


def test_root_document_is_ironic_shaped(server: Server) -> None:
    body = httpx.get(server.url + "/").json()
    default = body["default_version"]
    assert default["id"] == "v1"
    assert default["min_version"] == "1.1"
    assert tuple(map(int, default["version"].split("."))) >= (1, 53)
    assert default["links"][0]["href"] == server.url + "/v1/"
    assert body["versions"] == [default]


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_v1_document_lists_resources(server: Server, path: str) -> None:
    r = httpx.get(server.url + path)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "v1"
    assert {"nodes", "ports", "drivers"} <= body.keys()
    assert r.headers["X-OpenStack-Ironic-API-Maximum-Version"] == body["version"]["version"]


def test_no_header_gets_minimum_version(server: Server) -> None:
    r = httpx.get(server.url + "/v1/nodes")
    assert r.status_code == 200
    assert r.headers["X-OpenStack-Ironic-API-Version"] == "1.1"


def test_latest_gets_maximum_version(server: Server) -> None:
    with server.client("latest") as c:
        r = c.get("/v1/nodes")
    assert (
        r.headers["X-OpenStack-Ironic-API-Version"]
        == r.headers["X-OpenStack-Ironic-API-Maximum-Version"]
    )


@pytest.mark.parametrize("version", ["1.999", "2.0", "1.0"])
def test_out_of_range_version_is_406_with_range_headers(server: Server, version: str) -> None:
    with server.client(version) as c:
        r = c.get("/v1/nodes")
    assert r.status_code == 406
    assert r.headers["X-OpenStack-Ironic-API-Minimum-Version"] == "1.1"
    assert r.headers["X-OpenStack-Ironic-API-Maximum-Version"] == "1.53"
    fault = json.loads(r.json()["error_message"])
    assert fault["faultcode"] == "Client"
    assert "[1.1, 1.53]" in fault["faultstring"]


def test_malformed_version_is_400(server: Server) -> None:
    with server.client("one.five") as c:
        r = c.get("/v1/nodes")
    assert r.status_code == 400
    assert "X-OpenStack-Ironic-API-Version" in json.loads(r.json()["error_message"])["faultstring"]


def test_drivers_lists_hardware_types(server: Server) -> None:
    with server.client() as c:
        drivers = c.get("/v1/drivers").json()["drivers"]
        assert sorted(d["name"] for d in drivers) == ["fake-hardware", "ipmi", "redfish"]
        detail = c.get("/v1/drivers/fake-hardware").json()
        assert detail["default_power_interface"] == "fake"
        assert "smartnic" in detail["enabled_network_interfaces"]
        redfish = c.get("/v1/drivers/redfish").json()
        assert redfish["enabled_power_interfaces"] == ["redfish"]
        assert "direct" in redfish["enabled_deploy_interfaces"]
        props = c.get("/v1/drivers/redfish/properties").json()
        assert "redfish_address" in props
        missing = c.get("/v1/drivers/idrac")
    assert missing.status_code == 404
    assert "idrac" in json.loads(missing.json()["error_message"])["faultstring"]


def test_unknown_route_is_ironic_error(server: Server) -> None:
    r = httpx.get(server.url + "/v1/chassis-does-not-exist")
    assert r.status_code == 404
    assert json.loads(r.json()["error_message"])["faultstring"]
