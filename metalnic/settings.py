"""Process settings, read once from arguments and ``METALNIC_*`` variables.

A ``Settings`` object is built by the CLI and handed to whatever needs it;
nothing reads configuration from module globals.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AuthStrategy = Literal["noauth", "http_basic"]

DEFAULT_STATE_DIR = Path("/var/lib/metalnic")


def default_database_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'metalnic.sqlite'}"


class Settings(BaseSettings):
    """Everything the server needs to start."""

    model_config = SettingsConfigDict(env_prefix="METALNIC_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=6385, ge=0, le=65535)
    state_dir: Path = Path("./metalnic-state")
    database_url: str = ""
    auth: AuthStrategy = "noauth"
    users_file: Path | None = None
    # Serve HTTPS with this certificate chain and key (PEM); plain HTTP when unset.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # The oldest TLS version the server speaks.
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    # Failed logins allowed per user name / per client address before each back-off
    # (doubling from 1 s up to login_backoff_max seconds) refuses their bcrypt checks.
    login_user_failures: int = Field(default=5, ge=1)
    login_source_failures: int = Field(default=20, ge=1)
    login_backoff_max: float = Field(default=60.0, gt=0)
    # The same ceiling oslo.middleware's sizelimit applies in front of Ironic.
    max_request_body_size: int = Field(default=114_688, gt=0)
    # Ironic caps list pages at 1000 items by default.
    max_page_size: int = Field(default=1000, gt=0)
    # Conductor.
    conductor_workers: int = Field(default=8, gt=0)
    periodic_interval: float = Field(default=10.0, gt=0)
    power_timeout: float = Field(default=120.0, gt=0)
    # A flow's BMC step that fails retryably (unreachable, timed out, busy) is tried
    # again this many times, this many seconds apart (conductor/bmc.py).
    bmc_retries: int = Field(default=3, ge=0, le=100)
    bmc_retry_interval: float = Field(default=2.0, ge=0, le=600)
    deploy_callback_timeout: float = Field(default=1800.0, gt=0)
    # Ironic's [conductor]rescue_callback_timeout: how long "rescue wait" waits for the agent.
    rescue_callback_timeout: float = Field(default=1800.0, gt=0)
    conductor_dead_after: float = Field(default=60.0, gt=0)
    # Network service.
    # "physnet:first:last" VLAN ranges tenant networks are allocated from.
    network_vlan_ranges: list[str] = Field(default_factory=lambda: ["physnet1:100:199"])
    agent_down_time: float = Field(default=15.0, gt=0)
    # Neutron's max_allowed_address_pair: more on one port is a 400.
    max_allowed_address_pair: int = Field(default=10, ge=0)
    # The longest an agent's desired-state long poll is held open (its ``wait`` is capped).
    agent_poll_max_wait: float = Field(default=60.0, gt=0)
    # Ironic's [neutron]dhcpv6_stateful_address_count: the addresses a phase port gets
    # on each dhcpv6-stateful subnet (firmware, iPXE and the ramdisk each ask with a
    # DHCPv6 identity of their own, and one address is leased to one identity).
    dhcpv6_stateful_address_count: int = Field(default=4, ge=1, le=64)
    # How long the bare-metal side waits for a smart NIC port to be plugged/unplugged.
    port_active_timeout: float = Field(default=60.0, gt=0)
    port_removed_timeout: float = Field(default=60.0, gt=0)
    # Which network service the bare-metal side uses: the embedded one, or any
    # Neutron-compatible endpoint through openstacksdk.
    network_client: Literal["embedded", "neutron"] = "embedded"
    neutron_endpoint: str = ""
    neutron_username: str | None = None
    neutron_password: str | None = None
    neutron_cacert: str | None = None
    # Networks (names or ids) the smartnic interface puts hosts on while provisioning.
    provisioning_network: str = "provisioning"
    cleaning_network: str = "provisioning"
    rescuing_network: str = "provisioning"
    # Security group ids for the ports on those networks (Ironic's option names).
    # Empty: port security is off there — the ramdisk must take the conductor's
    # calls, and the default group admits only its members.
    provisioning_network_security_groups: list[str] = []
    cleaning_network_security_groups: list[str] = []
    rescuing_network_security_groups: list[str] = []
    # The ipxe boot interface (Ironic's [deploy]http_url/http_root and [pxe] options).
    # Where hosts reach this server's /boot route, e.g. http://192.0.2.1:6385/boot
    # (the URL the DHCP option for iPXE names); empty: ipxe nodes fail validation.
    http_boot_url: str = ""
    # Where the per-node iPXE scripts are written; default <state_dir>/httpboot.
    http_root: Path | None = None
    # The bare-metal API as a ramdisk reaches it (kernel parameter ipa-api-url);
    # default: the scheme, host and port of http_boot_url.
    ramdisk_api_url: str = ""
    # The TFTP server (next-server; DHCP options 66 and 150) from which firmware that
    # is not iPXE fetches the iPXE binary below; empty: only iPXE clients are answered.
    tftp_server: str = ""
    ipxe_bootfile_name: str = "undionly.kpxe"  # BIOS
    uefi_ipxe_bootfile_name: str = "snponly.efi"  # UEFI
    # A node's boot mode unless instance_info.deploy_boot_mode or its boot_mode
    # capability says otherwise.
    default_boot_mode: Literal["bios", "uefi"] = "uefi"
    # Extra kernel parameters for every ramdisk (e.g. console=ttyS0,115200n8).
    kernel_append_params: str = ""
    # The ramdisk images /boot serves: deploy (deploy and clean) and rescue (default:
    # the deploy images).
    deploy_kernel: Path | None = None
    deploy_ramdisk: Path | None = None
    rescue_kernel: Path | None = None
    rescue_ramdisk: Path | None = None
    # The TCP port a ramdisk exports its disk on for the iscsi deploy interface.
    iscsi_portal_port: int = Field(default=3260, ge=1, le=65535)
    # The ansible deploy interface: the conductor's SSH private key (OpenSSH format,
    # unencrypted; an ed25519 pair is made there on first use; default
    # <state_dir>/ansible/id_ed25519; servers sharing a database share one key file)
    # and the user its playbooks log in to the ramdisk as.
    ansible_key_file: Path | None = None
    ansible_username: str = Field(default="root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    # Seconds one playbook run may take before it is ended and the node fails.
    ansible_timeout: float = Field(default=1800.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @field_validator("http_boot_url", "ramdisk_api_url")
    @classmethod
    def _boot_url(cls, value: str) -> str:
        web = value.startswith(("http://", "https://"))
        if value and (not web or any(c.isspace() for c in value)):
            raise ValueError("an http:// or https:// URL without spaces is expected")
        return value.rstrip("/")

    @field_validator("tftp_server")
    @classmethod
    def _tftp_address(cls, value: str) -> str:
        if value:
            ipaddress.ip_address(value)  # next-server is an address, not a name
        return value

    @field_validator("kernel_append_params", "ipxe_bootfile_name", "uefi_ipxe_bootfile_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("a single line is expected")
        return value.strip()

    def resolved_http_root(self) -> Path:
        return self.http_root or self.state_dir / "httpboot"

    def resolved_ansible_key_file(self) -> Path:
        return self.ansible_key_file or self.state_dir / "ansible" / "id_ed25519"

    def resolved_ramdisk_api_url(self) -> str:
        if self.ramdisk_api_url or not self.http_boot_url:
            return self.ramdisk_api_url
        scheme, rest = self.http_boot_url.split("://", 1)
        return f"{scheme}://{rest.split('/', 1)[0]}"

    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.state_dir)
