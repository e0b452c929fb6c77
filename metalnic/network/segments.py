"""Segmentation: VLAN ranges per physical network and their allocation to new networks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic.errors import InvalidInput, NoSegmentAvailable, SegmentInUse
from metalnic.network.models import Network

NETWORK_TYPES = ("vlan", "flat")


@dataclass(frozen=True)
class VlanRange:
    physical_network: str
    first: int
    last: int


def parse_ranges(specs: list[str]) -> list[VlanRange]:
    ranges = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise InvalidInput(f"Bad VLAN range {spec!r}: expected physnet:first:last")
        first, last = int(parts[1]), int(parts[2])
        if not 1 <= first <= last <= 4094:
            raise InvalidInput(f"Bad VLAN range {spec!r}: VLANs are 1-4094")
        ranges.append(VlanRange(parts[0], first, last))
    return ranges


def allocate(
    session: Session,
    ranges: list[VlanRange],
    network_type: str,
    physical_network: str | None,
    segmentation_id: int | None,
) -> tuple[str | None, int | None]:
    """The (physical_network, segmentation_id) a new network gets, or a clear error:
    a flat network takes a whole physical network; a VLAN network the VLAN asked for,
    or else the first free one of the configured ranges."""
    if network_type not in NETWORK_TYPES:
        raise InvalidInput(
            f"Invalid network type {network_type!r}; supported: {', '.join(NETWORK_TYPES)} "
            "(vxlan is planned)."
        )
    if network_type == "flat":
        return _flat(session, ranges, physical_network, segmentation_id), None
    known = {r.physical_network for r in ranges}
    if physical_network is not None and physical_network not in known:
        raise InvalidInput(
            f"Unknown physical network {physical_network!r}; "
            f"configured: {', '.join(sorted(known)) or 'none'}."
        )
    if segmentation_id is not None:
        return _vlan_asked(session, ranges, physical_network, segmentation_id)
    return _vlan_free(session, ranges, physical_network)


def _default(ranges: list[VlanRange]) -> str | None:
    """The physical network a network gets when it names none: the first configured."""
    return ranges[0].physical_network if ranges else None


def _flat(
    session: Session,
    ranges: list[VlanRange],
    physical_network: str | None,
    segmentation_id: int | None,
) -> str:
    """A flat network's physical network: untagged, so one flat network per physnet."""
    if segmentation_id is not None:
        raise InvalidInput("A flat network has no segmentation_id.")
    physnet = physical_network or _default(ranges)
    if physnet is None:
        raise InvalidInput("A flat network needs provider:physical_network.")
    taken = session.scalar(
        select(Network.id).where(
            Network.network_type == "flat", Network.physical_network == physnet
        )
    )
    if taken is not None:
        raise SegmentInUse(f"Physical network {physnet} is in use by flat network {taken}.")
    return physnet


def _vlan_asked(
    session: Session, ranges: list[VlanRange], physical_network: str | None, vlan: int
) -> tuple[str, int]:
    """The VLAN an admin asked for (inside the ranges or not), if no network has it."""
    if not 1 <= vlan <= 4094:
        raise InvalidInput(f"Invalid VLAN {vlan}: VLANs are 1-4094.")
    physnet = physical_network or _default(ranges)
    if physnet is None:
        raise InvalidInput("provider:physical_network is required for a VLAN network.")
    taken = session.scalar(
        select(Network.id).where(
            Network.physical_network == physnet, Network.segmentation_id == vlan
        )
    )
    if taken is not None:
        raise SegmentInUse(f"The VLAN {vlan} on physical network {physnet} is in use.")
    return physnet, vlan


def _vlan_free(
    session: Session, ranges: list[VlanRange], physical_network: str | None
) -> tuple[str, int]:
    """The first VLAN no network uses, range by range (of ``physical_network`` only,
    when it is given)."""
    for r in ranges:
        if physical_network is not None and r.physical_network != physical_network:
            continue
        used = set(
            session.scalars(
                select(Network.segmentation_id).where(
                    Network.physical_network == r.physical_network,
                    Network.segmentation_id.is_not(None),
                )
            ).all()
        )
        for vlan in range(r.first, r.last + 1):
            if vlan not in used:
                return r.physical_network, vlan
    raise NoSegmentAvailable(
        "Unable to create the network. No tenant network is available for allocation."
    )
