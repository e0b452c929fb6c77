"""Hardware types and the interface implementations behind them.

A hardware type lists, per interface kind, the implementations it supports
(the first is the default), as in Ironic.  ``Registry`` owns one instance of
each implementation for the process; real BMC drivers are imported on first
use so that the API starts fast.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from metalnic.baremetal.drivers.base import NetworkPhase
from metalnic.baremetal.drivers.boot.ipxe import IpxeConfig
from metalnic.baremetal.drivers.deploy.ansible import AnsibleConfig
from metalnic.baremetal.drivers.network.client import NetworkClient
from metalnic.baremetal.drivers.network.smartnic import SmartNicConfig

INTERFACE_KINDS = (
    "bios", "boot", "console", "deploy", "inspect", "management",
    "network", "power", "raid", "rescue", "storage", "vendor",
)  # fmt: skip

NETWORK_INTERFACES = ("flat", "noop", "smartnic", "fake")
DEPLOY_INTERFACES = ("direct", "ramdisk", "ansible", "iscsi")
BOOT_INTERFACES = ("pxe", "ipxe")


@dataclass(frozen=True)
class HardwareType:
    name: str
    interfaces: Mapping[str, tuple[str, ...]]
    # driver_info keys and what they mean (GET /v1/drivers/{name}/properties).
    properties: Mapping[str, str] = field(default_factory=dict)

    def default(self, kind: str) -> str:
        return self.interfaces[kind][0]


def _common(**overrides: tuple[str, ...]) -> Mapping[str, tuple[str, ...]]:
    base = {
        "bios": ("no-bios",), "boot": BOOT_INTERFACES, "console": ("no-console",),
        "deploy": DEPLOY_INTERFACES, "inspect": ("no-inspect",),
        "network": NETWORK_INTERFACES, "raid": ("no-raid",),
        "rescue": ("agent", "no-rescue"), "storage": ("noop",), "vendor": ("no-vendor",),
    }  # fmt: skip
    return MappingProxyType({**base, **overrides})


FAKE_HARDWARE = HardwareType(
    name="fake-hardware",
    interfaces=_common(
        bios=("fake", "no-bios"),
        boot=("fake", *BOOT_INTERFACES),
        console=("fake", "no-console"),
        deploy=("fake", *DEPLOY_INTERFACES),
        inspect=("fake", "no-inspect"),
        management=("fake",),
        network=NETWORK_INTERFACES,
        power=("fake",),
        raid=("fake", "no-raid"),
        rescue=("fake", "agent", "no-rescue"),
        vendor=("fake", "no-vendor"),
    ),  # fmt: skip
    properties=MappingProxyType(
        {
            "fake_power_fail": "Optional. Make this power action fail: 'power on' or 'power off'.",
            "fake_no_bios": "Optional. Refuse the BIOS boot device.",
            "fake_power_delay": "Optional. Seconds each power change takes.",
            "fake_network_fail": "Optional (fake network). 'attach|detach|verify:<phase>' fails.",
        }
    ),
)

REDFISH = HardwareType(
    name="redfish",
    interfaces=_common(power=("redfish",), management=("redfish",)),
    properties=MappingProxyType(
        {
            "redfish_address": "Required. The BMC's Redfish URL, e.g. https://bmc.example:8000.",
            "redfish_system_id": "Optional. The system's path, e.g. /redfish/v1/Systems/1; "
            "required when the BMC has more than one system.",
            "redfish_username": "Optional. BMC user.",
            "redfish_password": "Optional. BMC password (never shown).",
            "redfish_verify_ca": "Optional. true (default), false, or a CA bundle path.",
        }
    ),
)

IPMI = HardwareType(
    name="ipmi",
    interfaces=_common(power=("ipmitool",), management=("ipmitool",)),
    properties=MappingProxyType(
        {
            "ipmi_address": "Required. The BMC's IP address or host name.",
            "ipmi_port": "Optional. UDP port, default 623.",
            "ipmi_username": "Optional. BMC user.",
            "ipmi_password": "Optional. BMC password (never shown).",
        }
    ),
)


def _factories() -> dict[tuple[str, str], Callable[[Registry], Any]]:
    from metalnic.baremetal.drivers import rescue
    from metalnic.baremetal.drivers.boot import ipxe
    from metalnic.baremetal.drivers.deploy import interfaces as deploy
    from metalnic.baremetal.drivers.network import simple, smartnic
    from metalnic.baremetal.drivers.power import fake

    def redfish(kind: str) -> Callable[[Registry], Any]:
        def make(_r: Registry) -> Any:
            from metalnic.baremetal.drivers.power import redfish as rf

            return rf.RedfishPower() if kind == "power" else rf.RedfishManagement()

        return make

    def ipmi(kind: str) -> Callable[[Registry], Any]:
        def make(_r: Registry) -> Any:
            from metalnic.baremetal.drivers.power import ipmi as im

            return im.IpmiPower() if kind == "power" else im.IpmiManagement()

        return make

    return {
        ("power", "fake"): lambda r: fake.FakePower(r.fake_bmcs),
        ("management", "fake"): lambda r: fake.FakeManagement(r.fake_bmcs),
        ("power", "redfish"): redfish("power"),
        ("management", "redfish"): redfish("management"),
        ("power", "ipmitool"): ipmi("power"),
        ("management", "ipmitool"): ipmi("management"),
        ("network", "noop"): lambda r: simple.NoopNetwork(),
        ("network", "flat"): lambda r: simple.NoopNetwork(),
        ("network", "fake"): lambda r: simple.FakeNetwork(),
        ("network", "smartnic"): lambda r: smartnic.SmartNicNetwork(
            r.network_client, r.smartnic_config
        ),
        ("boot", "fake"): lambda r: ipxe.PassiveBoot(),
        ("boot", "pxe"): lambda r: ipxe.PassiveBoot(),
        ("boot", "ipxe"): lambda r: ipxe.IpxeBoot(r.network_client, r.ipxe_config),
        ("deploy", "fake"): lambda r: deploy.FakeDeploy(),
        ("deploy", "direct"): lambda r: deploy.DirectDeploy(),
        ("deploy", "ramdisk"): lambda r: deploy.RamdiskDeploy(),
        ("deploy", "ansible"): lambda r: deploy.AnsibleDeploy(r.ansible_config),
        ("deploy", "iscsi"): lambda r: deploy.IscsiDeploy(r.iscsi_portal_port),
        ("rescue", "fake"): lambda r: rescue.FakeRescue(),
        ("rescue", "agent"): lambda r: rescue.AgentRescue(),
        ("rescue", "no-rescue"): lambda r: rescue.NoRescue(),
    }


# Without settings (tests, tools): every phase on the network named "provisioning".
DEFAULT_SMARTNIC_CONFIG = SmartNicConfig(
    networks={
        NetworkPhase.PROVISIONING: "provisioning",
        NetworkPhase.CLEANING: "provisioning",
        NetworkPhase.RESCUING: "provisioning",
    },
    active_timeout=60.0,
    removed_timeout=60.0,
)


class Registry:
    """The hardware types this server offers, and one instance per implementation.

    ``network_client`` is the network service the smartnic interface (and the VIF
    API) talk to, given by ``server.py``; None: no smart NIC can be plugged.
    ``ipxe_config`` says where the ipxe boot interface writes and what it tells
    hosts; None: that interface refuses to validate."""

    def __init__(
        self,
        types: list[HardwareType],
        network_client: NetworkClient | None = None,
        smartnic_config: SmartNicConfig = DEFAULT_SMARTNIC_CONFIG,
        ipxe_config: IpxeConfig | None = None,
        iscsi_portal_port: int = 3260,
        ansible_config: AnsibleConfig | None = None,
    ) -> None:
        from metalnic.baremetal.drivers.power.fake import FakeBmcs

        self._types = {t.name: t for t in types}
        self.fake_bmcs = FakeBmcs()
        self._lock = threading.Lock()
        self._instances: dict[tuple[str, str], Any] = {}
        self._factories = _factories()
        self.network_client = network_client
        self.smartnic_config = smartnic_config
        self.ipxe_config = ipxe_config
        self.iscsi_portal_port = iscsi_portal_port
        self.ansible_config = ansible_config

    def get(self, name: str) -> HardwareType | None:
        return self._types.get(name)

    def all(self) -> list[HardwareType]:
        return list(self._types.values())

    def implementation(self, kind: str, name: str) -> Any:
        """The process's instance of interface ``name`` of ``kind`` (built on first use)."""
        key = (kind, name)
        with self._lock:
            if key not in self._instances:
                factory = self._factories.get(key)
                if factory is None:
                    raise KeyError(f"no implementation of {kind} interface {name!r}")
                self._instances[key] = factory(self)
            return self._instances[key]


def default_registry(
    network_client: NetworkClient | None = None,
    smartnic_config: SmartNicConfig = DEFAULT_SMARTNIC_CONFIG,
    ipxe_config: IpxeConfig | None = None,
    iscsi_portal_port: int = 3260,
    ansible_config: AnsibleConfig | None = None,
) -> Registry:
    return Registry(
        [FAKE_HARDWARE, REDFISH, IPMI], network_client, smartnic_config, ipxe_config,
        iscsi_portal_port, ansible_config,
    )  # fmt: skip
