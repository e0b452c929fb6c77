"""Two labs on one machine do not share a route: each remote NIC's management link gets a
/30 of 169.254.0.0/16 that no address in the root namespace overlaps (root only)."""

from __future__ import annotations

import ipaddress
import os

import pytest

from metalnic.lab import netns
from metalnic.lab.topology import management_link
from tests.support import require

pytestmark = pytest.mark.integration


def test_a_management_link_avoids_every_address_already_in_the_root_namespace() -> None:
    require(os.geteuid() == 0, "needs root (adds a link)")
    prefix = f"ml{os.getpid() % 10000}"
    root_ip, nic_ip = management_link(prefix, 4)
    net = ipaddress.ip_interface(f"{root_ip}/30").network
    assert ipaddress.ip_address(nic_ip) in net and ipaddress.ip_address(root_ip) in net
    dummy = f"{prefix}-dum"
    netns.veth(dummy, None, f"{dummy}2", None)  # (no dummy module here)
    try:
        # Another lab holds that block (and the next one, in a wider net) now.
        netns.run(["ip", "addr", "add", f"{root_ip}/29", "dev", dummy])
        again, _ = management_link(prefix, 4)
        assert not ipaddress.ip_interface(f"{again}/30").network.overlaps(
            ipaddress.ip_interface(f"{root_ip}/29").network
        ), (root_ip, again)
    finally:
        netns.run(["ip", "link", "del", dummy], check=False)


def test_labs_with_other_prefixes_start_their_search_elsewhere() -> None:
    links = {management_link(f"lab{i}", 1)[0] for i in range(8)}
    assert len(links) == 8, links
