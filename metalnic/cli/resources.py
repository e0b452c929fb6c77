"""``metalnic node …`` and ``metalnic port …``: the bare-metal API from the shell
(the provisioning verbs and ``--wait``: ``metalnic.cli.provision``)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalnic.cli import provision
from metalnic.cli.output import emit
from metalnic.jsonpatch import PatchOp
from metalnic.jsontypes import JSONObject, JSONValue

if TYPE_CHECKING:
    from metalnic.cli.client import BaremetalClient

NODE_COLUMNS = ["uuid", "name", "power_state", "provision_state", "maintenance"]
PORT_COLUMNS = ["uuid", "address"]
PORT_DETAIL_COLUMNS = ["uuid", "address", "node_uuid", "is_smartnic", "local_link_connection"]


def key_values(pairs: list[str] | None, option: str) -> JSONObject:
    """``key=value`` pairs; a value ``@path`` is read from that file (PEM, keys)."""
    result: JSONObject = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: {option} expects key=value, got {pair!r}")
        if value.startswith("@"):
            value = Path(value[1:]).read_text()
        result[key] = value
    return result


def _patch_ops(values: Mapping[str, JSONValue], nested: Mapping[str, JSONObject]) -> list[PatchOp]:
    ops: list[PatchOp] = [
        {"op": "add", "path": f"/{k}", "value": v} for k, v in values.items() if v is not None
    ]
    for field, pairs in nested.items():
        ops += [{"op": "add", "path": f"/{field}/{k}", "value": v} for k, v in pairs.items()]
    return ops


def add_parsers(sub: Any) -> None:
    node = sub.add_parser("node", help="bare-metal nodes").add_subparsers(
        dest="action", required=True
    )
    p = node.add_parser("list", help="list nodes")
    p.add_argument("--detail", action="store_true")
    p.add_argument("--provision-state")
    p.add_argument("--owner")
    p.set_defaults(func=node_list)
    p = node.add_parser("show", help="show a node")
    p.add_argument("node")
    p.set_defaults(func=node_show)
    p = node.add_parser("create", help="enroll a node")
    p.add_argument("--driver", required=True)
    p.add_argument("--name")
    p.add_argument("--uuid")
    p.add_argument("--owner")
    p.add_argument("--description")
    p.add_argument("--resource-class")
    p.add_argument("--network-interface")
    p.add_argument("--driver-info", action="append", metavar="KEY=VALUE")
    p.add_argument("--property", action="append", metavar="KEY=VALUE")
    p.add_argument("--extra", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=node_create)
    p = node.add_parser("set", help="change a node")
    p.add_argument("node")
    p.add_argument("--name")
    p.add_argument("--owner")
    p.add_argument("--description")
    p.add_argument("--resource-class")
    p.add_argument("--network-interface")
    p.add_argument("--driver")
    p.add_argument("--driver-info", action="append", metavar="KEY=VALUE")
    p.add_argument("--property", action="append", metavar="KEY=VALUE")
    p.add_argument("--extra", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=node_set)
    p = node.add_parser("maintenance", help="put a node into or out of maintenance")
    p.add_argument("node")
    p.add_argument("state", choices=["on", "off"])
    p.add_argument("--reason")
    p.set_defaults(func=node_maintenance)
    p = node.add_parser("delete", help="delete nodes")
    p.add_argument("nodes", nargs="+")
    p.set_defaults(func=node_delete)
    provision.add_parsers(node)

    port = sub.add_parser("port", help="bare-metal ports").add_subparsers(
        dest="action", required=True
    )
    p = port.add_parser("list", help="list ports")
    p.add_argument("--node")
    p.add_argument("--address")
    p.add_argument("--detail", action="store_true")
    p.set_defaults(func=port_list)
    p = port.add_parser("show", help="show a port")
    p.add_argument("port")
    p.set_defaults(func=port_show)
    p = port.add_parser("create", help="create a port")
    p.add_argument("address")
    p.add_argument("--node", required=True, help="node UUID or name")
    _port_options(p)
    p.set_defaults(func=port_create)
    p = port.add_parser("set", help="change a port")
    p.add_argument("port")
    p.add_argument("--address")
    p.add_argument("--node", help="move the port to this node")
    _port_options(p)
    p.set_defaults(func=port_set)
    p = port.add_parser("delete", help="delete ports")
    p.add_argument("ports", nargs="+")
    p.set_defaults(func=port_delete)


def _port_options(p: argparse.ArgumentParser) -> None:
    smart = p.add_mutually_exclusive_group()
    smart.add_argument("--is-smartnic", dest="is_smartnic", action="store_true", default=None)
    smart.add_argument("--no-smartnic", dest="is_smartnic", action="store_false")
    p.add_argument(
        "--local-link-connection",
        action="append",
        metavar="KEY=VALUE",
        help="e.g. hostname=nic-1, port_id=pf0hpf; a value @FILE is read from FILE",
    )
    p.add_argument("--pxe-enabled", choices=["true", "false"])
    p.add_argument("--physical-network")
    p.add_argument("--extra", action="append", metavar="KEY=VALUE")


def node_list(c: BaremetalClient, a: argparse.Namespace) -> None:
    params = {"detail": "true"} if a.detail else {}
    if a.provision_state:
        params["provision_state"] = a.provision_state
    if a.owner:
        params["owner"] = a.owner
    items = c.list_all("/v1/nodes", "nodes", params)
    cols = NODE_COLUMNS + (["driver", "owner", "network_interface"] if a.detail else [])
    emit(items, a.format, cols)


def node_show(c: BaremetalClient, a: argparse.Namespace) -> None:
    emit(c.request("GET", f"/v1/nodes/{a.node}"), a.format)


def _node_values(a: argparse.Namespace) -> dict[str, str | None]:
    return {
        "name": a.name,
        "owner": a.owner,
        "description": a.description,
        "resource_class": a.resource_class,
        "network_interface": a.network_interface,
        "driver": a.driver,
    }


def node_create(c: BaremetalClient, a: argparse.Namespace) -> None:
    body: JSONObject = {k: v for k, v in _node_values(a).items() if v is not None}
    if a.uuid:
        body["uuid"] = a.uuid
    for field, pairs, option in (
        ("driver_info", a.driver_info, "--driver-info"),
        ("properties", a.property, "--property"),
        ("extra", a.extra, "--extra"),
    ):
        if pairs:
            body[field] = key_values(pairs, option)
    emit(c.request("POST", "/v1/nodes", json=body), a.format)


def node_set(c: BaremetalClient, a: argparse.Namespace) -> None:
    ops = _patch_ops(
        _node_values(a),
        {
            "driver_info": key_values(a.driver_info, "--driver-info"),
            "properties": key_values(a.property, "--property"),
            "extra": key_values(a.extra, "--extra"),
        },
    )
    if not ops:
        raise SystemExit("error: nothing to change")
    emit(c.request("PATCH", f"/v1/nodes/{a.node}", json=ops), a.format)


def node_maintenance(c: BaremetalClient, a: argparse.Namespace) -> None:
    if a.state == "on":
        body = {"reason": a.reason} if a.reason else None
        c.request("PUT", f"/v1/nodes/{a.node}/maintenance", json=body)
    else:
        c.request("DELETE", f"/v1/nodes/{a.node}/maintenance")
    emit(c.request("GET", f"/v1/nodes/{a.node}"), a.format)


def node_delete(c: BaremetalClient, a: argparse.Namespace) -> None:
    for ident in a.nodes:
        c.request("DELETE", f"/v1/nodes/{ident}")
        print(f"Deleted node {ident}")


def port_list(c: BaremetalClient, a: argparse.Namespace) -> None:
    params = {"detail": "true"} if a.detail else {}
    if a.node:
        params["node"] = a.node
    if a.address:
        params["address"] = a.address
    items = c.list_all("/v1/ports", "ports", params)
    emit(items, a.format, PORT_DETAIL_COLUMNS if a.detail else PORT_COLUMNS)


def port_show(c: BaremetalClient, a: argparse.Namespace) -> None:
    emit(c.request("GET", f"/v1/ports/{a.port}"), a.format)


def _node_uuid(c: BaremetalClient, ident: str) -> str:
    return str(c.request("GET", f"/v1/nodes/{ident}", params={"fields": "uuid"})["uuid"])


def _port_values(a: argparse.Namespace) -> dict[str, bool | str | None]:
    return {
        "is_smartnic": a.is_smartnic,
        "pxe_enabled": None if a.pxe_enabled is None else a.pxe_enabled == "true",
        "physical_network": a.physical_network,
    }


def port_create(c: BaremetalClient, a: argparse.Namespace) -> None:
    body: JSONObject = {k: v for k, v in _port_values(a).items() if v is not None}
    body.update(address=a.address, node_uuid=_node_uuid(c, a.node))
    llc = key_values(a.local_link_connection, "--local-link-connection")
    if llc:
        body["local_link_connection"] = llc
    if a.extra:
        body["extra"] = key_values(a.extra, "--extra")
    emit(c.request("POST", "/v1/ports", json=body), a.format)


def port_set(c: BaremetalClient, a: argparse.Namespace) -> None:
    values = _port_values(a)
    values["address"] = a.address
    if a.node:
        values["node_uuid"] = _node_uuid(c, a.node)
    ops = _patch_ops(
        values,
        {
            "local_link_connection": key_values(a.local_link_connection, "--local-link-connection"),
            "extra": key_values(a.extra, "--extra"),
        },
    )
    if not ops:
        raise SystemExit("error: nothing to change")
    emit(c.request("PATCH", f"/v1/ports/{a.port}", json=ops), a.format)


def port_delete(c: BaremetalClient, a: argparse.Namespace) -> None:
    for ident in a.ports:
        c.request("DELETE", f"/v1/ports/{ident}")
        print(f"Deleted port {ident}")
