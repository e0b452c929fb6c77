"""The real OpenStack clients against a running `metalnic serve` with http_basic auth."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import openstack
import openstack.exceptions
import pytest

from tests.conftest import PASSWORDS
from tests.integration.helpers import random_mac
from tests.support import Server, openstack_cli


def sdk(server: Server, user: str) -> openstack.connection.Connection:
    return openstack.connect(
        auth_type="http_basic",
        username=user,
        password=PASSWORDS[user],
        baremetal_endpoint_override=server.url,
        load_yaml_config=False,
        load_envvars=False,
    )


def cli(server: Server, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return openstack_cli(server.url, *args, auth=(user, PASSWORDS[user]))


def test_openstacksdk_creates_smartnic_port(basic_server: Server) -> None:
    conn = sdk(basic_server, "admin")
    node = conn.baremetal.create_node(driver="fake-hardware", name="sdk-node")
    assert node.provision_state == "enroll"
    port = conn.baremetal.create_port(
        node_id=node.id,
        address=random_mac(),
        is_smartnic=True,
        local_link_connection={"hostname": "nic-sdk", "port_id": "pf0hpf"},
    )
    assert port.is_smartnic is True
    fetched = conn.baremetal.get_port(port.id)
    assert fetched.local_link_connection == {"hostname": "nic-sdk", "port_id": "pf0hpf"}
    ports = list(conn.baremetal.ports(node=node.id, details=True))
    assert [p.id for p in ports] == [port.id]
    assert ports[0].is_smartnic is True
    nodes = {n.id for n in conn.baremetal.nodes(limit=1)}  # paginates through next links
    assert node.id in nodes
    updated = conn.baremetal.update_node(node, extra={"rack": "r1"})
    assert updated.extra == {"rack": "r1"}


def test_openstacksdk_observer_write_refused(basic_server: Server) -> None:
    admin = sdk(basic_server, "admin")
    node = admin.baremetal.create_node(driver="fake-hardware")
    olga = sdk(basic_server, "olga")
    assert olga.baremetal.get_node(node.id).id == node.id
    with pytest.raises(openstack.exceptions.ForbiddenException) as err:
        olga.baremetal.create_port(node_id=node.id, address=random_mac())
    assert "olga" in str(err.value)
    assert list(admin.baremetal.ports(node=node.id)) == []


def test_openstacksdk_shows_ironic_error_message(basic_server: Server) -> None:
    conn = sdk(basic_server, "admin")
    node = conn.baremetal.create_node(driver="fake-hardware")
    with pytest.raises(openstack.exceptions.BadRequestException) as err:
        conn.baremetal.create_port(
            node_id=node.id,
            address=random_mac(),
            is_smartnic=True,
            local_link_connection={"hostname": "nic-1"},
        )
    assert "port_id" in str(err.value)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_openstack_cli_port_create_is_smartnic(basic_server: Server) -> None:
    node = _json(
        cli(
            basic_server,
            "admin",
            "baremetal",
            "node",
            "create",
            "--driver",
            "fake-hardware",
            "--name",
            "cli-node",
            "-f",
            "json",
        )
    )
    mac = random_mac()
    port = _json(
        cli(
            basic_server,
            "admin",
            "baremetal",
            "port",
            "create",
            mac,
            "--node",
            node["uuid"],
            "--is-smartnic",
            "--local-link-connection",
            "hostname=nic-cli",
            "--local-link-connection",
            "port_id=pf0hpf",
            "-f",
            "json",
        )
    )
    assert port["is_smartnic"] is True
    assert port["local_link_connection"] == {"hostname": "nic-cli", "port_id": "pf0hpf"}
    listed = _json(
        cli(
            basic_server,
            "olga",
            "baremetal",
            "port",
            "list",
            "--node",
            node["uuid"],
            "--long",
            "-f",
            "json",
        )
    )
    assert [p["address"] for p in listed] == [mac]
    assert listed[0]["is_smartnic"] is True
    refused = cli(basic_server, "olga", "baremetal", "port", "delete", port["uuid"])
    assert refused.returncode != 0
    assert "olga" in refused.stderr
    plain = _json(
        cli(
            basic_server,
            "admin",
            "baremetal",
            "port",
            "create",
            random_mac(),
            "--node",
            node["uuid"],
            "-f",
            "json",
        )
    )
    assert plain["is_smartnic"] is False
    # `port set --is-smartnic` sends the string "True"; without hostname/port_id it is refused.
    bad = cli(basic_server, "admin", "baremetal", "port", "set", plain["uuid"], "--is-smartnic")
    assert bad.returncode != 0
    assert "hostname" in bad.stderr
    ok = cli(
        basic_server,
        "admin",
        "baremetal",
        "port",
        "set",
        plain["uuid"],
        "--is-smartnic",
        "--local-link-connection",
        "hostname=nic-cli",
        "--local-link-connection",
        "port_id=pf1hpf",
    )
    assert ok.returncode == 0, ok.stderr
    shown = _json(
        cli(basic_server, "admin", "baremetal", "port", "show", plain["uuid"], "-f", "json")
    )
    assert shown["is_smartnic"] is True


def test_openstack_cli_wrong_password(basic_server: Server) -> None:
    r = openstack_cli(basic_server.url, "baremetal", "node", "list", auth=("admin", "wrong"))
    assert r.returncode != 0
    assert "401" in r.stderr or "authentication" in r.stderr.lower()
