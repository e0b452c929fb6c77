"""Remote mode: one agent process programs two NICs over OVSDB-SSL and OpenFlow-SSL,
trusting only the certificates stored on their bare-metal ports.

nic3 stores its real certificate and CA: its hosts talk.  nic4's port stores a
certificate from another CA: the agent refuses to touch nic4 and says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from metalnic.lab.datacentre import write_secret
from metalnic.lab.scenario import alive_agents
from metalnic.lab.topology import Lab
from tests.ovslab import (
    AgentProcess,
    new_lab,
    ping,
    port_status,
    require_ovs,
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
IPS = {"h5": "10.78.0.5", "h6": "10.78.0.6", "h7": "10.78.0.7"}
MACS = {"h5": "52:54:00:78:00:05", "h6": "52:54:00:78:00:06", "h7": "52:54:00:78:00:07"}
NIC_OF = {"h5": "nic3", "h6": "nic3", "h7": "nic4"}


@dataclass
class Remote:
    server: Server
    lab: Lab
    agent: AgentProcess
    network: str
    stored: dict[str, dict[str, str]]  # NIC → the llc keys its bare-metal ports store


def _write(path: Path, text: str) -> Path:
    write_secret(path, text)
    return path


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    require_ovs()
    tmp = tmp_path_factory.mktemp("remote")
    server, _password = start_agent_server(
        tmp, ADMIN, ("remote-agent", "agent-secret-8"), nic_hosts=("nic3", "nic4")
    )
    lab = new_lab("rm")
    agent_ca = make_ca("agents")
    agent_cert, agent_key = make_server_cert(agent_ca)
    agent_files = (
        _write(tmp / "agent-key.pem", agent_key),
        _write(tmp / "agent-cert.pem", agent_cert),
    )
    agent_ca_file = _write(tmp / "agent-ca.pem", pem(agent_ca[0]))
    stored: dict[str, dict[str, str]] = {}
    nic_conf = ""
    agent = AgentProcess(tmp, "remote-agent", "")
    try:
        lab.add_fabric([])
        for nic in ("nic3", "nic4"):
            lab.add_nic(nic, list(range(100, 200)))
        for host, nic in NIC_OF.items():
            lab.add_host(host, nic, MACS[host], f"{IPS[host]}/24")
        for nic in ("nic3", "nic4"):
            nic_ca = make_ca(f"{nic}-ca")
            cert, key = make_server_cert(nic_ca)
            ovsdb, openflow = lab.expose_over_ssl(
                nic,
                free_port(),
                _write(tmp / f"{nic}-key.pem", key),
                _write(tmp / f"{nic}-cert.pem", cert),
                agent_ca_file,
            )
            if nic == "nic3":
                stored[nic] = {"ovsdb_cert": cert, "ovsdb_ca_cert": pem(nic_ca[0])}
            else:  # the port says nic4 is somebody else: a certificate from a rogue CA
                rogue = make_ca("rogue")
                stored[nic] = {
                    "ovsdb_cert": make_server_cert(rogue)[0],
                    "ovsdb_ca_cert": pem(rogue[0]),
                }
            flows = ", ".join(f'{b} = "{t}"' for b, t in openflow.items())
            nic_conf += (
                f'[nics.{nic}]\novsdb = "{ovsdb}"\nopenflow = {{ {flows} }}\n'
                'bridge_mappings = { physnet1 = "br-phys" }\n'
            )
        agent.path.write_text(
            f'server = "{server.url}"\nusername = "remote-agent"\n'
            f'password_file = "{tmp / "agent.password"}"\nmode = "remote"\n'
            f'datapath_type = "netdev"\nresync_interval = 1.0\nheartbeat_interval = 0.5\n'
            f'host = "agent-remote"\nprivate_key = "{agent_files[0]}"\n'
            f'certificate = "{agent_files[1]}"\nstate_dir = "{tmp / "agent-state"}"\n' + nic_conf
        )
        agent.start()
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            wait_until(lambda: "agent-remote" in alive_agents(c), 20, "remote agent alive")
            net = c.post("/network/v2.0/networks", json={"network": {"name": "remote-net"}})
            assert net.status_code == 201, net.text
        yield Remote(server, lab, agent, net.json()["network"]["id"], stored)
    finally:
        agent.stop()
        lab.down()
        server.stop()


def bind_remote(c: httpx.Client, r: Remote, host: str) -> str:
    nic = NIC_OF[host]
    link = {
        "hostname": nic,
        "port_id": r.lab.state.hosts[host].port_b,
        "ssh_public_key": ssh_public_key(),
        **r.stored[nic],
    }
    made = c.post(
        "/network/v2.0/ports",
        json={
            "port": {
                "network_id": r.network,
                "mac_address": MACS[host],
                "binding:vnic_type": "smart-nic",
                "binding:host_id": nic,
                "binding:profile": {"local_link_information": [link]},
                "port_security_enabled": False,
            }
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["port"]["id"])


def test_remote_nic_programmed_over_ssl(remote: Remote) -> None:
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        ports = [bind_remote(c, remote, h) for h in ("h5", "h6")]
        for port in ports:
            wait_until(
                lambda p=port: port_status(c, p)["status"] == "ACTIVE",
                20,
                "ACTIVE",
                show=lambda p=port: port_status(c, p),
            )
        bound = port_status(c, ports[0])
    assert bound["binding:vif_details"]["remote_nic"] is True
    wait_until(lambda: ping(remote.lab, "h5", IPS["h6"]), 10, "h5 reaches h6 on nic3")
    # What the agent did, it did over SSL: the NIC's own OVSDB shows the plugged port.
    port_b = remote.lab.state.hosts["h5"].port_b
    ids = remote.lab.ovs("nic3").vsctl("get", "Interface", port_b, "external_ids")
    assert ports[0] in ids


def test_nic_with_another_certificate_is_refused(remote: Remote) -> None:
    with httpx.Client(base_url=remote.server.url, auth=ADMIN, timeout=30) as c:
        port = bind_remote(c, remote, "h7")
        wait_until(
            lambda: port_status(c, port)["status"] == "ERROR",
            20,
            "refused",
            show=lambda: port_status(c, port),
        )
        reason = port_status(c, port)["binding:vif_details"]["reason"]
    assert "nic4" in reason and "not issued by the CA stored on the bare-metal port" in reason
    # Nothing was done on nic4: port B never reached its integration bridge.
    assert remote.lab.state.hosts["h7"].port_b not in remote.lab.ovs("nic4").vsctl(
        "list-ports", "br-int"
    )
