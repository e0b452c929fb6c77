"""dnsmasq's configuration rendered from the DHCP contract; the contract's plain data;
the DHCP agent's configuration file.  (dnsmasq itself: tests/root/test_dhcp_driver.py.)"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from metalnic.contract import dhcp as dc
from metalnic.contract import doc
from metalnic.dhcp import config, render
from metalnic.network import dhcpfeed

FILES = render.Files(Path("/var/lib/metalnic-dhcp/net-1"))


def _network(**extra: object) -> dc.DhcpNetwork:
    base: dict[str, object] = {
        "id": "net-1",
        "network_type": "vlan",
        "physical_network": "physnet1",
        "segmentation_id": 101,
        "subnets": [
            {
                "id": "s4",
                "cidr": "10.0.0.0/24",
                "ip_version": 4,
                "gateway_ip": "10.0.0.1",
                "dns_nameservers": ["10.0.0.53", "10.0.1.53"],
                "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}],
            },
            {
                "id": "s6",
                "cidr": "fd00::/64",
                "ip_version": 6,
                "ipv6_address_mode": "dhcpv6-stateful",
                "ipv6_ra_mode": "dhcpv6-stateful",
            },
        ],
        "port": {
            "id": "dp",
            "mac_address": "fa:16:3e:00:00:02",
            "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.2"}],
        },
        "hosts": [
            {
                "port_id": "p2",
                "mac_address": "52:54:00:00:00:02",
                "hostname": "host-10-0-0-12",
                "fixed_ips": [
                    {"subnet_id": "s4", "ip_address": "10.0.0.12"},
                    {"subnet_id": "s6", "ip_address": "fd00::12"},
                ],
                "extra_dhcp_opts": [
                    {"opt_name": "tag:!ipxe,bootfile-name", "opt_value": "undionly.kpxe"},
                    {
                        "opt_name": "tag:ipxe,bootfile-name",
                        "opt_value": "http://10.0.0.5/boot.ipxe",
                    },
                    {"opt_name": "server-ip-address", "opt_value": "10.0.0.5"},
                    {"opt_name": "66", "opt_value": "10.0.0.5"},
                    {
                        "opt_name": "bootfile-url",
                        "opt_value": "http://[fd00::5]/x",
                        "ip_version": 6,
                    },
                ],
            },
            {
                "port_id": "p1",
                "mac_address": "52:54:00:00:00:01",
                "hostname": "host-10-0-0-11",
                "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.11"}],
            },
            # An address on a subnet without DHCP (not in subnets): no line.
            {
                "port_id": "p9",
                "mac_address": "52:54:00:00:00:09",
                "hostname": "host-x",
                "fixed_ips": [{"subnet_id": "other", "ip_address": "10.9.0.9"}],
            },
        ],
    }
    base.update(extra)
    return dc.DhcpNetwork.model_validate(base)


def test_ranges_are_static_only_per_subnet() -> None:
    args = render.command(_network(), FILES, "ns-net-1", 86400)
    ranges = [a for a in args if a.startswith("--dhcp-range=")]
    assert ranges == [
        "--dhcp-range=set:subnet-s4,10.0.0.0,static,255.255.255.0,86400s",
        "--dhcp-range=set:subnet-s6,fd00::,static,64,86400s",
    ]
    for flag in (
        "--no-ping",
        "--port=0",
        "--interface=ns-net-1",
        "--bind-interfaces",
        f"--dhcp-hostsfile={FILES.hosts}",
        f"--dhcp-optsfile={FILES.opts}",
        f"--dhcp-leasefile={FILES.leases}",
        f"--conf-file={FILES.tags}",
        "--enable-ra",
    ):
        assert flag in args


@pytest.mark.parametrize(
    ("mode", "ra", "expected"),
    [
        ("slaac", "slaac", "--dhcp-range=set:subnet-s6,fd00::,ra-only,64,600s"),
        (
            "dhcpv6-stateless",
            "dhcpv6-stateless",
            "--dhcp-range=set:subnet-s6,fd00::,ra-stateless,64,600s",
        ),
        ("dhcpv6-stateful", None, "--dhcp-range=set:subnet-s6,fd00::,static,64,600s"),
    ],
)
def test_ipv6_modes(mode: str, ra: str | None, expected: str) -> None:
    v6 = {
        "id": "s6",
        "cidr": "fd00::/64",
        "ip_version": 6,
        "ipv6_address_mode": mode,
        "ipv6_ra_mode": ra,
    }
    args = render.command(_network(subnets=[v6]), FILES, "ns", 600)
    assert expected in args
    assert ("--enable-ra" in args) == (ra is not None)
    assert ("--ra-param=ns,0,0" in args) == (ra is not None)  # no default route via us


def test_hosts_file_lists_known_ports_only_in_a_stable_order() -> None:
    assert render.hosts_file(_network()) == (
        "52:54:00:00:00:01,10.0.0.11,host-10-0-0-11\n"
        "52:54:00:00:00:02,10.0.0.12,[fd00::12],host-10-0-0-12\n"
    )


def test_options_per_subnet_and_per_port() -> None:
    opts = render.opts_file(_network()).splitlines()
    assert opts == [
        "tag:subnet-s4,option:router,10.0.0.1",
        "tag:subnet-s4,option:dns-server,10.0.0.53,10.0.1.53",
        "tag:subnet-s4,option:classless-static-route,192.168.0.0/16,10.0.0.254,0.0.0.0/0,10.0.0.1",
        "tag:port-p2,tag:!ipxe,option:bootfile-name,undionly.kpxe",
        "tag:port-p2,tag:ipxe,option:bootfile-name,http://10.0.0.5/boot.ipxe",
        "tag:port-p2,option:server-ip-address,10.0.0.5",
        "tag:port-p2,66,10.0.0.5",
        "tag:port-p2,option6:bootfile-url,http://[fd00::5]/x",
    ]
    # Only ports with options are tagged (by MAC: see render.py on dnsmasq 2.90).
    assert render.tags_file(_network()) == "dhcp-mac=set:port-p2,52:54:00:00:00:02\n"


def test_a_subnet_without_gateway_sends_an_empty_router_option() -> None:
    v4 = {"id": "s4", "cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": None}
    assert render.opts_file(_network(subnets=[v4], hosts=[])) == "tag:subnet-s4,option:router\n"


def test_the_servers_plain_data_has_exactly_the_models_fields() -> None:
    pairs = [
        (dhcpfeed.DesiredData, dc.DhcpDesiredState),
        (dhcpfeed.NetworkData, dc.DhcpNetwork),
        (dhcpfeed.SubnetData, dc.DhcpSubnet),
        (dhcpfeed.PortData, dc.DhcpPort),
        (dhcpfeed.FixedIpData, dc.FixedIp),
        (dhcpfeed.HostData, dc.DhcpHost),
        (dhcpfeed.DhcpOptionData, dc.DhcpOption),
    ]
    for data, model in pairs:
        assert list(typing.get_type_hints(data)) == list(model.model_fields), model.__name__


def test_config_file_rules() -> None:
    good = config.parse(
        {
            "server": "http://x",
            "bridge_mappings": {"physnet1": "br-dhcp"},
            "prefix": "lab1-",
            "lease_duration": 600,
        }
    )
    assert good.driver.lease_time == 600 and good.driver.prefix == "lab1-"
    assert good.driver.ovs_namespace is None
    for bad, why in (
        ({}, "server"),
        ({"server": "http://x", "nics": {}}, "unknown"),
        ({"server": "http://x", "lease_duration": 60}, "lease_duration"),
        ({"server": "http://x", "prefix": "much-too-long"}, "prefix"),
        ({"server": "http://x", "bridge_mappings": {"physnet1": 3}}, "bridge_mappings"),
    ):
        with pytest.raises(config.ConfigError, match=why):
            config.parse(bad)


def test_docs_show_the_dhcp_contract_as_the_models_say() -> None:
    text = (Path(doc.DOC).parent / "dhcp.md").read_text()
    begin = "<!-- BEGIN DHCP contract (tests/unit/test_dhcp_render.py checks these tables) -->\n"
    shown = text.split(begin, 1)[1].split("<!-- END DHCP contract -->", 1)[0]
    assert shown == "\n".join(line for m in dc.MODELS for line in doc.model_table(m)) + "\n"


def test_ipxe_over_dhcpv6_is_tagged_by_its_user_class_and_option_59_reaches_it() -> None:
    """Ironic's IPv6 boot options (``tag:ipxe6,59``) need dnsmasq to tag iPXE's DHCPv6
    requests (user class ``iPXE``), as Neutron's dnsmasq does."""
    args = render.command(_network(), FILES, "ns", 600)
    assert "--dhcp-userclass=set:ipxe6,iPXE" in args
    host = {
        "port_id": "p6",
        "mac_address": "52:54:00:00:00:06",
        "hostname": "host-6",
        "fixed_ips": [{"subnet_id": "s6", "ip_address": "fd00::6"}],
        "extra_dhcp_opts": [
            {"opt_name": "tag:ipxe6,59", "opt_value": "http://[fd00::5]/boot.ipxe",
             "ip_version": 6},
            {"opt_name": "tag:!ipxe6,59", "opt_value": "tftp://[fd00::5]/snponly.efi",
             "ip_version": 6},
        ],
    }  # fmt: skip
    lines = render.opts_file(_network(hosts=[host])).splitlines()
    assert "tag:port-p6,tag:ipxe6,option6:59,http://[fd00::5]/boot.ipxe" in lines
    assert "tag:port-p6,tag:!ipxe6,option6:59,tftp://[fd00::5]/snponly.efi" in lines
