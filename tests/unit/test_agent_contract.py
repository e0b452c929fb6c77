"""The agent contract: its documentation matches the models, its version is checked,
and the wire format is the one agents already speak."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from metalnic.contract import agent as ac
from metalnic.contract import doc


def _documented() -> dict[str, list[str]]:
    """Model name → the fields its table in docs/network.md lists."""
    text = doc.DOC.read_text()
    section = text.split(doc.BEGIN, 1)[1].split(doc.END, 1)[0]
    out: dict[str, list[str]] = {}
    current = ""
    for line in section.splitlines():
        heading = re.match(r"#### (\w+)$", line)
        if heading:
            current = heading.group(1)
            out[current] = []
        field = re.match(r"\| `(\w+)` \|", line)
        if field and current:
            out[current].append(field.group(1))
    return out


def _nested(model: type[BaseModel]) -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    stack: list[object] = [f.annotation for f in model.model_fields.values()]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            found.add(item)
        stack.extend(typing.get_args(item))
    return found


def test_the_documentation_is_generated_from_the_models() -> None:
    text = doc.DOC.read_text()
    assert doc.current(text) == text, "run: python -m metalnic.contract.doc"


def test_every_field_of_every_model_is_documented_and_nothing_else() -> None:
    documented = _documented()
    assert set(documented) == {m.__name__ for m in ac.MODELS}
    for model in ac.MODELS:
        assert documented[model.__name__] == list(model.model_fields), model.__name__
        assert all(f.description for f in model.model_fields.values()), model.__name__


def test_every_model_the_contract_uses_is_in_it() -> None:
    for model in ac.MODELS:
        assert _nested(model) <= set(ac.MODELS), model.__name__


def test_version_mismatch_is_named_and_absent_means_version_one() -> None:
    assert ac.version_mismatch(None, "server", "agent") is None
    assert ac.version_mismatch(str(ac.CONTRACT_VERSION), "server", "agent") is None
    message = ac.version_mismatch("99", "server", "agent")
    assert message is not None
    assert f"this server speaks version {ac.CONTRACT_VERSION}" in message
    assert "the agent version 99" in message
    assert "\x00" not in str(ac.version_mismatch("9\x00" * 50, "agent", "server"))


def test_desired_state_as_servers_send_it_reads_and_writes_back_unchanged() -> None:
    wire = {
        "host": "nic-1",
        "revision": 7,
        "applied": 6,
        "ports": [
            {
                "id": "p1",
                "mac_address": "52:54:00:00:00:01",
                "admin_state_up": True,
                "device_id": "node-1",
                "network_id": "n1",
                "network_type": "vlan",
                "physical_network": "physnet1",
                "segmentation_id": 100,
                "local_link_information": [
                    {"port_id": "pfb0", "hostname": "nic-1", "switch_info": "x"}
                ],
                "local_group_information": None,
                "port_security_enabled": True,
                "security_groups": ["sg"],
                "status": "DOWN",
            }
        ],
        "security_groups": {
            "sg": [
                {
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": "tcp",
                    "port_range_min": 22,
                    "port_range_max": 22,
                    "remote_ip_prefix": None,
                    "remote_group_id": None,
                }
            ]
        },
        "members": {"sg": ["52:54:00:00:00:01"]},
        "verify": [{"id": "v1", "ports": ["p1"]}],
    }
    state = ac.DesiredState.model_validate(wire)
    assert state.ports[0].members() == ["pfb0"]
    assert state.model_dump(exclude_unset=True) == wire
    # Fields a newer server adds are ignored, not refused.
    assert ac.DesiredState.model_validate({**wire, "later": 1}).revision == 7


def test_heartbeat_claims_the_agent_host_when_it_names_no_nic_host() -> None:
    assert ac.Heartbeat(host="a").nic_hosts() == ["a"]
    configured = ac.AgentConfigurations(nic_hosts=["n1", "n2"])
    assert ac.Heartbeat(host="a", configurations=configured).nic_hosts() == ["n1", "n2"]


def test_each_plain_data_shape_has_exactly_its_models_fields_in_order() -> None:
    """The server builds the desired state as TypedDicts (fast); each must name every
    field of its model, nothing else, in the model's order (the order agents see)."""
    paired = {data.__name__ for data, _ in ac.PLAIN_DATA}
    shapes = {
        name
        for name, value in vars(ac).items()
        if isinstance(value, type) and typing.is_typeddict(value)
    }
    assert shapes == paired
    for data, model in ac.PLAIN_DATA:
        assert list(data.__annotations__) == list(model.model_fields), data.__name__
        assert data.__required_keys__ == frozenset(model.model_fields), data.__name__
