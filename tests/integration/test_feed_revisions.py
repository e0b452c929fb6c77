"""Feed revisions and the port list, on SQLite and on PostgreSQL, through the service.

Every change an agent must see bumps its NIC host's feed revision, counted by the
database (``metalnic.network.feed.bump_selected``: one upsert, whatever the number
of hosts).  These tests hold the rules a faster implementation must keep:

- a bump counts once per host and per change, also when transactions race
  (nothing lost, no deadlock between overlapping host sets);
- a new member of a group that remote-group rules watch bumps every member's
  host once, and its own host once, not twice;
- a list renders every port exactly as the port's own view does (the list reads
  plain rows and lets the database format timestamps; the view reads the object).
"""

from __future__ import annotations

import contextlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from metalnic.contract import agent as ac
from metalnic.db.session import Database
from metalnic.embedded_network import CONDUCTOR
from metalnic.network import feed, views
from metalnic.network.inputs import (
    NetworkCreate,
    PortCreate,
    PortUpdate,
    SecurityGroupCreate,
    SubnetCreate,
)
from metalnic.network.models import FeedRevision, NetworkPort
from metalnic.network.service import NetworkService
from metalnic.settings import Settings
from tests import dbfixtures

db, postgres = dbfixtures.db, dbfixtures.postgres  # the fixtures, on SQLite and PostgreSQL


def revisions(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return {h: n for h, n in s.execute(select(FeedRevision.host, FeedRevision.revision))}


def test_a_bump_counts_once_per_host_and_change(db: Database) -> None:
    with db.transaction() as s:
        feed.bump_all(s, {"a", "b"})
    with db.transaction() as s:
        feed.bump_all(s, {"b", "c"})
        assert feed.bump(s, "c") == 2  # the value this transaction wrote, read back
    assert revisions(db) == {"a": 1, "b": 2, "c": 2}


def test_racing_bumps_of_overlapping_hosts_all_count(db: Database) -> None:
    hosts = [f"nic-{i}" for i in range(12)]
    plans = [random.Random(i).sample(hosts, 6) for i in range(40)]
    barrier = threading.Barrier(8)

    def bump(plan: list[str]) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=10)  # eight at a time start together

        def write(s: Any) -> None:
            feed.bump_all(s, set(plan))

        db.retry(write)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bump, plans))
    expected = {h: sum(h in plan for plan in plans) for h in hosts}
    assert revisions(db) == {h: n for h, n in expected.items() if n}


def _service(db: Database) -> tuple[NetworkService, str]:
    """A service with one live smart NIC agent serving nic-0..nic-19: ports bind (a
    NIC host's feed lists bound ports only, and only their changes bump it)."""
    service = NetworkService(Settings(), db)
    nic_hosts = [f"nic-{i}" for i in range(20)]
    heartbeat = {"host": "a0", "configurations": {"nic_hosts": nic_hosts, "smartnic": True}}
    service.agents.heartbeat(CONDUCTOR, ac.Heartbeat.model_validate(heartbeat))
    net = service.networks.create(CONDUCTOR, NetworkCreate(name="feed"))
    return service, net["id"]


def _port(net: str, i: int, **extra: Any) -> PortCreate:
    host = f"nic-{i}"
    body = {
        "network_id": net,
        "name": f"p{i}",
        "binding:vnic_type": "smart-nic",
        "binding:host_id": host,
        "binding:profile": {"local_link_information": [{"hostname": host, "port_id": "pf0hpf"}]},
        **extra,
    }
    return PortCreate.parse(body, ("port",))


def _orm_view(db: Database, port_id: str) -> views.PortView:
    """The view rendered from the ORM object (a create's and an update's answer; a
    show and a list read the rows of ``views.LISTED_PORT``)."""
    with db.transaction() as s:
        return views.port(s.get_one(NetworkPort, port_id))


def test_a_new_member_bumps_every_watching_host_once(db: Database) -> None:
    service, net = _service(db)
    for i in range(5):  # all in the project's default group ("ingress from members")
        service.ports.create(CONDUCTOR, _port(net, i))
    before = revisions(db)
    service.ports.create(CONDUCTOR, _port(net, 5))
    after = revisions(db)
    assert after == {**{h: n + 1 for h, n in before.items()}, "nic-5": 1}
    # A port outside any group changes its own host's feed only.
    service.ports.create(CONDUCTOR, _port(net, 6, port_security_enabled=False))
    assert revisions(db) == {**after, "nic-6": 1}


def test_racing_members_of_one_group_all_land(db: Database) -> None:
    """Concurrent creates in one group each bump all members' hosts (overlapping
    sets, in one lock order): none may fail or be lost."""
    service, net = _service(db)
    service.ports.create(CONDUCTOR, _port(net, 0))  # makes the default group
    with ThreadPoolExecutor(8) as pool:
        made = list(
            pool.map(lambda i: service.ports.create(CONDUCTOR, _port(net, i)), range(1, 17))
        )
    assert len({p["id"] for p in made}) == 16
    assert set(revisions(db)) == {f"nic-{i}" for i in range(17)}
    before = revisions(db)
    service.ports.create(CONDUCTOR, _port(net, 17))
    assert revisions(db) == {**{h: n + 1 for h, n in before.items()}, "nic-17": 1}


PROFILES: list[dict[str, Any]] = [
    {},
    {"local_link_information": [{"hostname": "nic-1", "port_id": "pf0hpf"}]},
    {"local_link_information": [{"hostname": "nic-1", "port_id": "pf0hpf"}], "password": "x"},
    {"note": "https://user:pw@example.com/x", "nested": [{"api_key": "k"}]},
    {"note": "Bearer abcdefghijkl", "n": 1, "f": 1.5, "t": True, "z": None},
    {"naïve": "café", "escaped": "\u212a", "to\u212aen": "x"},
]


@pytest.mark.parametrize("profile", PROFILES, ids=range(len(PROFILES)))
def test_a_listed_port_is_shown_as_its_own_view(db: Database, profile: dict[str, Any]) -> None:
    service, net = _service(db)
    made = service.ports.create(
        CONDUCTOR, _port(net, 1, **{"binding:profile": profile, "name": "listed"})
    )
    service.ports.create(CONDUCTOR, _port(net, 99))  # one with a reason (no agent serves it)
    groups = [service.secgroups.create(CONDUCTOR, SecurityGroupCreate(name=n)) for n in "gh"]
    service.ports.create(  # one in two groups (both views order them by id)
        CONDUCTOR, _port(net, 3, security_groups=[g["id"] for g in reversed(groups)])
    )
    listed = service.ports.list(CONDUCTOR, {"network_id": net})
    assert len(listed) == 3
    assert sorted(len(p["security_groups"]) for p in listed) == [1, 1, 2]
    for shown in listed:
        assert shown == service.ports.show(CONDUCTOR, shown["id"]) == _orm_view(db, shown["id"])
    (first,) = [p for p in listed if p["id"] == made["id"]]
    assert first == made
    assert "x" not in str(first["binding:profile"].get("password", ""))
    assert first["created_at"] and first["created_at"].endswith("Z")


def test_a_listed_port_with_tags_pairs_and_options_is_its_own_view(db: Database) -> None:
    """Tags are aggregated in the list's query (a JSON list: json_group_array on SQLite,
    json_agg on PostgreSQL), pairs and options read as stored text: the same as a view."""
    service, net = _service(db)
    made = service.ports.create(
        CONDUCTOR,
        _port(
            net,
            1,
            tags=["zeta", "a,comma", "ünï", 'quo"te'],
            allowed_address_pairs=[{"ip_address": "10.0.0.0/24"}, {"ip_address": "fe80::1"}],
            extra_dhcp_opts=[
                {"opt_name": "tag:ipxe,67", "opt_value": "http://192.0.2.1/boot.ipxe"},
                {"opt_name": "59", "opt_value": "tftp://[2001:db8::1]/x.efi", "ip_version": 6},
            ],
        ),
    )
    service.ports.create(CONDUCTOR, _port(net, 2))
    service.tags.add(CONDUCTOR, "ports", made["id"], "late")
    listed = service.ports.list(CONDUCTOR, {"network_id": net})
    assert [p["tags"] for p in listed] == [sorted(["zeta", "a,comma", "ünï", 'quo"te', "late"]), []]
    for shown in listed:
        assert shown == service.ports.show(CONDUCTOR, shown["id"]) == _orm_view(db, shown["id"])
    assert listed[0]["allowed_address_pairs"][1] == {
        "ip_address": "fe80::1",
        "mac_address": made["mac_address"],
    }
    assert [p["id"] for p in service.ports.list(CONDUCTOR, {"tags": "late,a,comma"})] == []
    assert [p["id"] for p in service.ports.list(CONDUCTOR, {"tags": "late,zeta"})] == [made["id"]]


def test_fixed_ips_reach_the_feed_and_the_listed_view(db: Database) -> None:
    """A port's addresses: in its listed view as in its own (the list joins them in SQL,
    on both databases), in the desired state of its NIC host, and a change of them is
    a new revision of that host's feed."""
    service, net = _service(db)
    v4 = service.subnets.create(
        CONDUCTOR,
        SubnetCreate.parse(
            {
                "network_id": net,
                "ip_version": 4,
                "cidr": "10.9.0.0/24",
                # Automatic addresses are picked at random: above the .77 named below.
                "allocation_pools": [{"start": "10.9.0.100", "end": "10.9.0.254"}],
            }
        ),
    )
    v6 = service.subnets.create(
        CONDUCTOR,
        SubnetCreate.parse(
            {
                "network_id": net,
                "ip_version": 6,
                "cidr": "fd00:9::/64",
                "ipv6_address_mode": "slaac",
            }
        ),
    )
    made = service.ports.create(CONDUCTOR, _port(net, 1))
    service.ports.create(CONDUCTOR, _port(net, 2, fixed_ips=[]))
    assert [f["subnet_id"] for f in made["fixed_ips"]] == [v4["id"], v6["id"]]
    listed = service.ports.list(CONDUCTOR, {"network_id": net})
    assert {p["id"]: p for p in listed}[made["id"]] == made
    for shown in listed:
        assert shown == service.ports.show(CONDUCTOR, shown["id"]) == _orm_view(db, shown["id"])

    desired = {p["id"]: p for p in service.feed.desired(CONDUCTOR, "nic-1")["ports"]}
    assert desired[made["id"]]["fixed_ips"] == made["fixed_ips"]
    before = revisions(db)["nic-1"]
    change = PortUpdate.parse({"fixed_ips": [{"ip_address": "10.9.0.77"}]})
    service.ports.update(CONDUCTOR, made["id"], change)
    assert revisions(db)["nic-1"] > before
    desired = {p["id"]: p for p in service.feed.desired(CONDUCTOR, "nic-1")["ports"]}
    assert [f["ip_address"] for f in desired[made["id"]]["fixed_ips"]][0] == "10.9.0.77"
    assert len(desired[made["id"]]["fixed_ips"]) == 2  # the SLAAC address stays
