"""Security groups and rules, with a project's ``default`` group made on first use.

Bodies arrive as the request models of ``network/inputs.py`` (each value
already of its type); this module keeps the rules that relate values (port ranges
and protocol, the prefix and the ethertype, the reserved name ``default``).
"""

from __future__ import annotations

import builtins
import ipaddress
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from metalnic import ids
from metalnic.auth import Principal
from metalnic.contract import agent as ac
from metalnic.db.session import Database
from metalnic.errors import Conflict, Forbidden, InvalidInput
from metalnic.network import access, feed, tags, views
from metalnic.network.inputs import (
    SecurityGroupCreate,
    SecurityGroupRuleCreate,
    SecurityGroupUpdate,
)
from metalnic.network.models import (
    NetworkPort,
    SecurityGroup,
    SecurityGroupRule,
    port_security_groups,
)


class SecurityGroups:
    def __init__(self, db: Database, after_change: Callable[[set[str]], None]) -> None:
        self.db = db
        self.after_change = after_change

    def default(self, s: Session, project: str) -> SecurityGroup:
        group = s.scalars(
            select(SecurityGroup).where(
                SecurityGroup.project_id == project, SecurityGroup.name == "default"
            )
        ).first()
        if group is None:
            group = _new_group(
                s, project, "default", "Default security group", ingress_from_members=True
            )
        return group

    def for_port(self, s: Session, project: str, wanted: Any, enabled: bool) -> list[SecurityGroup]:
        if not enabled:
            if wanted:
                raise InvalidInput("Port security must be enabled to have security groups.")
            return []
        if wanted is None:
            return [self.default(s, project)]
        if not isinstance(wanted, list):
            raise InvalidInput("security_groups must be a list of ids.")
        return access.usable_security_groups(s, project, wanted)

    def show(self, who: Principal, gid: str) -> views.SecurityGroupView:
        with self.db.transaction() as s:
            return views.security_group(access.visible_security_group(s, who, gid))

    def list(self, who: Principal, filters: dict[str, str]) -> list[views.SecurityGroupView]:
        with self.db.transaction() as s:
            return [views.security_group(g) for g in self._visible(s, who, filters)]

    def list_rules(self, who: Principal, group_id: str | None) -> builtins.list[views.RuleView]:
        """The rules of the groups ``who`` sees (of one group, when ``group_id``)."""
        with self.db.transaction() as s:
            groups = self._visible(s, who, {})
            rules = [r for g in groups for r in g.rules]
            if group_id:
                rules = [r for r in rules if r.security_group_id == group_id]
            return [views.rule(r) for r in rules]

    def show_rule(self, who: Principal, rule_id: str) -> views.RuleView:
        with self.db.transaction() as s:
            return views.rule(access.visible_rule(s, who, rule_id))

    def _visible(
        self, s: Session, who: Principal, filters: dict[str, str]
    ) -> builtins.list[SecurityGroup]:
        where = access.groups_filter(who)
        if who.project and who.roles & access.WRITERS and not who.is_admin:
            self.default(s, who.project)
        # Every listed group is shown with its rules: one query for all of them.
        stmt = (
            select(SecurityGroup)
            .options(selectinload(SecurityGroup.rules), tags.loaded("security-groups"))
            .order_by(SecurityGroup.created_at, SecurityGroup.id)
        )
        if where is not None:
            stmt = stmt.where(where)
        for key, column in (
            ("name", SecurityGroup.name),
            ("id", SecurityGroup.id),
            ("project_id", SecurityGroup.project_id),
        ):
            if key in filters:
                stmt = stmt.where(column == filters[key])
        return list(s.scalars(tags.filtered(stmt, filters, "security-groups", SecurityGroup.id)))

    def create(self, who: Principal, body: SecurityGroupCreate) -> views.SecurityGroupView:
        _writer(who)
        if body.name == "default":
            raise InvalidInput("Invalid security group name (the name 'default' is reserved).")
        project = body.project_id or body.tenant_id or who.project or "admin"
        if project != who.project and not who.is_admin:
            raise Forbidden("Only admins may create security groups for another project.")
        with self.db.transaction() as s:
            self.default(s, project)
            group = _new_group(s, project, body.name, body.description, ingress_from_members=False)
            s.refresh(group)
            return views.security_group(group)

    def update(
        self, who: Principal, gid: str, body: SecurityGroupUpdate, revision: int | None = None
    ) -> views.SecurityGroupView:
        """Neutron's PUT of a group: its name and description (rules have their own calls)."""
        _writer(who)
        given = body.model_fields_set
        with self.db.transaction() as s:
            group = access.writable_security_group(s, who, gid)
            group.require_revision(revision)
            if "name" in given and body.name != group.name:
                if "default" in (body.name, group.name):
                    raise InvalidInput("The name 'default' is reserved to the default group.")
                group.name = body.name
            if "description" in given:
                group.description = body.description
            group.revision_number += 1
            s.flush()
            return views.security_group(group)

    def delete(self, who: Principal, gid: str, revision: int | None = None) -> None:
        _writer(who)
        with self.db.transaction() as s:
            group = access.writable_security_group(s, who, gid)
            group.require_revision(revision)
            if group.name == "default" and not who.is_admin:
                raise Conflict("The default security group cannot be deleted.")
            in_use = s.scalar(
                select(NetworkPort.id).where(
                    NetworkPort.security_groups.any(SecurityGroup.id == gid)
                )
            )
            if in_use is not None:
                raise Conflict(f"Security Group {gid} in use.")
            s.delete(group)

    def create_rule(self, who: Principal, body: SecurityGroupRuleCreate) -> views.RuleView:
        _writer(who)
        direction, ethertype, protocol = body.direction, body.ethertype, body.protocol
        pmin, pmax = body.port_range_min, body.port_range_max
        ported = ("tcp", "udp", "6", "17", "icmp", "icmpv6", "1", "58")
        if (pmin is not None or pmax is not None) and protocol not in ported:
            raise InvalidInput("Port ranges need protocol tcp or udp (or icmp type/code).")
        if pmin is not None and pmax is not None and pmin > pmax and protocol in ("tcp", "udp"):
            raise InvalidInput("port_range_min must be <= port_range_max.")
        prefix = _prefix(body.remote_ip_prefix, ethertype)
        if prefix is not None and body.remote_group_id:
            raise InvalidInput("Only one of remote_ip_prefix and remote_group_id may be given.")
        with self.db.transaction() as s:
            group = access.writable_security_group(s, who, body.security_group_id)
            remote = body.remote_group_id
            if remote:
                remote = access.usable_remote_group(s, group, remote)
            rule = SecurityGroupRule(
                id=ids.new_uuid(),
                security_group_id=group.id,
                project_id=group.project_id,
                direction=direction,
                ethertype=ethertype,
                protocol=protocol,
                port_range_min=pmin,
                port_range_max=pmax,
                remote_ip_prefix=prefix,
                remote_group_id=remote or None,
                description=body.description,
            )
            s.add(rule)
            s.flush()
            hosts = self._touch_hosts(s, group.id)
            shown = views.rule(rule)
        self.after_change(hosts)
        return shown

    def delete_rule(self, who: Principal, rule_id: str) -> None:
        _writer(who)
        with self.db.transaction() as s:
            rule = access.writable_rule(s, who, rule_id)
            gid = rule.security_group_id
            s.delete(rule)
            s.flush()
            hosts = self._touch_hosts(s, gid)
        self.after_change(hosts)

    def touch_watchers(self, s: Session, gids: set[str]) -> set[str]:
        """Membership of ``gids`` changed: bump the NIC hosts whose ports have rules naming
        one of them as remote group (their allowed MACs change).  Returns the hosts."""
        if not gids:
            return set()
        watching = select(SecurityGroupRule.security_group_id).where(
            SecurityGroupRule.remote_group_id.in_(gids)
        )
        return feed.bump_selected(s, _member_hosts(watching))

    def members(self, s: Session, gids: set[str]) -> dict[str, tuple[str, ...]]:
        """group id → the MAC addresses of its ports (what a remote-group rule allows)."""
        macs: dict[str, set[str]] = {gid: set() for gid in gids}
        if gids:  # one query for every group, however many ports they have
            link = port_security_groups.c
            for gid, mac in s.execute(
                select(link.security_group_id, NetworkPort.mac_address)
                .join(NetworkPort, NetworkPort.id == link.port_id)
                .where(link.security_group_id.in_(gids))
            ):
                macs[gid].add(mac)
        return {gid: tuple(sorted(found)) for gid, found in macs.items()}

    def _touch_hosts(self, s: Session, gid: str) -> set[str]:
        """Bump the NIC hosts of the member ports of ``gid`` (their rules changed)."""
        return feed.bump_selected(s, _member_hosts([gid]))

    def rules_for(self, s: Session, gids: set[str]) -> ac.SecurityGroupRulesData:
        """The rules of each of ``gids`` (that still exists), as the agent is sent them."""
        out: ac.SecurityGroupRulesData = {}
        for gid in sorted(gids):
            group = s.get(SecurityGroup, gid)
            if group is not None:
                out[gid] = [_rule_data(r) for r in group.rules]
        return out


def _member_hosts(gids: Select[str] | list[str]) -> Select[str]:
    """The NIC hosts of the ports in the groups ``gids`` names (or selects: a query the
    database runs inside the statement that uses it)."""
    link = port_security_groups.c
    return (
        select(NetworkPort.host_id)
        .join(port_security_groups, link.port_id == NetworkPort.id)
        # Bound ports only: an agent's feed lists no other (``network/agentfeed.py``).
        .where(
            link.security_group_id.in_(gids),
            NetworkPort.host_id != "",
            NetworkPort.vif_type == "ovs",
        )
    )


def _rule_data(rule: SecurityGroupRule) -> ac.SecurityGroupRuleData:
    return {
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "remote_group_id": rule.remote_group_id,
    }


def _prefix(prefix: str | None, ethertype: str) -> str | None:
    """A remote IP prefix as the network it names (``10.0.0.1/8`` is ``10.0.0.0/8``)."""
    if prefix is None:
        return None
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        raise InvalidInput(f"Invalid remote_ip_prefix {prefix!r}.") from None
    if (net.version == 4) != (ethertype == "IPv4"):
        raise InvalidInput("remote_ip_prefix does not match the ethertype.")
    return str(net)


def _new_group(
    s: Session, project: str, name: str, description: str, ingress_from_members: bool
) -> SecurityGroup:
    """A group that allows all egress (and, for ``default``, ingress from its members)."""
    group = SecurityGroup(id=ids.new_uuid(), name=name, project_id=project, description=description)
    s.add(group)
    s.flush()
    for ethertype in ("IPv4", "IPv6"):
        directions: builtins.list[tuple[str, str | None]] = [("egress", None)]
        if ingress_from_members:
            directions.append(("ingress", group.id))
        for direction, remote in directions:
            s.add(
                SecurityGroupRule(
                    id=ids.new_uuid(),
                    security_group_id=group.id,
                    project_id=project,
                    direction=direction,
                    ethertype=ethertype,
                    remote_group_id=remote,
                )
            )
    s.flush()
    return group


_writer = access.require_writer
