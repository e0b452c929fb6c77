"""The network service's input is the request models: one check for every caller.

HTTP bodies are validated by the request models of ``network/inputs.py`` before a route runs; the
embedded client (the bare-metal side, in process) builds the same models with
``Model.parse``, so what it sends is checked by the same rules and refused with
the API's own message (InvalidInput's, which the client hands on as the seam's
NetworkClientError), never a pydantic exception, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.baremetal.drivers.network.client import (
    Binding,
    BindingProfile,
    NetworkClientError,
    NewPort,
)
from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.embedded_network import CONDUCTOR, EmbeddedNetworkClient
from metalnic.errors import InvalidInput
from metalnic.network.inputs import NetworkCreate, PortCreate
from metalnic.network.service import NetworkService
from metalnic.settings import Settings

LINK: BindingProfile = {"local_link_information": [{"hostname": "nic1", "port_id": "p0"}]}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[NetworkService]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db.engine)
    try:
        yield NetworkService(Settings(), db)
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nic_host", "n" * 256),  # longer than any host name
        ("nic_host", "nic\x001"),  # NUL
        ("device_id", "\ud800"),  # a lone surrogate cannot be stored everywhere
        ("mac", "m" * 65),
        ("profile", {"local_link_information": "not a list"}),
        ("profile", {"local_link_information": [{"hostname": 7, "port_id": "p0"}]}),
    ],
)
def test_embedded_client_input_is_refused_as_the_api_refuses_it(
    service: NetworkService, field: str, value: object
) -> None:
    net = service.networks.create(CONDUCTOR, NetworkCreate(name="prov"))
    args: dict[str, object] = {
        "mac": "52:54:00:00:00:0a",
        "nic_host": "nic1",
        "profile": LINK,
        "device_id": "n1",
    }
    args[field] = value
    client = EmbeddedNetworkClient(service)
    with pytest.raises(NetworkClientError, match="Invalid input for "):
        client.plug(NewPort(net["id"], "p"), Binding(**args), timeout=0)  # type: ignore[arg-type]
    assert service.ports.list(CONDUCTOR, {}) == []


def test_parse_names_the_attribute_and_never_echoes_the_value() -> None:
    secret = "s3cr3t-" + "x" * 300
    with pytest.raises(InvalidInput) as caught:
        PortCreate.parse({"network_id": "n", "name": secret}, ("port",))
    assert "port.name" in str(caught.value) or "name" in str(caught.value)
    assert secret not in str(caught.value)


def test_a_valid_port_from_the_embedded_client_is_stored(service: NetworkService) -> None:
    net = service.networks.create(CONDUCTOR, NetworkCreate(name="prov"))
    client = EmbeddedNetworkClient(service)
    made = client.plug(
        NewPort(net["id"], "p"), Binding("nic1", "52:54:00:00:00:0a", "n1", LINK), timeout=0
    )
    stored = service.ports.list(CONDUCTOR, {})
    assert [p["id"] for p in stored] == [made.port_id]
    assert stored[0]["binding:profile"] == LINK
