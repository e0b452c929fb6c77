"""Query parameters of the network API: the filters of each list, and the agent's long poll.

Request bodies are the service layer's input models (``metalnic/network/inputs.py``);
what is left here exists only in HTTP: query strings.  Their values are typed with
the same value types (FastAPI validates them; its errors are answered in Neutron's
format, see ``errors.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from metalnic.contract.values import INT64_MAX, Name
from metalnic.errors import InvalidInput


class Query(BaseModel):
    """Filters of a list: exact matches; other query parameters are ignored (as
    ``limit``, ``marker`` and sorting, which metalnic does not implement)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    fields: list[Name] = Field(default_factory=list, description="return only these fields")

    def filters(self) -> dict[str, str]:
        return {
            k: ",".join(v) if isinstance(v, list) else v
            for k, v in self.model_dump(by_alias=True, exclude_none=True).items()
            if k not in ("fields", "fixed_ips")
        }


class TaggedQuery(Query):
    """Neutron's tag filters (``network/tags.py``): comma-separated, or repeated."""

    tags: list[Name] | None = Field(None, description="has all of these tags")
    tags_any: list[Name] | None = Field(None, alias="tags-any", description="has one of these")
    not_tags: list[Name] | None = Field(
        None, alias="not-tags", description="does not have all of these"
    )
    not_tags_any: list[Name] | None = Field(
        None, alias="not-tags-any", description="has none of these"
    )


class NetworkQuery(TaggedQuery):
    id: Name | None = None
    name: Name | None = None
    project_id: Name | None = None
    network_type: Name | None = Field(None, alias="provider:network_type")


class PortQuery(TaggedQuery):
    fixed_ips: list[Name] = Field(
        default_factory=list,
        description=(
            "ip_address=A, subnet_id=S or ip_address_substr=P (repeatable): ports holding "
            "such an address (ip_address_substr: extension ip-substring-filtering)"
        ),
    )
    id: Name | None = None
    name: Name | None = None
    network_id: Name | None = None
    device_id: Name | None = None
    device_owner: Name | None = None
    mac_address: Name | None = None
    host_id: Name | None = Field(None, alias="binding:host_id")
    status: Name | None = None

    def fixed_ip_filters(self) -> dict[str, list[str]]:
        """Neutron's ``fixed_ips=ip_address=A&fixed_ips=subnet_id=S`` (and
        ``ip_address_substr=P``) as values by key."""
        wanted: dict[str, list[str]] = {}
        for item in self.fixed_ips:
            key, sep, value = item.partition("=")
            if not sep or key not in ("ip_address", "subnet_id", "ip_address_substr"):
                raise InvalidInput(
                    f"Invalid input for fixed_ips. Reason: '{item[:80]}' is not of the form "
                    "ip_address=ADDRESS, subnet_id=ID or ip_address_substr=PART."
                )
            wanted.setdefault(key, []).append(value)
        return wanted


class SubnetQuery(TaggedQuery):
    id: Name | None = None
    name: Name | None = None
    network_id: Name | None = None
    project_id: Name | None = None
    tenant_id: Name | None = None
    cidr: Name | None = None
    gateway_ip: Name | None = None
    ip_version: Literal["4", "6"] | None = None
    enable_dhcp: Literal["true", "false", "True", "False"] | None = None
    ipv6_ra_mode: Name | None = None
    ipv6_address_mode: Name | None = None


class SecurityGroupQuery(TaggedQuery):
    id: Name | None = None
    name: Name | None = None
    project_id: Name | None = None


class SecurityGroupRuleQuery(Query):
    security_group_id: Name | None = None


class AgentQuery(Query):
    host: Name | None = None
    agent_type: Name | None = None
    binary: Name | None = None


class DesiredQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    since: int | None = Field(
        None, ge=0, le=INT64_MAX, description="long-poll until the revision passes this"
    )
    wait: int = Field(0, ge=0, le=INT64_MAX, description="seconds to wait at most (up to 60)")
