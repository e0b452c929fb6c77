"""Who may see and use what in the network API: the one policy layer of /network/v2.0.

Every object a request names — the network of a new port, the security groups
of a port, the remote group of a rule, a port, a group — is resolved here, and
an object the caller may not use is answered exactly as one that does not
exist (Neutron's 404 of that kind), so ids of other projects can neither be
used nor probed.

* admin — everything; still, a port's security groups and a rule's remote
  group must belong to the port's (the rule's) project: a group of project B
  on a port of project A would let B's rules and membership decide A's traffic;
* member — objects of its own project, plus shared networks (to put ports on);
* observer — reads everything, writes nothing;
* agent — only the agent contract (``api/agents.py``): no tenant objects, and
  like everyone but admins it does not see the agent list (as in Neutron).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.errors import (
    Forbidden,
    InvalidInput,
    NetworkNotFound,
    NetworkPortNotFound,
    SecurityGroupNotFound,
    SubnetNotFound,
)
from metalnic.network.models import (
    Network,
    NetworkPort,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)

READERS = frozenset({"admin", "member", "observer"})
WRITERS = frozenset({"admin", "member"})
# A device_owner only the control plane gives a port: the conductor's phase
# ports and bound VIFs.  The conductor finds its ports by it (client.find_ports).
RESERVED_DEVICE_OWNER_PREFIX = "baremetal:"


def require_reader(who: Principal) -> None:
    if not who.roles & READERS:
        raise Forbidden(f"User {who.name} has no role that allows reading the network API.")


def require_writer(who: Principal) -> None:
    require_reader(who)
    if not who.roles & WRITERS:
        raise Forbidden(f"User {who.name} may only read networks and ports.")


def sees_all(who: Principal) -> bool:
    return bool(who.roles & {"admin", "observer"})


def owns(who: Principal, project_id: str) -> bool:
    """May ``who`` change an object of ``project_id`` (given it may write at all)?"""
    return who.is_admin or (who.project is not None and project_id == who.project)


def require_agents_reader(who: Principal) -> None:
    """Agents (their hosts, NIC hosts and configuration) are shown to admins only."""
    if not who.is_admin:
        raise Forbidden(f"User {who.name} may not see agents: that is reserved to admins.")


# --- networks ---------------------------------------------------------------------------


def owner_project(who: Principal, asked: str | None, default: str | None = None) -> str:
    """The project a new resource belongs to: the one asked for (only admins may
    name another), else an admin's ``default`` (a port: its network's), else the caller's."""
    if asked and asked != who.project and not who.is_admin:
        raise Forbidden("Only admins may create resources for another project.")
    if not asked and who.is_admin and default:
        return default
    return str(asked or who.project or "admin")


def visible_network(s: Session, who: Principal, net_id: str) -> Network:
    """A network ``who`` may read and put ports on: its own project's, or a shared one."""
    require_reader(who)
    net = s.get(Network, net_id) if isinstance(net_id, str) else None
    if net is None or not (sees_all(who) or net.shared or owns(who, net.project_id)):
        raise NetworkNotFound(str(net_id))
    return net


def writable_network(s: Session, who: Principal, net_id: str) -> Network:
    """A network ``who`` may change or delete; a shared one of another project is
    visible, so refusing it is a 403, not a 404."""
    require_writer(who)
    net = visible_network(s, who, net_id)
    if not owns(who, net.project_id):
        if net.shared:
            raise Forbidden(f"Network {net_id} is shared with you but owned by another project.")
        raise NetworkNotFound(net_id)
    return net


def check_sharing(who: Principal, body: Mapping[str, object]) -> None:
    """Sharing a network opens it to every project's ports: admins only, as Neutron's
    default policy (``create_network:shared``)."""
    if "shared" in body and body["shared"] not in (False, "false", "False") and not who.is_admin:
        raise Forbidden("Sharing a network with every project is reserved to admins.")


def check_network_name(who: Principal, body: Mapping[str, object], reserved: set[str]) -> None:
    """The bare-metal side finds its phase networks (provisioning, cleaning, rescuing)
    by name: a tenant's network of that name could take another tenant's hosts."""
    name = body.get("name")
    if isinstance(name, str) and name in reserved and not who.is_admin:
        raise Forbidden(f"The network name {name!r} is reserved to the bare-metal service.")


def networks_filter(who: Principal) -> Any:
    """The WHERE clause of a network listing, or None for every network."""
    require_reader(who)
    if sees_all(who):
        return None
    return (Network.project_id == who.project) | Network.shared.is_(True)


# --- subnets ----------------------------------------------------------------------------
# A subnet is seen by whoever sees its network (a shared network's subnets too) and
# changed by the owner of the subnet; creating one needs a network the caller may write.


def visible_subnet(s: Session, who: Principal, subnet_id: Any) -> Subnet:
    require_reader(who)
    subnet = s.get(Subnet, subnet_id) if isinstance(subnet_id, str) else None
    if subnet is None:
        raise SubnetNotFound(str(subnet_id))
    if not (sees_all(who) or owns(who, subnet.project_id)):
        net = s.get(Network, subnet.network_id)
        if net is None or not net.shared:
            raise SubnetNotFound(str(subnet_id))
    return subnet


def writable_subnet(s: Session, who: Principal, subnet_id: str) -> Subnet:
    """A subnet ``who`` may change or delete; one of a shared network it does not own
    is visible, so refusing it is a 403."""
    require_writer(who)
    subnet = visible_subnet(s, who, subnet_id)
    if not owns(who, subnet.project_id):
        net = s.get(Network, subnet.network_id)
        if net is not None and net.shared:
            raise Forbidden(f"Subnet {subnet_id} is on a shared network owned by another project.")
        raise SubnetNotFound(subnet_id)
    return subnet


def subnets_filter(who: Principal) -> Any:
    """The WHERE clause of a subnet listing, or None for every subnet."""
    require_reader(who)
    if sees_all(who):
        return None
    shared = select(Network.id).where(Network.shared.is_(True))
    return (Subnet.project_id == who.project) | Subnet.network_id.in_(shared)


def check_fixed_ips(who: Principal, net: Network, wanted: Sequence[Any] | None) -> None:
    """Naming an address on a network of another project (a shared one) is reserved to
    admins, as in Neutron's default policy; a subnet alone may be named."""
    if who.is_admin or wanted is None or owns(who, net.project_id):
        return
    if any(getattr(w, "ip_address", None) is not None for w in wanted):
        raise Forbidden(
            "(rule:create_port and rule:create_port:fixed_ips:ip_address) is disallowed by "
            "policy: only the network's owner may choose the address."
        )


# --- ports ------------------------------------------------------------------------------


def visible_port(s: Session, who: Principal, port_id: str) -> NetworkPort:
    require_reader(who)
    port = s.get(NetworkPort, port_id) if isinstance(port_id, str) else None
    if port is None or not (sees_all(who) or owns(who, port.project_id)):
        raise NetworkPortNotFound(str(port_id))
    port.security_groups  # noqa: B018 - load before the session closes
    return port


def writable_port(s: Session, who: Principal, port_id: str) -> NetworkPort:
    require_writer(who)
    port = visible_port(s, who, port_id)
    if not owns(who, port.project_id):  # an observer that is also a member
        raise NetworkPortNotFound(port_id)
    return port


def ports_filter(who: Principal) -> Any:
    require_reader(who)
    return None if sees_all(who) else NetworkPort.project_id == who.project


def check_device_owner(
    who: Principal, body: Mapping[str, object], port: NetworkPort | None
) -> None:
    """``baremetal:*`` marks the conductor's ports (it finds its phase ports by it, with
    ``device_id`` = the node): a tenant may neither mark a port so nor re-point one."""
    if who.is_admin:
        return
    wanted = body.get("device_owner")
    if isinstance(wanted, str) and wanted.startswith(RESERVED_DEVICE_OWNER_PREFIX):
        raise Forbidden(f"device_owner {wanted!r} is reserved to the bare-metal service (admins).")
    reserved = port is not None and port.device_owner.startswith(RESERVED_DEVICE_OWNER_PREFIX)
    if reserved and body.keys() & {"device_id", "device_owner"}:
        raise Forbidden("The device of a port the bare-metal service uses is set by it (admins).")


# --- security groups --------------------------------------------------------------------


def visible_security_group(s: Session, who: Principal, gid: Any) -> SecurityGroup:
    require_reader(who)
    group = s.get(SecurityGroup, gid) if isinstance(gid, str) else None
    if group is None or not (sees_all(who) or owns(who, group.project_id)):
        raise SecurityGroupNotFound(str(gid))
    return group


def writable_security_group(s: Session, who: Principal, gid: Any) -> SecurityGroup:
    require_writer(who)
    group = visible_security_group(s, who, gid)
    if not owns(who, group.project_id):
        raise SecurityGroupNotFound(str(gid))
    return group


def groups_filter(who: Principal) -> Any:
    require_reader(who)
    return None if sees_all(who) else SecurityGroup.project_id == who.project


def usable_security_groups(s: Session, project: str, ids: Sequence[Any]) -> list[SecurityGroup]:
    """The groups ``ids`` for a port of ``project``: each must be that project's own
    (whoever asks, admins included); any other is reported as not found."""
    groups: list[SecurityGroup] = []
    for gid in ids:
        group = s.get(SecurityGroup, gid) if isinstance(gid, str) else None
        if group is None or group.project_id != project:
            raise SecurityGroupNotFound(str(gid))
        if group not in groups:
            groups.append(group)
    return groups


def usable_remote_group(s: Session, group: SecurityGroup, remote_id: Any) -> str:
    """A rule's ``remote_group_id``: a group of the rule's own project, else not found."""
    if not isinstance(remote_id, str):
        raise InvalidInput("remote_group_id must be a security group id.")
    remote = s.get(SecurityGroup, remote_id)
    if remote is None or remote.project_id != group.project_id:
        raise SecurityGroupNotFound(remote_id)
    return remote.id


def visible_rule(s: Session, who: Principal, rule_id: str) -> SecurityGroupRule:
    """A rule is visible when its group is; otherwise it does not exist."""
    rule = s.get(SecurityGroupRule, rule_id) if isinstance(rule_id, str) else None
    if rule is None:
        require_reader(who)
        raise SecurityGroupNotFound(f"rule {rule_id}")
    try:
        visible_security_group(s, who, rule.security_group_id)
    except SecurityGroupNotFound:
        raise SecurityGroupNotFound(f"rule {rule_id}") from None
    return rule


def writable_rule(s: Session, who: Principal, rule_id: str) -> SecurityGroupRule:
    require_writer(who)
    rule = visible_rule(s, who, rule_id)
    try:
        writable_security_group(s, who, rule.security_group_id)
    except SecurityGroupNotFound:
        raise SecurityGroupNotFound(f"rule {rule_id}") from None
    return rule


def visible_rules_query(who: Principal) -> Any:
    """Rules of the groups ``who`` may see (a statement, ordered)."""
    stmt = select(SecurityGroupRule).order_by(SecurityGroupRule.created_at, SecurityGroupRule.id)
    where = groups_filter(who)
    if where is not None:
        stmt = stmt.join(
            SecurityGroup, SecurityGroup.id == SecurityGroupRule.security_group_id
        ).where(where)
    return stmt
