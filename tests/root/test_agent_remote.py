"""Remote mode: one agent process programs three NICs over OVSDB-SSL and OpenFlow-SSL,
trusting only the certificates and SSH host keys stored on their bare-metal ports.

Each NIC runs a real sshd in its namespace (``lab.sshd``) with its own host key,
authorising the agent's SSH key.  nic3 stores its real certificate, CA and host
key: its hosts talk, and the agent reads its netdevs and boot id over SSH.
nic4's port stores a certificate from another CA: the agent refuses to touch nic4
and says why.  nic5's port stores another SSH host key: untrusted, DOWN, untouched,
until the port's key is corrected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from metalnic.lab import netns, pki, sshd
from metalnic.lab.datacentre import write_secret
from metalnic.lab.scenario import alive_agents
from metalnic.lab.topology import Lab
from tests.ovslab import (
    AgentProcess,
    new_lab,
    ping,
    port_status,
    require_ovs,
    require_root_tools,
    start_agent_server,
    wait_until,
)
from tests.support import (
    Server,
    free_port,
    make_ca,
    make_server_cert,
    pem,
    ssh_public_key,
)

ADMIN = ("admin", "admin-secret-1")
IPS = {"h5": "10.81.0.5", "h6": "10.81.0.6", "h7": "10.81.0.7", "h8": "10.81.0.8"}
MACS = {h: f"52:54:00:81:00:0{h[1]}" for h in IPS}
NIC_OF = {"h5": "nic3", "h6": "nic3", "h7": "nic4", "h8": "nic5"}
NICS = ("nic3", "nic4", "nic5")


@dataclass
class Remote:
    server: Server
    lab: Lab
    agent: AgentProcess
    network: str
    stored: dict[str, dict[str, str]]  # NIC → the llc keys its bare-metal ports store
    host_keys: dict[str, Path]  # NIC → its sshd's host key file
    authorized: Path
    tmp: Path
    real_keys: dict[str, str] = field(default_factory=dict)  # NIC → its real host key
    cas: dict[str, pki.CA] = field(default_factory=dict)  # NIC → the CA of its certificate
    bound: dict[str, str] = field(default_factory=dict)  # lab host → network port


def _write(path: Path, text: str) -> Path:
    write_secret(path, text)
    return path


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    require_ovs()
    require_root_tools((sshd.SSHD,), "openssh-server")
    tmp = tmp_path_factory.mktemp("remote")
    server, _password = start_agent_server(
        tmp, ADMIN, ("remote-agent", "agent-secret-8"), nic_hosts=NICS
    )
    lab = new_lab("ssk")
    agent_ca = make_ca("agents")
    agent_cert, agent_key = make_server_cert(agent_ca)
    agent_files = (
        _write(tmp / "agent-key.pem", agent_key),
        _write(tmp / "agent-cert.pem", agent_cert),
    )
    agent_ca_file = _write(tmp / "agent-ca.pem", pem(agent_ca[0]))
    login_key, login_public = pki.ssh_keypair("agent@test")
    ssh_key_file = _write(tmp / "agent-ssh-key", login_key)
    authorized = _write(tmp / "authorized_keys", login_public + "\n")
    stored: dict[str, dict[str, str]] = {}
    real_keys: dict[str, str] = {}
    host_keys: dict[str, Path] = {}
    cas: dict[str, pki.CA] = {}
    nic_conf = ""
    agent = AgentProcess(tmp, "remote-agent", "")
    try:
        lab.add_fabric([])
        for nic in NICS:
            lab.add_nic(nic, list(range(100, 200)))
        for host, nic in NIC_OF.items():
            lab.add_host(host, nic, MACS[host], f"{IPS[host]}/24")
        for nic in NICS:
            nic_ca = cas[nic] = make_ca(f"{nic}-ca")
            cert, key = make_server_cert(nic_ca)
            ovsdb, openflow = lab.expose_over_ssl(
                nic,
                free_port(),
                _write(tmp / f"{nic}-key.pem", key),
                _write(tmp / f"{nic}-cert.pem", cert),
                agent_ca_file,
            )
            private, real_keys[nic] = pki.ssh_keypair(f"{nic}@test")
            host_keys[nic] = _write(tmp / f"{nic}-ssh-host-key", private)
            address, port, _boot = lab.serve_ssh(nic, host_keys[nic], authorized)
            stored[nic] = {
                "ovsdb_cert": cert,
                "ovsdb_ca_cert": pem(nic_ca[0]),
                "ssh_public_key": real_keys[nic],
            }
            if nic == "nic4":  # the port says nic4 is somebody else: a certificate from a rogue CA
                rogue = make_ca("rogue")
                stored[nic]["ovsdb_cert"] = make_server_cert(rogue)[0]
                stored[nic]["ovsdb_ca_cert"] = pem(rogue[0])
            if nic == "nic5":  # the port stores another host key than nic5's sshd has
                stored[nic]["ssh_public_key"] = ssh_public_key()
            flows = ", ".join(f'{b} = "{t}"' for b, t in openflow.items())
            nic_conf += (
                f'[nics.{nic}]\novsdb = "{ovsdb}"\nopenflow = {{ {flows} }}\n'
                f'bridge_mappings = {{ physnet1 = "br-phys" }}\nssh = "{address}:{port}"\n'
            )
        agent.path.write_text(
            f'server = "{server.url}"\nusername = "remote-agent"\n'
            f'password_file = "{tmp / "agent.password"}"\nmode = "remote"\n'
            f'datapath_type = "netdev"\nresync_interval = 1.0\nheartbeat_interval = 0.5\n'
            f'host = "agent-remote"\nprivate_key = "{agent_files[0]}"\n'
            f'certificate = "{agent_files[1]}"\nstate_dir = "{tmp / "agent-state"}"\n'
            f'ssh_private_key = "{ssh_key_file}"\n' + nic_conf
        )
        agent.start()
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            wait_until(lambda: "agent-remote" in alive_agents(c), 20, "remote agent alive")
            net = c.post("/network/v2.0/networks", json={"network": {"name": "remote-net"}})
            assert net.status_code == 201, net.text
        network = net.json()["network"]["id"]
        yield Remote(
            server, lab, agent, network, stored, host_keys, authorized, tmp, real_keys, cas
        )
    finally:
        agent.stop()
        lab.down()
        server.stop()


def _link(r: Remote, host: str, port_id: str | None = None) -> dict[str, str]:
    nic = NIC_OF[host]
    return {"hostname": nic, "port_id": port_id or r.lab.state.hosts[host].port_b, **r.stored[nic]}


def bind_remote(
    c: httpx.Client, r: Remote, host: str, port_id: str | None = None, mac: str | None = None
) -> str:
    made = c.post(
        "/network/v2.0/ports",
        json={
            "port": {
                "network_id": r.network,
                "mac_address": mac or MACS[host],
                "binding:vnic_type": "smart-nic",
                "binding:host_id": NIC_OF[host],
                "binding:profile": {"local_link_information": [_link(r, host, port_id)]},
                "port_security_enabled": False,
            }
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["port"]["id"])


def wait_status(c: httpx.Client, port: str, status: str, timeout: float = 20) -> str:
    """The port's reason once it has ``status`` (DOWN, a new port's status: with a reason)."""

    def reached() -> bool:
        now = port_status(c, port)
        return bool(now["status"] == status and (status != "DOWN" or _reason(now)))

    wait_until(reached, timeout, status, show=lambda: port_status(c, port))
    return _reason(port_status(c, port))


def _reason(port: dict[str, object]) -> str:
    details = port["binding:vif_details"]
    return str(details.get("reason", "")) if isinstance(details, dict) else ""


def nic3_bound(c: httpx.Client, r: Remote) -> list[str]:
    """h5 and h6 bound on nic3 and ACTIVE (bound by the first test that needs them)."""
    for host in ("h5", "h6"):
        if host not in r.bound:
            r.bound[host] = bind_remote(c, r, host)
    ports = [r.bound["h5"], r.bound["h6"]]
    for port in ports:
        wait_status(c, port, "ACTIVE")
    return ports


def agent_log(r: Remote) -> str:
    return r.agent.log.read_text(errors="replace")


def test_remote_nic_programmed_over_ssl(remote: Remote) -> None:
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        ports = nic3_bound(c, remote)
        bound = port_status(c, ports[0])
    assert bound["binding:vif_details"]["remote_nic"] is True
    wait_until(lambda: ping(remote.lab, "h5", IPS["h6"]), 10, "h5 reaches h6 on nic3")
    # What the agent did, it did over SSL: the NIC's own OVSDB shows the plugged port.
    port_b = remote.lab.state.hosts["h5"].port_b
    ids = remote.lab.ovs("nic3").vsctl("get", "Interface", port_b, "external_ids")
    assert ports[0] in ids


def test_netdevs_read_over_ssh_are_in_the_heartbeat(remote: Remote) -> None:
    port_b = remote.lab.state.hosts["h5"].port_b
    shown = netns.run(netns.in_ns(remote.lab.ns("nic3"), "ip", "-j", "link", "show", port_b))
    mac = json.loads(shown)[0]["address"]

    def netdevs() -> dict[str, str]:
        with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
            agents = c.get("/network/v2.0/agents").json()["agents"]
        me = next(a for a in agents if a["host"] == "agent-remote")
        return dict(me["configurations"].get("nic_netdevs", {}).get("nic3", {}))

    wait_until(lambda: netdevs().get(port_b) == mac, 20, "nic3's netdevs", show=netdevs)
    assert remote.lab.uplink("nic3") in netdevs()  # port C too: what the NIC has, not guessed


def test_binding_to_a_representor_the_nic_lacks_is_refused(remote: Remote) -> None:
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        nic3_bound(c, remote)
        port = bind_remote(c, remote, "h6", port_id="ssk-nope", mac="52:54:00:81:00:99")
        reason = wait_status(c, port, "ERROR")
        assert "nic3 has no representor ssk-nope" in reason, reason
        assert remote.lab.state.hosts["h5"].port_b in reason  # what it has instead
        assert c.delete(f"/network/v2.0/ports/{port}").status_code == 204
    assert "ssk-nope" not in remote.lab.ovs("nic3").vsctl("list-ports", "br-int")


def test_nic_with_another_certificate_is_refused(remote: Remote) -> None:
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        port = bind_remote(c, remote, "h7")
        reason = wait_status(c, port, "ERROR")
    assert "nic4" in reason and "not issued by the CA stored on the bare-metal port" in reason
    # Nothing was done on nic4: port B never reached its integration bridge.
    assert remote.lab.state.hosts["h7"].port_b not in remote.lab.ovs("nic4").vsctl(
        "list-ports", "br-int"
    )


def test_nic_with_another_host_key_is_untrusted_until_the_port_is_corrected(
    remote: Remote,
) -> None:
    wrong = pki_fingerprint(remote.stored["nic5"]["ssh_public_key"])
    real = pki_fingerprint(remote.real_keys["nic5"])
    port_b = remote.lab.state.hosts["h8"].port_b
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        port = bind_remote(c, remote, "h8")
        reason = wait_status(c, port, "DOWN")
        wait_until(lambda: "nic5" in agent_log(remote) and real in agent_log(remote), 10, "log")
        assert f"presents host key ssh-ed25519 {real}" in reason, reason
        assert f"stores ssh-ed25519 {wrong}" in reason, reason
        assert "PRIVATE" not in reason and "PRIVATE" not in agent_log(remote)
        # Untrusted: nothing was changed on nic5.
        assert port_b not in remote.lab.ovs("nic5").vsctl("list-ports", "br-int")
        time.sleep(1.5)  # a pass or two later: still DOWN (not ACTIVE), still untouched
        assert port_status(c, port)["status"] == "DOWN"
        assert port_b not in remote.lab.ovs("nic5").vsctl("list-ports", "br-int")
        # The port's key corrected: proven, programmed, ACTIVE.
        corrected = {**_link(remote, "h8"), "ssh_public_key": remote.real_keys["nic5"]}
        r = c.put(
            f"/network/v2.0/ports/{port}",
            json={"port": {"binding:profile": {"local_link_information": [corrected]}}},
        )
        assert r.status_code == 200, r.text
        wait_status(c, port, "ACTIVE")
    assert port_b in remote.lab.ovs("nic5").vsctl("list-ports", "br-int")


def test_nic_reboot_is_proven_again(remote: Remote) -> None:
    """A new boot id makes the agent prove the NIC at once (not REPROVE_AFTER later): a
    NIC that came back with another certificate of its CA (every tool run accepts it, only
    the exact stored one is proof) is refused, and taken again when it is itself."""
    nic3 = remote.lab.ovs("nic3")
    other_cert, other_key = make_server_cert(remote.cas["nic3"])
    original = (remote.tmp / "nic3-key.pem", remote.tmp / "nic3-cert.pem")
    other = (_write(remote.tmp / "nic3-o-key.pem", other_key),
             _write(remote.tmp / "nic3-o-cert.pem", other_cert))  # fmt: skip
    trust = str(remote.tmp / "agent-ca.pem")
    boot_id = nic3.dir / "boot_id"
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        ports = nic3_bound(c, remote)
        reboots = agent_log(remote).count("NIC nic3 rebooted")
        nic3.vsctl("set-ssl", str(other[0]), str(other[1]), trust)
        time.sleep(1.5)  # passes go on (resync 1 s): without a reboot nothing is proven anew
        assert port_status(c, ports[0])["status"] == "ACTIVE"
        sshd.reboot(boot_id)
        reason = wait_status(c, ports[0], "ERROR", timeout=10)
        assert "NIC nic3" in reason and "certificate other than the one stored" in reason, reason
        assert agent_log(remote).count("NIC nic3 rebooted") == reboots + 1
        # Back with its own identity, rebooted again: proven and programmed again.
        nic3.vsctl("set-ssl", str(original[0]), str(original[1]), trust)
        sshd.reboot(boot_id)
        for port in ports:
            wait_status(c, port, "ACTIVE")
    wait_until(lambda: ping(remote.lab, "h5", IPS["h6"]), 10, "h5 reaches h6 again")


def test_ssh_server_down_is_reported_and_recovered(remote: Remote) -> None:
    nic3 = remote.lab.ovs("nic3")
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        ports = nic3_bound(c, remote)
        sshd.stop(nic3.dir)
        reason = wait_status(c, ports[0], "ERROR")
        assert "cannot reach the SSH server at root@" in reason, reason
        # What was programmed stays (nothing is changed on a NIC that cannot be read).
        assert ping(remote.lab, "h5", IPS["h6"])
        remote.lab.serve_ssh("nic3", remote.host_keys["nic3"], remote.authorized)
        for port in ports:
            wait_status(c, port, "ACTIVE")


def pki_fingerprint(public_key: str) -> str:
    """The SHA256 fingerprint of an OpenSSH public key, as ``ssh-keygen -l`` prints it."""
    out = netns.run(["ssh-keygen", "-l", "-f", "/dev/stdin"], stdin=public_key + "\n")
    return out.split()[1]
