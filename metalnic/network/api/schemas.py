"""Request models of the network API: every body and query of ``/network/v2.0``.

One pydantic model per resource and verb, built from the value types of
``types.py``; unknown attributes are refused as Neutron does ("Unrecognized
attribute(s)").  The routes validate once, here, and hand the service a dict
of the attributes the caller gave (``values``), already of the right type: the
service keeps its rules (policy, references, allocation), not the coercion.
The same models are the request schemas of the published OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from metalnic.errors import InvalidInput
from metalnic.network.api.types import (
    INT64_MAX,
    MTU,
    BoolLike,
    Id,
    JsonObject,
    LongText,
    Name,
    PortNumber,
    Protocol,
    Short,
    VlanId,
    check_json,
)

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: object, where: tuple[str, ...] = ()) -> M:
    """``data`` validated as ``model``, or InvalidInput in Neutron's words: the one
    check of a body, for the routes (``deps.body_of``) and the embedded client."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe(exc.errors(), where)) from None


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @classmethod
    def parse(cls, data: object, where: tuple[str, ...] = ()) -> Self:
        """``data`` validated as this model (see ``parse``)."""
        return parse(cls, data, where)

    def values(self) -> dict[str, Any]:
        """The attributes the caller gave, under their API names."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class Open(Model):
    """An object whose other keys are free-form JSON (kept as given)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _extra_is_json(self) -> Open:
        check_json(self.__pydantic_extra__ or {})
        return self


# --- networks -----------------------------------------------------------------------------


class _Network(Model):
    name: Name = ""
    description: Name = ""
    admin_state_up: BoolLike = True
    shared: BoolLike = False
    port_security_enabled: BoolLike = True


class NetworkUpdate(_Network):
    mtu: MTU = 1500


class NetworkCreate(_Network):
    mtu: MTU | None = Field(1500, description="null: the default, 1500")
    project_id: Id | None = None
    tenant_id: Id | None = None
    network_type: Short = Field("vlan", alias="provider:network_type")
    physical_network: Short | None = Field(None, alias="provider:physical_network")
    segmentation_id: VlanId | None = Field(None, alias="provider:segmentation_id")


# --- ports --------------------------------------------------------------------------------


class LinkInformation(Open):
    """One NIC port the bare-metal port is cabled to (Ironic's local_link_connection)."""

    hostname: Name | None = None
    port_id: Name | None = None
    switch_id: Name | None = None
    switch_info: Name | None = None
    ssh_public_key: LongText | None = None
    ovsdb_cert: LongText | None = None
    ovsdb_ca_cert: LongText | None = None


class GroupInformation(Open):
    """A bond of several NIC ports (Ironic's port group)."""

    id: Name | None = None
    name: Name | None = None
    bond_mode: Name | None = None
    bond_properties: JsonObject = {}


class BindingProfile(Open):
    local_link_information: list[LinkInformation] = Field(default_factory=list, max_length=64)
    local_group_information: GroupInformation | None = None


VnicType = Literal["normal", "baremetal", "smart-nic"]


class _Port(Model):
    name: Name = ""
    description: Name = ""
    admin_state_up: BoolLike = True
    device_id: Name = ""
    device_owner: Name = ""
    host_id: Name = Field("", alias="binding:host_id")
    vnic_type: VnicType = Field("normal", alias="binding:vnic_type")
    port_security_enabled: BoolLike = True


class PortUpdate(_Port):
    profile: BindingProfile = Field(default_factory=BindingProfile, alias="binding:profile")
    security_groups: list[Id] = Field(default_factory=list, max_length=64)
    mac_address: Short = ""


class PortCreate(_Port):
    network_id: Id
    profile: BindingProfile | None = Field(
        default_factory=BindingProfile, alias="binding:profile", description="null: {}"
    )
    security_groups: list[Id] | None = Field(
        None, max_length=64, description="absent or null: the project's default group"
    )
    mac_address: Short | None = Field(None, description="absent or null: one is made")
    project_id: Id | None = None
    tenant_id: Id | None = None
    fixed_ips: list[JsonObject] = Field(
        default_factory=list, max_length=0, description="not supported: no subnets"
    )


# --- security groups ----------------------------------------------------------------------


class SecurityGroupCreate(Model):
    name: Name = ""
    description: Name = ""
    project_id: Id | None = None
    tenant_id: Id | None = None
    stateful: BoolLike = True


class SecurityGroupUpdate(Model):
    name: Name = ""
    description: Name = ""


class SecurityGroupRuleCreate(Model):
    security_group_id: Id
    direction: Literal["ingress", "egress"]
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    protocol: Protocol | None = None
    port_range_min: PortNumber | None = None
    port_range_max: PortNumber | None = None
    remote_ip_prefix: Short | None = None
    remote_group_id: Id | None = None
    description: Name = ""
    project_id: Id | None = None
    tenant_id: Id | None = None


# --- agents (the agent contract's bodies are in metalnic/contract/agent.py) ---------------


class AgentUpdate(Model):
    admin_state_up: BoolLike = True
    description: Name | None = None


class AgentGrant(Model):
    nic_hosts: list[Id] = Field(max_length=1000)


# --- queries ------------------------------------------------------------------------------


class Query(BaseModel):
    """Filters of a list: exact matches; other query parameters are ignored (as
    ``limit``, ``marker`` and sorting, which metalnic does not implement)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    fields: list[Name] = Field(default_factory=list, description="return only these fields")

    def filters(self) -> dict[str, str]:
        return {
            k: v
            for k, v in self.model_dump(by_alias=True, exclude_none=True).items()
            if k != "fields"
        }


class NetworkQuery(Query):
    id: Name | None = None
    name: Name | None = None
    project_id: Name | None = None
    network_type: Name | None = Field(None, alias="provider:network_type")


class PortQuery(Query):
    id: Name | None = None
    name: Name | None = None
    network_id: Name | None = None
    device_id: Name | None = None
    device_owner: Name | None = None
    mac_address: Name | None = None
    host_id: Name | None = Field(None, alias="binding:host_id")
    status: Name | None = None


class SecurityGroupQuery(Query):
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


# --- messages -------------------------------------------------------------------------------


def describe(errors: Iterable[ErrorDetails], prefix: tuple[str, ...] = ()) -> str:
    """One message for all problems, in Neutron's words, naming each attribute.
    The caller's values are never echoed (they may be secrets or unprintable)."""
    unknown: list[str] = []
    problems: list[str] = []
    for error in errors:
        loc = [str(p) for p in error["loc"] if p not in ("body", "query", "path")]
        where = ".".join(loc) or ".".join(prefix) or "body"
        if error["type"] == "extra_forbidden":
            unknown.append(where)
        elif error["type"] == "string_type":
            problems.append(f"Invalid input for {where}. Reason: not a valid string.")
        else:
            reason = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"Invalid input for {where}. Reason: {reason}.")
    if unknown:
        problems.insert(0, f"Unrecognized attribute(s) '{', '.join(unknown)}'.")
    return _printable(" ".join(problems))


def _printable(message: str) -> str:
    return message.encode("utf-8", "backslashreplace").decode("utf-8")[:2000]
