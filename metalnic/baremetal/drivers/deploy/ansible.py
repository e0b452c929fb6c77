"""The ``ansible`` deploy interface: the conductor runs playbooks against the ramdisk.

As Ironic's ansible deploy does: the deploy ramdisk starts an SSH server that
admits the conductor's key, which the boot interface puts on the ramdisk's kernel
command line (``metalnic.sshkey=<type>:<base64>``; a public key, so nothing secret
is served).  To write the image the conductor runs ``playbooks/deploy.yaml`` with
ansible-core (download into the ramdisk's memory, verify the sha256, write, read
back and verify, write the config drive, prepare the boot); to clean,
``playbooks/clean.yaml`` (erase the disk's metadata and the config drive).  Each
task's outcome becomes a line of the node's history through the
``metalnic_history`` callback (``playbooks/callback_plugins``).

Where metalnic differs from Ironic's:

* The tasks are ``raw`` and ``script``: the ramdisk carries busybox and a shell but
  no Python modules for Ansible (Ironic's ramdisk carries a full Python).
* The ramdisk's SSH host key is pinned, not ignored: the agent reports its public
  host key with its disk paths (``system.describe``, over the callback URL the
  ramdisk heartbeats with and that was admitted with its agent token), and
  ``ssh`` runs with ``StrictHostKeyChecking=yes`` against a known_hosts file made
  for this run only.  Ironic's playbooks run with host key checking off.
* The key pair and the SSH user are the conductor's settings (``ansible_key_file``,
  ``ansible_username``), not ``driver_info``: a node's owner must not be able to
  point the conductor at a file on the conductor's disk.
* Everything Ansible reads is made for the run in a private directory: its
  configuration (the operator's ``~/.ansible.cfg`` does not apply), the inventory,
  the variables, the known_hosts file and SSH's control sockets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from metalnic.baremetal.drivers.base import (
    DeployInterface,
    DriverConfigError,
    DriverError,
    NodeContext,
    Say,
    say_nothing,
)
from metalnic.baremetal.drivers.deploy import agent_client, images, reported
from metalnic.jsontypes import JSONObject

PLAYBOOKS = Path(__file__).with_name("playbooks")
WORK = "/tmp/metalnic-deploy"  # the scratch directory in the ramdisk's memory
KERNEL_PARAM = "metalnic.sshkey"


@dataclass(frozen=True)
class AnsibleConfig:
    key_file: Path  # the conductor's private key (OpenSSH format); made on first use
    username: str = "root"
    timeout: float = 1800.0  # seconds for one playbook run


_key_lock = threading.Lock()


def conductor_public_key(key_file: Path) -> str:
    """The OpenSSH public key of ``key_file`` ("ssh-ed25519 AAAA…"), making an
    ed25519 key pair there first when there is none (mode 0600, its directory 0700)."""
    public = key_file.with_name(key_file.name + ".pub")
    with _key_lock:
        if not key_file.exists():
            key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = ed25519.Ed25519PrivateKey.generate()
            private = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(private)
            public.unlink(missing_ok=True)
        if not public.exists():
            try:
                loaded = serialization.load_ssh_private_key(key_file.read_bytes(), None)
            except (ValueError, TypeError) as exc:
                raise DriverConfigError(
                    f"ansible_key_file {key_file} is not an unencrypted OpenSSH private key"
                ) from exc
            line = loaded.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            public.write_text(line.decode() + " metalnic-conductor\n")
    return " ".join(public.read_text().split()[:2])


def kernel_param(public_key: str) -> str:
    """``metalnic.sshkey=<type>:<base64>``: one kernel parameter, no spaces."""
    kind, _, blob = public_key.partition(" ")
    return f"{KERNEL_PARAM}={kind}:{blob}"


def ansible_playbook() -> str | None:
    """The ansible-playbook installed with metalnic (next to this Python), else on PATH."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


def stage_script(image_url: str, drive: bytes | None) -> str:
    """The script that writes the image's URL and the config drive into the ramdisk's
    scratch directory (a file Ansible copies over, so neither is on a command line)."""
    lines = [
        "#!/bin/sh",
        "# Written by metalnic's conductor for one deploy; Ansible removes it after the run.",
        "set -e",
        f"rm -rf {WORK}",
        f"mkdir -p {WORK}",
        f"chmod 700 {WORK}",
        f"printf '%s' {shlex.quote(image_url)} > {WORK}/url",
    ]
    if drive is not None:
        encoded = base64.encodebytes(drive).decode()
        lines += [
            f"base64 -d > {WORK}/drive <<'METALNIC_DRIVE'",
            encoded.rstrip("\n"),
            "METALNIC_DRIVE",
        ]
    lines.append('echo "staged: image URL' + (" and config drive" if drive else "") + '"')
    return "\n".join(lines) + "\n"


class AnsibleDeploy(DeployInterface):
    uses_agent = True

    def __init__(self, config: AnsibleConfig | None) -> None:
        self.config = config

    def _config(self) -> AnsibleConfig:
        if self.config is None:
            raise DriverConfigError("the ansible deploy interface is not configured on this server")
        return self.config

    def validate(self, ctx: NodeContext) -> None:
        images.validate_image_info(ctx, "ansible")
        url = str(ctx.instance_info["image_source"])
        if urlsplit(url).scheme not in ("http", "https") or any(c.isspace() for c in url):
            raise DriverConfigError(
                "the ansible deploy downloads images over http or https only "
                "(instance_info.image_source)"
            )
        self._config()
        if ansible_playbook() is None:
            raise DriverConfigError("the ansible deploy needs ansible-playbook on the conductor")
        if shutil.which("ssh") is None:
            raise DriverConfigError("the ansible deploy needs ssh (OpenSSH) on the conductor")

    def ramdisk_params(self, ctx: NodeContext) -> tuple[str, ...]:
        return (kernel_param(conductor_public_key(self._config().key_file)),)

    def write_image(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        drive = images.configdrive_bytes(ctx.instance_info.get("configdrive"))
        url = str(ctx.instance_info["image_source"])
        variables: JSONObject = {"metalnic_image_sha256": images.sha256(ctx), "metalnic_work": WORK}
        self._run("deploy.yaml", ctx, agent_url, variables, say, stage_script(url, drive))

    def clean_disk(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        self._run("clean.yaml", ctx, agent_url, {}, say)

    def _run(
        self,
        playbook: str,
        ctx: NodeContext,
        agent_url: str,
        variables: JSONObject,
        say: Say,
        stage: str | None = None,
    ) -> None:
        config = self._config()
        conductor_public_key(config.key_file)  # the pair exists (the ramdisk has its half)
        described = agent_client.run_command(
            agent_url, "system.describe", {}, agent_client.token_of(ctx)
        )
        ssh = described.get("ssh")
        if not isinstance(ssh, dict) or not ssh.get("host_key") or not ssh.get("port"):
            raise DriverError(
                "the ramdisk runs no SSH server for the ansible deploy (its agent reports "
                "none: was it booted with the conductor's key, metalnic.sshkey=?)"
            )
        # Ansible templates its inventory and variables: only plain values (reported.py).
        host = reported.agent_host(agent_url)
        port = reported.port(ssh["port"], "SSH port")
        with tempfile.TemporaryDirectory(prefix="metalnic-ansible-") as scratch_dir:
            scratch = Path(scratch_dir)
            key = reported.plain(ssh["host_key"], reported.HOST_KEY, "SSH host key")
            run = _Run(scratch, config, host, port, key)
            all_vars: JSONObject = {
                **variables,
                "metalnic_disk": reported.plain(described.get("disk"), reported.PATH, "disk"),
                "metalnic_config_drive": reported.plain(
                    described.get("config_drive"), reported.PATH, "config drive"
                ),
            }
            if stage is not None:
                script = scratch / "stage.sh"
                script.write_text(stage)
                script.chmod(0o700)
                all_vars["metalnic_stage_script"] = str(script)
            run.write(ctx.uuid, all_vars)
            say(f"ansible: running {playbook} against the ramdisk at {host} port {port}")
            run.play(PLAYBOOKS / playbook, say)


class _Run:
    """One ansible-playbook run and the private files it reads."""

    def __init__(self, scratch: Path, config: AnsibleConfig, host: str, port: int, key: str):
        self.scratch, self.config, self.host, self.port, self.key = scratch, config, host, port, key

    def write(self, node: str, variables: JSONObject) -> None:
        known = f"[{self.host}]:{self.port}" if self.port != 22 else self.host
        (self.scratch / "known_hosts").write_text(f"{known} {self.key}\n")
        ssh_args = " ".join(
            f"-o {option}"
            for option in (
                f"UserKnownHostsFile={self.scratch / 'known_hosts'}",
                "GlobalKnownHostsFile=/dev/null",
                "StrictHostKeyChecking=yes",
                "IdentitiesOnly=yes",
                "BatchMode=yes",
                "ConnectTimeout=20",
                "ServerAliveInterval=15",
                "ControlMaster=auto",
                "ControlPersist=30s",
            )
        )
        inventory = {
            "ramdisk": {
                "hosts": {
                    node: {
                        "ansible_connection": "ssh",
                        "ansible_host": self.host,
                        "ansible_port": self.port,
                        "ansible_user": self.config.username,
                        "ansible_ssh_private_key_file": str(self.config.key_file),
                    }
                }
            }
        }
        (self.scratch / "inventory.json").write_text(json.dumps(inventory))
        (self.scratch / "vars.json").write_text(json.dumps(variables))
        (self.scratch / "ansible.cfg").write_text(
            "[defaults]\n"
            "stdout_callback = metalnic_history\n"
            f"callback_plugins = {PLAYBOOKS / 'callback_plugins'}\n"
            "retry_files_enabled = False\n"
            "host_key_checking = True\n"
            "forks = 1\n"
            f"local_tmp = {self.scratch / 'local'}\n"
            f"remote_tmp = {WORK}-ansible\n"
            "[ssh_connection]\n"
            f"ssh_args = {ssh_args}\n"
            f"control_path_dir = {self.scratch / 'cp'}\n"
            "transfer_method = piped\n"
            "retries = 0\n"
        )

    def env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "TZ")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            ANSIBLE_CONFIG=str(self.scratch / "ansible.cfg"),
            ANSIBLE_HOME=str(self.scratch / "home"),
            HOME=str(self.scratch / "home"),
            ANSIBLE_NOCOLOR="1",
            LC_ALL="C.UTF-8",
        )
        return env

    def play(self, playbook: Path, say: Say) -> None:
        command = [
            ansible_playbook() or "ansible-playbook",
            "-i", str(self.scratch / "inventory.json"),
            "-e", f"@{self.scratch / 'vars.json'}",
            str(playbook),
        ]  # fmt: skip
        errors = (self.scratch / "stderr").open("w+")
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, env=self.env(),
            cwd=self.scratch, start_new_session=True,
        )  # fmt: skip
        timer = threading.Timer(self.config.timeout, _kill, (proc,))
        timer.start()
        failure: str | None = None
        done = False
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                outcome = _outcome(line)
                if outcome is None:
                    continue
                if outcome.get("status") == "done":
                    done = True
                    continue
                message = _history_line(outcome)
                say(message)
                if outcome.get("status") in ("failed", "unreachable") and failure is None:
                    failure = message
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                _kill(proc)
                proc.wait()
            errors.seek(0)
            tail = [line.strip() for line in errors.read().splitlines() if line.strip()]
            errors.close()
        if failure is not None:
            raise DriverError(f"the ansible deploy failed: {failure.removeprefix('ansible: ')}")
        if proc.returncode != 0 or not done:
            if proc.returncode == -signal.SIGKILL:
                raise DriverError(
                    f"the ansible playbook took longer than {self.config.timeout:.0f} s"
                )
            detail = tail[-1][:200] if tail else f"exit status {proc.returncode}"
            raise DriverError(f"ansible-playbook {playbook.name} failed: {detail}")


def _kill(proc: subprocess.Popen[str]) -> None:
    """End ansible-playbook and its ssh children (their own process group)."""
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(proc.pid, signal.SIGKILL)


def _outcome(line: str) -> JSONObject | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _history_line(outcome: JSONObject) -> str:
    status = str(outcome.get("status"))
    seconds = outcome.get("seconds")
    took = f" ({seconds:.1f} s)" if isinstance(seconds, int | float) else ""
    detail = str(outcome.get("detail") or "")
    if status == "ok" or status == "skipped":
        return f"ansible: {outcome.get('task')}: {status}{took}"
    reason = f": {detail}" if detail else ""
    return f"ansible: {outcome.get('task')}: {status.upper()}{took}{reason}"
