"""Remote mode's SSH decisions without root: the host key check and what follows from it
(untrusted → DOWN, untouched), a reboot (a new boot id → proven and planned anew),
the representor inventory (the planner refuses a port B the NIC lacks) and the
heartbeat that reports it.  The real sshd and OVS: tests/root/test_agent_remote.py."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from metalnic.agent.nic import NicConfig
from metalnic.agent.ovs import Endpoint, Ovs
from metalnic.agent.plan import Observed, PlugPort, decide
from metalnic.agent.remote import IdentityError, RemoteNic, Untrusted, stored_host_key
from metalnic.agent.service import MAX_REPORTED_NETDEVS, Agent, AgentConfig, NicSpec
from metalnic.agent.sshchannel import (
    ChannelError,
    HostKey,
    HostKeyMismatch,
    NicFacts,
    SshTarget,
    host_key_algorithms,
    parse_facts,
)
from metalnic.contract.agent import DesiredState
from metalnic.lab import pki
from tests.unit.test_agent_plan import CONFIG, FakeOvs, desired, port

BOOT_A = "0e0127b9-d969-45fa-b681-c6aed411519a"
BOOT_B = "a6a09407-737b-48f4-8c2e-6593188576b8"


def _public(comment: str = "nic@test") -> str:
    return pki.ssh_keypair(comment)[1]


# --- the host key --------------------------------------------------------------------------


def test_fingerprint_is_openssh_sha256_of_the_key_blob() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # The wire blob, built by hand: string "ssh-ed25519", string <32 bytes>.
    blob = b"".join(len(p).to_bytes(4, "big") + p for p in (b"ssh-ed25519", raw))
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    parsed = HostKey.parse(line.decode() + " comment is ignored")
    assert parsed == HostKey("ssh-ed25519", blob)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert parsed.fingerprint == f"SHA256:{digest}"
    assert str(parsed) == f"ssh-ed25519 SHA256:{digest}"


@pytest.mark.parametrize("text", ["", "ssh-ed25519", "ssh-ed25519 not*base64"])
def test_a_stored_key_that_is_no_key_is_an_error(text: str) -> None:
    with pytest.raises(ChannelError, match="not an OpenSSH public key"):
        HostKey.parse(text)


def test_ports_of_one_nic_must_store_one_host_key() -> None:
    one, other = _public("a"), _public("b")
    same = desired(keyed(port("p1"), one), keyed(port("p2", ("pfb1",)), one + "x"))
    # The comment is not part of the key: "… a" and "… ax" are the same key.
    assert stored_host_key(same) == " ".join(one.split()[:2])
    with pytest.raises(IdentityError, match="different ssh_public_keys"):
        stored_host_key(desired(keyed(port("p1"), one), keyed(port("p2"), other)))
    assert stored_host_key(desired(port())) is None


def keyed(p: dict[str, Any], key: str | None, cert: str | None = None) -> dict[str, Any]:
    """Port ``p`` whose links store ``key`` (ssh_public_key) and ``cert`` (ovsdb_cert)."""
    links = [
        {**link, "ssh_public_key": key, "ovsdb_cert": cert} for link in p["local_link_information"]
    ]
    return {**p, "local_link_information": links}


def test_the_server_is_asked_for_exactly_the_stored_keys_type() -> None:
    assert host_key_algorithms("ssh-ed25519") == ("ssh-ed25519",)
    assert host_key_algorithms("ssh-rsa")[0] == "rsa-sha2-512"  # SHA-2 signatures first
    with pytest.raises(ChannelError, match="cannot check"):  # an error, not a crash
        host_key_algorithms("sk-ssh-ed25519@openssh.com")


# --- the NIC's answer ----------------------------------------------------------------------

LINKS = (
    '[{"ifname":"lo","link_type":"loopback","address":"00:00:00:00:00:00"},'
    '{"ifname":"pf0vf0","link_type":"ether","address":"52:54:00:aa:00:01"},'
    '{"ifname":"tun0","link_type":"none"}]'
)


def test_facts_are_the_boot_id_and_the_netdevs_without_loopback() -> None:
    facts = parse_facts(f"{BOOT_A}\n{LINKS}\n")
    assert facts == NicFacts(BOOT_A, {"pf0vf0": "52:54:00:aa:00:01", "tun0": ""})


@pytest.mark.parametrize("output", ["", "not-a-uuid\n[]", f"{BOOT_A}\n{{", f"{BOOT_A}\n{{}}"])
def test_an_odd_answer_is_an_error(output: str) -> None:
    with pytest.raises(ChannelError):
        parse_facts(output)


# --- what remote.py makes of it -------------------------------------------------------------


class FakeChannel:
    """Stands in for SshChannel: the facts to answer, or the error to raise."""

    def __init__(self) -> None:
        self.answer: NicFacts | ChannelError = NicFacts(BOOT_A, {"pfb0": "52:54:00:aa:00:01"})
        self.asked: list[str] = []

    def read(self, stored: str) -> NicFacts:
        self.asked.append(stored)
        if isinstance(self.answer, ChannelError):
            raise self.answer
        return self.answer


class Untouchable(Ovs):
    """An Ovs that fails the test if anything is asked of it."""

    def __getattribute__(self, name: str) -> object:
        if name == "endpoint":
            return object.__getattribute__(self, name)
        raise AssertionError(f"the NIC was touched: ovs.{name}")


def remote_nic(tmp_path: Path) -> tuple[RemoteNic, FakeChannel]:
    agent = AgentConfig(
        server="http://x",
        nics=(),
        mode="remote",
        private_key="k",
        certificate="c",
        ssh_private_key="s",
        state_dir=str(tmp_path),
    )
    nic = RemoteNic(
        Untouchable(Endpoint("ssl:192.0.2.1:6640", {})), CONFIG, agent, SshTarget("192.0.2.1")
    )
    channel = FakeChannel()
    nic.channel = channel  # type: ignore[assignment]
    return nic, channel


def _bound(key: str | None) -> DesiredState:
    return desired(keyed(port("p1"), key, "-----BEGIN CERTIFICATE-----"))


def test_a_host_key_mismatch_is_untrusted_down_and_touches_nothing(tmp_path: Path) -> None:
    nic, channel = remote_nic(tmp_path)
    nic.verified = "proven-before"
    channel.answer = HostKeyMismatch("presents host key ssh-ed25519 SHA256:x, stores …")
    with pytest.raises(Untrusted, match="SHA256:x") as info:
        nic.reconcile(_bound(_public()))  # Untouchable: any OVS call fails the test
    assert info.value.status == "DOWN"
    assert nic.verified is None  # once it matches, everything is proven again


def test_an_unreachable_ssh_server_is_an_error_not_a_mismatch(tmp_path: Path) -> None:
    nic, channel = remote_nic(tmp_path)
    channel.answer = ChannelError("cannot reach the SSH server at root@192.0.2.1:22")
    with pytest.raises(IdentityError, match="cannot reach") as info:
        nic.reconcile(_bound(_public()))
    assert info.value.status == "ERROR" and not isinstance(info.value, Untrusted)


def test_a_port_without_a_stored_host_key_is_not_trusted(tmp_path: Path) -> None:
    nic, channel = remote_nic(tmp_path)
    with pytest.raises(IdentityError, match="no ssh_public_key"):
        nic.reconcile(_bound(None))
    assert channel.asked == []


def test_a_new_boot_id_forgets_the_nic_and_proves_it_again(tmp_path: Path) -> None:
    nic, channel = remote_nic(tmp_path)
    key = " ".join(_public().split()[:2])
    nic._read_over_ssh(key)
    assert (nic.boot_id, nic.netdevs, nic.inventory) == (
        BOOT_A,
        frozenset({"pfb0"}),
        {"pfb0": "52:54:00:aa:00:01"},
    )
    nic.verified, nic._ensured, nic.expected = "proven", True, {"p1": None}  # type: ignore[dict-item]
    nic._read_over_ssh(key)  # same boot: nothing forgotten
    assert (nic.verified, nic._ensured) == ("proven", True)
    channel.answer = NicFacts(BOOT_B, {"pfb0": "52:54:00:aa:00:01", "pfb1": "52:54:00:aa:00:02"})
    nic._read_over_ssh(key)
    assert nic.verified is None and not nic._ensured and nic.expected == {}
    assert nic.boot_id == BOOT_B and nic.netdevs == frozenset({"pfb0", "pfb1"})


# --- the planner and the inventory ---------------------------------------------------------


def _plugs(netdevs: frozenset[str] | None) -> tuple[list[str], dict[str, str]]:
    """One pass (as FakeOvs.converge, with the inventory): the NIC ports plugged, and the
    reasons of the ports that are not ACTIVE."""
    ovs = FakeOvs()
    state = desired(port("p1"), port("p2", ("pf9",), mac="52:54:00:00:00:02"))
    plugged: list[str] = []
    for _ in range(4):
        seen = ovs.observed()
        step = decide(state, Observed(seen.interfaces, seen.cookies, seen.tried, netdevs), CONFIG)
        plugged += [a.name for a in step.actions if isinstance(a, PlugPort)]
        ovs.apply(step.actions)
        if not step.again:
            break
    return plugged, {k: str(v.reason) for k, v in step.results.items() if v.status != "ACTIVE"}


def test_a_port_b_the_nic_does_not_have_is_refused_before_any_plug() -> None:
    names, reasons = _plugs(frozenset({"pfb0", "pfc"}))
    assert names == ["pfb0"]
    assert reasons == {"p2": "NIC nic-1 has no representor pf9 (its netdevs: pfb0, pfc)"}


def test_without_an_inventory_every_port_is_tried() -> None:
    names, reasons = _plugs(None)  # local mode: OVS says whether the device exists
    assert sorted(names) == ["pf9", "pfb0"]  # and pf9, no such device, is reported by OVS
    assert "NIC port pf9 is missing on nic-1" in reasons["p2"]


# --- the heartbeat -------------------------------------------------------------------------


def test_the_heartbeat_reports_each_remote_nics_netdevs(tmp_path: Path) -> None:
    spec = NicSpec(NicConfig("nic-1"), Endpoint("ssl:192.0.2.1:6640", {}), True)
    agent = Agent(AgentConfig(server="http://x", nics=(spec,), mode="remote"))
    try:
        assert agent.heartbeat().configurations.nic_netdevs == {}  # nothing read yet
        nic, _channel = remote_nic(tmp_path)
        nic.inventory = {"pfb0": "52:54:00:aa:00:01"}
        agent.nics["nic-1"] = nic
        beat = agent.heartbeat()
    finally:
        agent.http.close()
    assert beat.configurations.nic_netdevs == {"nic-1": {"pfb0": "52:54:00:aa:00:01"}}
    assert beat.model_dump(mode="json")["configurations"]["nic_netdevs"]["nic-1"]["pfb0"]


def test_the_heartbeat_keeps_its_netdevs_within_a_budget(tmp_path: Path) -> None:
    agent = Agent(AgentConfig(server="http://x", nics=(), mode="remote"))
    try:
        for n in range(3):  # 3 NICs × 600 netdevs: more than one heartbeat carries
            nic, _channel = remote_nic(tmp_path / str(n))
            nic.inventory = {f"pf0vf{i}": f"52:54:00:00:{n:02x}:{i % 256:02x}" for i in range(600)}
            agent.nics[f"nic-{n}"] = nic
        beat = agent.heartbeat()
    finally:
        agent.http.close()
    netdevs = beat.configurations.nic_netdevs
    assert sum(len(v) for v in netdevs.values()) == MAX_REPORTED_NETDEVS
    assert len(netdevs["nic-0"]) == 600 and len(netdevs["nic-1"]) == 400 and "nic-2" not in netdevs
    assert len(beat.model_dump_json()) < 112 * 1024
