"""Hardware types: which interface implementations each one supports.

A hardware type is a list of supported implementations per interface kind,
the first being the default, as in Ironic.  Only ``fake-hardware`` is
registered until the real power and management drivers arrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

INTERFACE_KINDS = (
    "bios",
    "boot",
    "console",
    "deploy",
    "inspect",
    "management",
    "network",
    "power",
    "raid",
    "rescue",
    "storage",
    "vendor",
)

NETWORK_INTERFACES = ("flat", "noop", "smartnic")


@dataclass(frozen=True)
class HardwareType:
    name: str
    interfaces: Mapping[str, tuple[str, ...]]
    # driver_info keys and what they mean (GET /v1/drivers/{name}/properties).
    properties: Mapping[str, str] = field(default_factory=dict)

    def default(self, kind: str) -> str:
        return self.interfaces[kind][0]


FAKE_HARDWARE = HardwareType(
    name="fake-hardware",
    interfaces=MappingProxyType(
        {
            "bios": ("fake", "no-bios"),
            "boot": ("fake",),
            "console": ("fake", "no-console"),
            "deploy": ("fake",),
            "inspect": ("fake", "no-inspect"),
            "management": ("fake",),
            "network": NETWORK_INTERFACES,
            "power": ("fake",),
            "raid": ("fake", "no-raid"),
            "rescue": ("fake", "no-rescue"),
            "storage": ("noop",),
            "vendor": ("fake", "no-vendor"),
        }
    ),
    properties=MappingProxyType({}),
)


class Registry:
    """The hardware types this server offers, by name."""

    def __init__(self, types: list[HardwareType]) -> None:
        self._types = {t.name: t for t in types}

    def get(self, name: str) -> HardwareType | None:
        return self._types.get(name)

    def all(self) -> list[HardwareType]:
        return list(self._types.values())


def default_registry() -> Registry:
    return Registry([FAKE_HARDWARE])
