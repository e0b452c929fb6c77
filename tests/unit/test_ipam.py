"""The address arithmetic of ``network/ipam.py``: pools, checks, EUI-64 and picking."""

from __future__ import annotations

import ipaddress
import random

import netaddr
import pytest

from metalnic.errors import (
    InvalidAllocationPool,
    OutOfBoundsAllocationPool,
    OverlappingAllocationPools,
)
from metalnic.network import ipam


def test_default_gateway_and_pools() -> None:
    net = ipam.network("10.0.0.0/24")
    assert ipam.default_gateway(net) == "10.0.0.1"
    assert ipam.default_pools(net, "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, None) == [{"start": "10.0.0.1", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, "10.0.0.100") == [
        {"start": "10.0.0.1", "end": "10.0.0.99"},
        {"start": "10.0.0.101", "end": "10.0.0.254"},
    ]
    assert ipam.default_pools(net, "192.168.0.1") == [{"start": "10.0.0.1", "end": "10.0.0.254"}]
    v6 = ipam.network("fd00::/64")  # no broadcast address: the last one is a host
    assert ipam.default_pools(v6, ipam.default_gateway(v6)) == [
        {"start": "fd00::2", "end": "fd00::ffff:ffff:ffff:ffff"}
    ]
    assert ipam.default_pools(ipam.network("10.0.0.0/30"), "10.0.0.1") == [
        {"start": "10.0.0.2", "end": "10.0.0.2"}
    ]


@pytest.mark.parametrize(
    ("pools", "error"),
    [
        ([{"start": "10.0.0.9", "end": "10.0.0.5"}], InvalidAllocationPool),
        ([{"start": "fd00::1", "end": "fd00::5"}], InvalidAllocationPool),
        ([{"start": "10.0.0.0", "end": "10.0.0.5"}], OutOfBoundsAllocationPool),
        ([{"start": "10.0.0.5", "end": "10.0.0.255"}], OutOfBoundsAllocationPool),
        ([{"start": "10.0.0.5", "end": "10.0.1.1"}], OutOfBoundsAllocationPool),
        (
            [{"start": "10.0.0.20", "end": "10.0.0.30"}, {"start": "10.0.0.2", "end": "10.0.0.20"}],
            OverlappingAllocationPools,
        ),
    ],
)
def test_bad_pools_are_refused(pools: list[dict[str, str]], error: type[Exception]) -> None:
    with pytest.raises(error):
        ipam.check_pools(pools, ipam.network("10.0.0.0/24"))


def test_good_pools_pass() -> None:
    ipam.check_pools(
        [{"start": "10.0.0.2", "end": "10.0.0.9"}, {"start": "10.0.0.10", "end": "10.0.0.254"}],
        ipam.network("10.0.0.0/24"),
    )


def test_eui64_matches_netaddr() -> None:
    for mac in ("fa:16:3e:12:34:56", "00:00:00:00:00:00", "02:ff:ff:ff:ff:ff"):
        expected = netaddr.EUI(mac).ipv6(netaddr.IPNetwork("2001:db8:1:2::/64").first)
        assert ipam.eui64("2001:db8:1:2::/64", mac) == str(expected)


def test_pick_skips_taken_addresses_and_runs() -> None:
    pools = [{"start": "10.0.0.2", "end": "10.0.0.6"}, {"start": "10.0.0.10", "end": "10.0.0.12"}]
    rng = random.Random(1)
    taken = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.11"]
    for _ in range(50):
        assert ipam.pick(pools, taken, rng) in ("10.0.0.10", "10.0.0.12")
    assert ipam.pick(pools, [*taken, "10.0.0.10", "10.0.0.12"], rng) is None
    assert ipam.pick(pools, ["192.168.0.1"], rng) is not None  # outside the pools: ignored


def test_pick_in_a_crowded_large_subnet_walks_the_taken_not_the_pool() -> None:
    # A /16 with all but two addresses of its first 60000 taken: the free ones are found.
    pools = [{"start": "10.1.0.1", "end": "10.1.255.254"}]
    base = int(ipaddress.ip_address("10.1.0.1"))
    free = {base + 1234, base + 59000}
    taken = [str(ipaddress.ip_address(base + i)) for i in range(60000) if base + i not in free]
    got = {ipam.pick(pools, taken, random.Random(i)) for i in range(40)}
    assert got <= {str(ipaddress.ip_address(v)) for v in free} | {
        str(ipaddress.ip_address(base + i)) for i in range(60000, 60016)
    }
    assert str(ipaddress.ip_address(base + 1234)) in got


def test_random_candidates_stay_in_the_pools_and_cover_them() -> None:
    pools = [{"start": "10.0.0.2", "end": "10.0.0.3"}, {"start": "10.0.0.200", "end": "10.0.0.201"}]
    rng = random.Random(7)
    seen = {ipam.random_candidate(pools, rng) for _ in range(200)}
    assert seen == {"10.0.0.2", "10.0.0.3", "10.0.0.200", "10.0.0.201"}
    assert ipam.random_candidate([], rng) is None
    v6 = [{"start": "fd00::2", "end": "fd00::ffff:ffff:ffff:ffff"}]
    assert ipaddress.ip_address(str(ipam.random_candidate(v6, rng))) in ipaddress.ip_network(
        "fd00::/64"
    )


def test_usable_hosts() -> None:
    net = ipam.network("10.0.0.0/24")
    assert ipam.usable_host(net, "10.0.0.1") and ipam.usable_host(net, "10.0.0.254")
    assert not ipam.usable_host(net, "10.0.0.0") and not ipam.usable_host(net, "10.0.0.255")
    assert not ipam.usable_host(net, "10.0.1.1") and not ipam.usable_host(net, "fd00::1")


def test_shown_orders_ipv4_first_then_by_address() -> None:
    addresses = [
        ipam.Address("s6", "fd00::2"),
        ipam.Address("s4", "10.0.0.10"),
        ipam.Address("s4", "10.0.0.9"),
    ]
    assert [a["ip_address"] for a in ipam.shown(addresses)] == ["10.0.0.9", "10.0.0.10", "fd00::2"]
