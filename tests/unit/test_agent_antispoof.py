"""The planner's anti-spoofing flows (issue 13), without root: what each port's flow
group holds for its fixed IPs, address pairs and DHCP servers, and how a change of
them is reconciled.  The same flows are checked with real packets on real OVS in
``tests/root/test_agent_antispoof.py``."""

from __future__ import annotations

from typing import Any

from metalnic.agent import pipeline
from metalnic.agent.addresses import link_local, port_addresses
from metalnic.agent.pipeline import PortPlan
from metalnic.agent.plan import ProgramFlows, decide
from metalnic.contract.agent import DesiredPort
from tests.unit.test_agent_plan import CONFIG, MAC, FakeOvs, desired, flow_lines, port

SERVER = "fa:16:3e:dd:00:01"
PAIR_MAC = "fa:16:3e:00:00:aa"


def _plan(**kw: Any) -> PortPlan:
    base: dict[str, Any] = {"port_id": "p1", "mac": MAC, "local_vlan": 3, "ofports": (7,)}
    return PortPlan(**{**base, **kw})


def _flows(**kw: Any) -> list[str]:
    return list(pipeline.port_group("br-int", _plan(**kw)).flows)


def _desired_port(**extra: Any) -> DesiredPort:
    return DesiredPort.model_validate(port(**extra))


def test_link_local_is_the_modified_eui64_of_the_mac() -> None:
    # What Linux derived for this MAC in the lab (tests/root/test_agent_antispoof.py).
    assert link_local("52:54:00:81:00:01") == "fe80::5054:ff:fe81:1"
    assert link_local("02:00:00:00:00:01") == "fe80::ff:fe00:1"  # the U/L bit flips back


def test_fixed_ips_are_the_only_sources() -> None:
    flows = _flows(sources=((MAC, "10.0.0.5"), (MAC, "2001:db8::5")))
    assert f"table=10,priority=100,ip,in_port=7,dl_src={MAC},nw_src=10.0.0.5," in "\n".join(flows)
    assert any(f"arp,in_port=7,arp_sha={MAC},arp_spa=10.0.0.5,actions=NORMAL" in f for f in flows)
    assert any(f"arp,in_port=7,arp_sha={MAC},arp_spa=0.0.0.0,actions=NORMAL" in f for f in flows)
    assert any("ipv6_src=2001:db8::5,actions=goto_table:12" in f for f in flows)
    lla = link_local(MAC)
    assert any(f"ipv6_src={lla},actions=goto_table:12" in f for f in flows)
    # A neighbour advertisement only for its own addresses (the LLA among them).
    targets = sorted(f.split("nd_target=")[1].split(",")[0] for f in flows if "nd_target=" in f)
    assert targets == sorted(["2001:db8::5", lla])
    # No flow admits any other source: every table-10 IP flow names one.
    for f in flows:
        if f.startswith("table=10,") and (",ip," in f or ",ipv6," in f):
            assert "nw_src=" in f or "ipv6_src=" in f, f
        assert not (f.startswith("table=10,") and ",arp," in f and "arp_spa=" not in f), f


def test_without_addresses_only_the_mac_is_checked() -> None:
    flows = _flows()
    assert "table=10,priority=100,ip,in_port=7,actions=ct(table=11,zone=7)" in flows
    assert f"table=10,priority=110,arp,in_port=7,arp_sha={MAC},actions=NORMAL" in flows
    assert "table=12,priority=110,icmp6,in_port=7,icmp_type=136,actions=NORMAL" in flows
    assert f"table=0,priority=100,in_port=7,dl_src={MAC}," in "\n".join(flows)
    assert "table=0,priority=90,in_port=7,actions=drop" in flows  # any other MAC


def test_address_pairs_match_by_prefix_and_bring_their_mac() -> None:
    flows = _flows(
        sources=((MAC, "10.0.0.5"), (MAC, "10.9.0.0/24"), (PAIR_MAC, "10.0.0.50")),
        pair_macs=(PAIR_MAC,),
    )
    text = "\n".join(flows)
    assert f"dl_src={MAC},nw_src=10.9.0.0/24," in text
    assert f"arp_sha={MAC},arp_spa=10.9.0.0/24," in text
    assert f"dl_src={PAIR_MAC},nw_src=10.0.0.50," in text
    assert f"dl_src={MAC},nw_src=10.0.0.50," not in text  # the pair's IP goes with its MAC
    assert f"table=0,priority=100,in_port=7,dl_src={PAIR_MAC}," in text
    assert f"ipv6_src={link_local(PAIR_MAC)}," in text
    # Traffic to the pair's MAC is delivered through the same ingress filter.
    assert f"table=20,priority=90,ip,reg6=3,dl_dst={PAIR_MAC},actions=ct(" in text
    assert f"table=15,priority=90,reg6=3,dl_dst={PAIR_MAC}," in text


def test_dhcp_replies_only_from_the_listed_servers() -> None:
    flows = _flows(dhcp_servers=(SERVER,))
    reply = f"udp,reg6=3,dl_dst={MAC},tp_src=67,tp_dst=68"
    assert f"table=20,priority=95,{reply},dl_src={SERVER},actions=output:7" in flows
    # Anything else for the client port is dropped, whatever its source port.
    assert f"table=20,priority=94,udp,reg6=3,dl_dst={MAC},tp_dst=68,actions=drop" in flows
    reply6 = f"udp6,reg6=3,dl_dst={MAC},tp_src=547,tp_dst=546"
    assert f"table=20,priority=95,{reply6},dl_src={SERVER},actions=output:7" in flows
    assert f"table=20,priority=94,udp6,reg6=3,dl_dst={MAC},tp_dst=546,actions=drop" in flows
    # None listed: none admitted.
    none = _flows()
    assert not [f for f in none if "tp_src=67" in f and "drop" not in f]
    assert f"table=20,priority=94,udp,reg6=3,dl_dst={MAC},tp_dst=68,actions=drop" in none


def test_a_dhcp_port_may_answer_and_no_other_host() -> None:
    base = "\n".join(pipeline.base_groups("br-int", ["br-phys"])[0].flows)
    assert "table=10,priority=120,udp,tp_src=67,actions=drop" in base
    assert "table=10,priority=120,udp6,tp_src=547,actions=drop" in base
    # … and to a DHCP client's port from any other source port.
    assert "table=10,priority=120,udp,tp_dst=68,actions=drop" in base
    assert "table=10,priority=120,udp6,tp_dst=546,actions=drop" in base
    assert "table=10,priority=120,icmp6,icmp_type=134,actions=drop" in base  # RA
    assert "table=10,priority=120,icmp6,icmp_type=137,actions=drop" in base  # redirect
    assert "table=10,priority=105,udp,nw_src=0.0.0.0,tp_src=68,tp_dst=67," in base
    assert "table=10,priority=105,icmp6,ipv6_src=::,icmp_type=135,actions=NORMAL" in base
    assert "table=12,priority=100,icmp6,icmp_type=136,actions=drop" in base
    server = _flows(mac=SERVER, dhcp_servers=(SERVER,))
    assert "table=10,priority=125,udp,in_port=7,tp_src=67,actions=goto_table:15" in server
    assert not [f for f in _flows(dhcp_servers=(SERVER,)) if "priority=125" in f]


def test_port_security_off_filters_nothing() -> None:
    flows = _flows(port_security=False, sources=((MAC, "10.0.0.5"),), dhcp_servers=(SERVER,))
    assert not [f for f in flows if "nw_src" in f or "arp" in f or "tp_src" in f or "dl_src" in f]


def test_addresses_from_the_desired_port() -> None:
    p = _desired_port(
        fixed_ips=[
            {"subnet_id": "s4", "ip_address": "10.0.0.5"},
            {"subnet_id": "s6", "ip_address": "2001:DB8::0005"},
        ],
        allowed_address_pairs=[
            {"ip_address": "10.9.0.7/24", "mac_address": ""},  # no MAC: the port's
            {"ip_address": "10.0.0.50", "mac_address": PAIR_MAC.upper()},
        ],
    )
    sources, macs, _ = port_addresses(p)
    assert sources == (
        (MAC, "10.0.0.5"),
        (MAC, "2001:db8::5"),
        (MAC, "10.9.0.0/24"),
        (PAIR_MAC, "10.0.0.50"),
    )
    assert macs == (PAIR_MAC,)


def test_a_bad_address_is_an_error_not_an_open_port() -> None:
    ovs = FakeOvs()
    bad = port(fixed_ips=[{"subnet_id": "s", "ip_address": "10.0.0.0/24"}])  # not one address
    steps = ovs.converge(desired(bad))
    last = steps[-1]
    assert last.results["p1"].status == "ERROR" and "not an IP address" in str(
        last.results["p1"].reason
    )
    assert "p1" not in last.expected  # no flows of its own: table 0 drops it
    pair = port(allowed_address_pairs=[{"ip_address": "10.0.0.9", "mac_address": "nope"}])
    assert ovs.converge(desired(pair))[-1].results["p1"].status == "ERROR"


def test_a_change_of_addresses_swaps_only_that_ports_flows() -> None:
    ovs = FakeOvs()
    a = port(fixed_ips=[{"subnet_id": "s", "ip_address": "10.0.0.5"}])
    b = port("p2", ("pfb1",), mac="52:54:00:00:00:02")
    ovs.converge(desired(a, b))
    assert decide(desired(a, b), ovs.observed(), CONFIG).actions == []  # converged
    moved = {**a, "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.6"}]}
    step = decide(desired(moved, b), ovs.observed(), CONFIG)
    bundles = [x for x in step.actions if isinstance(x, ProgramFlows)]
    assert [x.bridge for x in bundles] == ["br-int"] and bundles[0].removed == 1
    lines = flow_lines(step.actions)
    assert lines[0].startswith("delete cookie=") and all("in_port=2" not in f for f in lines)
    assert any("nw_src=10.0.0.6" in f for f in lines)
    ovs.apply(step.actions)
    assert decide(desired(moved, b), ovs.observed(), CONFIG).actions == []


def test_broadcast_dhcp_replies_go_to_the_ports_that_list_the_server() -> None:
    a = _plan(dhcp_servers=(SERVER,))
    b = _plan(port_id="p2", mac="52:54:00:00:00:02", ofports=(8, 9), dhcp_servers=(SERVER,))
    other = _plan(port_id="p3", mac="52:54:00:00:00:03", ofports=(10,))  # lists none
    off = _plan(port_id="p4", mac="52:54:00:00:00:04", ofports=(11,), port_security=False)
    group = pipeline.dhcp_broadcast_group("br-int", "net-1", [a, b, other, off])
    assert group is not None and group.kind == pipeline.KIND_DHCP
    (flow,) = group.flows
    assert f"dl_dst=ff:ff:ff:ff:ff:ff,tp_src=67,tp_dst=68,reg6=3,dl_src={SERVER}" in flow
    actions = flow.split("actions=")[1]
    assert "output:7" in actions and "members:8,9" in actions
    assert "output:10" not in actions and "output:11" not in actions
    assert pipeline.dhcp_broadcast_group("br-int", "net-1", [other, off]) is None


def test_the_plan_programs_a_networks_broadcast_dhcp_group() -> None:
    ovs = FakeOvs()
    servers = [{"mac_address": SERVER, "ip_addresses": ["10.0.0.2"]}]
    steps = ovs.converge(desired(port(dhcp_servers=servers)))
    lines = flow_lines(steps[-1].actions)
    assert any("dl_dst=ff:ff:ff:ff:ff:ff" in line and "output:1" in line for line in lines)
    # The server leaves the port's list: the group goes, in the same bundle as the port's.
    step = decide(desired(port()), ovs.observed(), CONFIG)
    bundles = [x for x in step.actions if isinstance(x, ProgramFlows)]
    assert len(bundles) == 1 and bundles[0].removed == 2
    assert not any("ff:ff:ff:ff:ff:ff" in line for line in bundles[0].lines)
