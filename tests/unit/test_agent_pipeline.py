"""The agent's flow pipeline as data: rule translation, port ranges, cookies, read-back."""

from __future__ import annotations

from collections import Counter

import pytest

from metalnic.agent import pipeline
from metalnic.agent.nic import Expected
from metalnic.agent.ovs import Interface, _datum
from metalnic.agent.pipeline import PortPlan, Rule, port_masks, rule_matches


@pytest.mark.parametrize(
    ("low", "high"), [(22, 22), (0, 65535), (1000, 1999), (8080, 8090), (1, 65534), (443, 444)]
)
def test_port_masks_cover_exactly_the_range(low: int, high: int) -> None:
    covered: set[int] = set()
    for item in port_masks(low, high):
        if "/" in item:
            value, mask = (int(x, 16) for x in item.split("/"))
            size = 0x10000 - mask
            block = set(range(value, value + size))
            assert value & ~mask & 0xFFFF == 0
        else:
            block = {int(item)}
        assert not covered & block  # no overlap
        covered |= block
    assert covered == set(range(low, high + 1))
    assert len(port_masks(low, high)) <= 32


def test_rule_translation() -> None:
    assert rule_matches(Rule("ingress", protocol="tcp", port_min=22, port_max=22)) == [
        "tcp,tp_dst=22"
    ]
    assert rule_matches(Rule("ingress", protocol="icmp")) == ["icmp"]
    assert rule_matches(Rule("egress")) == ["ip"]
    assert rule_matches(Rule("egress", ethertype="IPv6", protocol="tcp")) == ["tcp6"]
    assert rule_matches(Rule("ingress", protocol="17", remote_ip_prefix="10.0.0.0/8")) == [
        "udp,nw_src=10.0.0.0/8"
    ]
    assert rule_matches(Rule("egress", remote_ip_prefix="192.0.2.0/24")) == [
        "ip,nw_dst=192.0.2.0/24"
    ]
    # A remote group matches its register bit; an unknown group or a v6 prefix on a v4
    # rule allows nothing (never everything).
    assert rule_matches(Rule("ingress", remote_group="g"), {"g": 4}) == ["ip,reg5=0x4/0x4"]
    assert rule_matches(Rule("egress", remote_group="g"), {"g": 1}) == ["ip,reg4=0x1/0x1"]
    assert rule_matches(Rule("ingress", remote_group="unknown"), {}) == []
    assert rule_matches(Rule("ingress", remote_ip_prefix="2001:db8::/32")) == []
    assert rule_matches(Rule("ingress", protocol="gre-ish")) == []


def test_membership_bits() -> None:
    bits, by_mac = pipeline.membership(["b", "a"], {"a": ["m1", "m2"], "b": ["m2"]})
    assert bits == {"a": 1, "b": 2}
    assert by_mac == {"m1": 1, "m2": 3}


def _plan(**kw: object) -> PortPlan:
    base: dict[str, object] = {
        "port_id": "p1",
        "mac": "52:54:00:00:00:01",
        "local_vlan": 3,
        "ofports": (7,),
    }
    return PortPlan(**{**base, **kw})  # type: ignore[arg-type]


def test_cookies_are_stable_and_change_with_content() -> None:
    a = pipeline.port_group("br-int", _plan())
    assert a.cookie == pipeline.port_group("br-int", _plan()).cookie
    assert pipeline.kind_of(a.cookie) == pipeline.KIND_PORT
    rules = (Rule("ingress", protocol="tcp", port_min=22, port_max=22),)
    b = pipeline.port_group("br-int", _plan(rules=rules))
    assert b.cookie != a.cookie and b.cookie >> 32 == a.cookie >> 32  # same key, new content
    assert any("tp_dst=22" in f and "output:7" in f for f in b.flows)
    # Port security off: no conntrack, no anti-spoofing.
    off = pipeline.port_group("br-int", _plan(port_security=False))
    assert not any("ct(" in f or "dl_src=" in f for f in off.flows)


def test_bond_outputs_through_a_bundle_action() -> None:
    flows = pipeline.port_group("br-int", _plan(ofports=(7, 8), bond_mode="802.3ad")).flows
    assert any("bundle(symmetric_l4,0,hrw,ofport,members:7,8)" in f for f in flows)
    assert sum("in_port=8" in f for f in flows) == sum("in_port=7" in f for f in flows) > 0


def test_read_back_finds_what_is_wrong() -> None:
    group = pipeline.port_group("br-int", _plan())
    want = Expected(("pfb",), 3, "52:54:00:00:00:01", group)
    ok_iface = Interface(
        "pfb", 7, {"iface-id": "p1", "attached-mac": "52:54:00:00:00:01"}, None, tag=3
    )
    flows = Counter({group.cookie: len(group.flows)})
    assert want.missing("p1", {"pfb": ok_iface}, flows) is None
    assert "VLAN 4095" in str(
        want.missing(
            "p1", {"pfb": Interface("pfb", 7, ok_iface.external_ids, None, tag=4095)}, flows
        )
    )
    assert "not on the integration bridge" in str(want.missing("p1", {}, flows))
    assert "flows" in str(want.missing("p1", {"pfb": ok_iface}, Counter()))
    partial = Counter({group.cookie: len(group.flows) - 1})
    assert "flows" in str(want.missing("p1", {"pfb": ok_iface}, partial))


def test_ovsdb_json_decoding() -> None:
    assert _datum(["map", [["a", "1"]]]) == {"a": "1"}
    assert _datum(["set", []]) is None
    assert _datum(["set", [["uuid", "x"], ["uuid", "y"]]]) == ["x", "y"]
    assert _datum(["uuid", "x"]) == "x"
    assert _datum(5) == 5
