"""/v1/conductors (1.49) through real HTTP, the openstack client and openstacksdk."""

from __future__ import annotations

import json

from tests.conftest import PASSWORDS
from tests.integration.helpers import fault
from tests.integration.test_openstack_clients import cli, sdk
from tests.support import Server


def test_the_running_conductor_is_listed_alive_with_its_drivers(basic_server: Server) -> None:
    with basic_server.client(version="1.49") as c:
        listed = c.get("/v1/conductors").json()["conductors"]
        assert len(listed) == 1 and set(listed[0]) == {
            "hostname", "conductor_group", "alive", "links"
        }  # fmt: skip
        me = listed[0]["hostname"]
        shown = c.get(f"/v1/conductors/{me}").json()
        assert shown["alive"] is True and shown["conductor_group"] == ""
        assert "fake-hardware" in shown["drivers"] and "redfish" in shown["drivers"]
        assert shown["links"][0]["href"].endswith(f"/v1/conductors/{me}")
        detail = c.get("/v1/conductors", params={"detail": "true"}).json()["conductors"]
        assert detail[0]["drivers"] == shown["drivers"]
        assert c.get("/v1/conductors", params={"fields": "hostname"}).json() == {
            "conductors": [{"hostname": me}]
        }
        r = c.get("/v1/conductors", params={"fields": "hostname,nope"})
        assert r.status_code == 400 and "nope" in fault(r)
        assert c.get("/v1/conductors", params={"limit": 1}).json()["conductors"][0]["alive"]
        assert c.get("/v1/conductors", params={"marker": me}).json() == {"conductors": []}
        assert c.get("/v1/conductors", params={"marker": "gone"}).status_code == 404
        r = c.get("/v1/conductors/no-such-conductor")
        assert r.status_code == 404 and "no-such-conductor" in fault(r)
    with basic_server.client(version="1.48") as old:
        assert old.get("/v1/conductors").status_code == 404
    listed_cli = cli(basic_server, "admin", "baremetal", "conductor", "list", "-f", "json")
    assert listed_cli.returncode == 0, listed_cli.stderr
    assert [row["hostname"] for row in json.loads(listed_cli.stdout)] == [me]
    conn = sdk(basic_server, "olga")  # an observer reads infrastructure
    assert [x.hostname for x in conn.baremetal.conductors()] == [me]


def test_conductors_are_for_admins_and_observers(basic_server: Server) -> None:
    for user, status in (("admin", 200), ("olga", 200), ("alice", 403), ("bob", 403)):
        with basic_server.client(version="1.49", auth=(user, PASSWORDS[user])) as c:
            assert c.get("/v1/conductors").status_code == status, user
