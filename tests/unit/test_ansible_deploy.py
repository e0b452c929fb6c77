"""The ansible deploy's parts without SSH: the conductor's key pair, the kernel
parameter that carries its public half, the staging script (run by busybox's sh),
the history lines of the callback, the agent's ``system.describe`` and the iPXE
script's extra kernel parameters (the end to end run: tests/integration)."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from metalnic.baremetal.drivers.base import (
    DriverConfigError,
    DriverError,
    NetworkPhase,
    NodeContext,
)
from metalnic.baremetal.drivers.boot import scripts
from metalnic.baremetal.drivers.deploy import ansible, images, reported
from metalnic.baremetal.drivers.deploy.playbooks.callback_plugins import metalnic_history
from metalnic.ramdisk import agent
from tests.unit.test_ipxe_boot import files


def test_the_key_pair_is_made_once_private_and_its_public_half_parses(tmp_path: Path) -> None:
    key = tmp_path / "ansible" / "id_ed25519"
    public = ansible.conductor_public_key(key)
    assert public.startswith("ssh-ed25519 ") and len(public.split()) == 2
    load_ssh_public_key(public.encode())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert b"OPENSSH PRIVATE KEY" in key.read_bytes()
    assert ansible.conductor_public_key(key) == public  # not made again
    key.with_name("id_ed25519.pub").unlink()  # an operator's key without its .pub
    assert ansible.conductor_public_key(key) == public


def test_a_key_file_that_is_no_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("not a key\n")
    with pytest.raises(ansible.DriverConfigError, match="not an unencrypted OpenSSH private key"):
        ansible.conductor_public_key(key)


def test_the_kernel_parameter_is_one_word_the_ramdisk_turns_back_into_the_key() -> None:
    param = ansible.kernel_param("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample")
    assert param == "metalnic.sshkey=ssh-ed25519:AAAAC3NzaC1lZDI1NTE5AAAAIExample"
    assert " " not in param


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox")
@pytest.mark.parametrize("drive", [None, b"{}" + b"\0" * 4096, bytes(range(256)) * 300])
def test_the_stage_script_writes_the_url_and_the_drive_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drive: bytes | None
) -> None:
    work = tmp_path / "work"
    monkeypatch.setattr(ansible, "WORK", str(work))
    url = "http://images.example/it's $(not) run `here`.img?a=1&b=2"
    script = tmp_path / "stage.sh"
    script.write_text(ansible.stage_script(url, drive))
    done = subprocess.run(["busybox", "sh", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (work / "url").read_text() == url
    if drive is None:
        assert not (work / "drive").exists()
        assert done.stdout.strip() == "staged: image URL"
    else:
        assert (work / "drive").read_bytes() == drive
        assert done.stdout.strip() == "staged: image URL and config drive"
    assert stat.S_IMODE(work.stat().st_mode) == 0o700


def test_the_callback_reports_the_last_line_a_task_printed() -> None:
    last = metalnic_history.last_line
    assert last({"stdout": "one\r\ntwo\r\n", "stderr": "Shared connection to x closed.\r\n"}) == (
        "two"
    )
    assert last({"stdout": "", "stderr": "boom\n", "msg": "non-zero return code"}) == "boom"
    assert last({"msg": "Failed to connect to the host via ssh"}) == (
        "Failed to connect to the host via ssh"
    )
    assert last({"stdout": "x" * 500}) == "x" * metalnic_history.DETAIL_LIMIT
    assert last({}) == ""


def test_the_callback_prints_one_json_line_per_outcome(
    capsys: pytest.CaptureFixture[str],
) -> None:
    callback = metalnic_history.CallbackModule()
    task = SimpleNamespace(get_name=lambda: "write the image to the disk")
    callback.v2_playbook_on_task_start(task, False)
    callback.v2_runner_on_ok(SimpleNamespace(_task=task, _result={"stdout": "ok\n"}))
    callback.v2_runner_on_failed(SimpleNamespace(_task=task, _result={"stdout": "no room\n"}))
    callback.v2_playbook_on_stats(None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r.get("task"), r["status"], r.get("detail")) for r in lines] == [
        ("write the image to the disk", "ok", "ok"),
        ("write the image to the disk", "failed", "no room"),
        (None, "done", None),
    ]
    assert lines[-1]["failed"] == 1


def test_history_lines_say_the_task_its_outcome_and_why_it_failed() -> None:
    line = ansible._history_line
    assert line({"task": "t", "status": "ok", "seconds": 0.25}) == "ansible: t: ok (0.2 s)"
    assert line({"task": "t", "status": "failed", "seconds": 1, "detail": "no"}) == (
        "ansible: t: FAILED (1.0 s): no"
    )
    assert line({"task": "t", "status": "unreachable"}) == "ansible: t: UNREACHABLE"


def test_describe_reports_the_ssh_server_only_when_the_ramdisk_runs_one(tmp_path: Path) -> None:
    plain = agent.Storage(tmp_path / "disk", tmp_path / "drive")
    assert agent.describe(plain, {}) == {
        "disk": str(tmp_path / "disk"),
        "config_drive": str(tmp_path / "drive"),
        "ssh": None,
    }
    key = tmp_path / "host.pub"
    key.write_text("ssh-ed25519 AAAAkey root@ramdisk\n")
    with_ssh = agent.Storage(tmp_path / "disk", tmp_path / "drive", ssh_port=22, ssh_host_key=key)
    assert agent.describe(with_ssh, {})["ssh"] == {"port": 22, "host_key": "ssh-ed25519 AAAAkey"}
    key.write_text("")
    with pytest.raises(agent.CommandFailed, match="holds no public key"):
        agent.describe(with_ssh, {})


def test_the_deploy_interfaces_kernel_parameters_reach_the_ipxe_script() -> None:
    param = "metalnic.sshkey=ssh-ed25519:AAAA"
    text = scripts.node_script(files(), "n", NetworkPhase.PROVISIONING, (param,))
    kernel = next(line for line in text.splitlines() if line.startswith("kernel "))
    assert param in kernel.split()
    for bad in ("a b", "x=${mac}", ""):
        with pytest.raises(ValueError, match="no spaces or iPXE expansions"):
            scripts.node_script(files(), "n", NetworkPhase.PROVISIONING, (bad,))


TEMPLATED = "{{ lookup('pipe', 'id') }}"  # Ansible would run this on the conductor


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (TEMPLATED, reported.PATH),
        ("/dev/vda{{ 7*7 }}", reported.PATH),
        ("/dev/vda{% raw %}", reported.PATH),
        ("/dev/vda\n- hosts: all", reported.PATH),
        ("/dev/vd a", reported.PATH),
        ("dev/vda", reported.PATH),
        ("/dev/vda'", reported.PATH),
        ("/dev/vda,file.driver=file", reported.PATH),
        (None, reported.PATH),
        ("10.0.0.1{{x}}", reported.HOST),
        ("10.0.0.1,file.filename=/etc/shadow", reported.HOST),
        ("10.0.0.1 -oProxyCommand=id", reported.HOST),
        ("ssh-ed25519 AAAA\n* ssh-ed25519 BBBB", reported.HOST_KEY),
        ("ssh-ed25519 {{ x }}", reported.HOST_KEY),
        ("ssh-dss AAAA", reported.HOST_KEY),
    ],
)
def test_what_the_ramdisk_reports_must_be_plain_before_another_program_sees_it(
    value: object, pattern: re.Pattern[str]
) -> None:
    with pytest.raises(DriverError, match="reported an unusable"):
        reported.plain(value, pattern, "thing")


@pytest.mark.parametrize("value", [0, 65536, "22 ", "3260,file.driver=file", True, None, 22.0])
def test_a_reported_port_is_a_port_number(value: object) -> None:
    with pytest.raises(DriverError, match="reported an unusable"):
        reported.port(value, "port")


def test_plain_reports_pass_unchanged() -> None:
    assert reported.plain("/dev/vda", reported.PATH, "disk") == "/dev/vda"
    assert reported.plain("/tmp/x/disk.config-2", reported.PATH, "drive")
    assert reported.agent_host("http://[fe80::1]:9999") == "fe80::1"
    assert reported.agent_host("http://10.96.0.118:9999") == "10.96.0.118"
    assert reported.port("2222", "port") == 2222 and reported.port(3260, "port") == 3260
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdGFyZWFsa2V5bm90YXJlYWxrZXlub3Q="
    assert reported.plain(key, reported.HOST_KEY, "key") == key
    with pytest.raises(DriverError, match="host in its callback URL"):
        reported.agent_host("http://10.0.0.1,file.filename=x:9999/")


@pytest.mark.parametrize("value", [TEMPLATED, "0" * 63, "g" * 64, 7, "0" * 64 + " "])
def test_the_image_checksum_must_be_a_sha256_before_any_deploy_uses_it(value: object) -> None:
    ctx = NodeContext(
        uuid="u", name=None, driver="fake-hardware", driver_info={},
        instance_info={"image_source": "http://x/i.img", "image_os_hash_value": value},
    )  # fmt: skip
    with pytest.raises(DriverConfigError, match="must be a sha256"):
        images.validate_image_info(ctx, "ansible")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://10.0.0.1/",
        "http://10.0.0.1,file.filename=x:9999/",
        "http://{{ lookup('pipe','id') }}:9999/",
        "http://10.0.0.1:99999/",
        "http://10.0.0.1:ab/",
        "http:///x",
        "http://-oProxyCommand:9999/",
        "http://10.0.0.1:9999/x\nforged history line",
        "http://10.0.0.1:9999/\x1b[2J",
        7,
    ],
)
def test_a_callback_url_must_be_plain_http(url: object) -> None:
    with pytest.raises(DriverError, match="unusable"):
        reported.callback_url(url)
    assert reported.callback_url("http://10.96.0.5:9999") == "http://10.96.0.5:9999"
    assert reported.callback_url("https://[fe80::1]/")
