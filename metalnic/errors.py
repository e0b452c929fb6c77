"""The one error tree of metalnic.

Every error raised by business code is a ``MetalnicError``.  Each class carries
a stable ``code`` (the name clients see as the error type), the HTTP status the
APIs answer with, and whether retrying the same request can help.  The APIs
turn these into Ironic's body on ``/v1`` and Neutron's on ``/v2.0``; business
code never builds HTTP responses itself.

    MetalnicError
    ├── InvalidInput            400  the request is malformed or breaks a rule
    │   ├── InvalidPatch        400  a JSON patch that cannot be applied
    │   ├── InvalidStateRequested 400 a verb the node's state does not allow
    │   ├── InvalidOperation    400  Neutron's InvalidInput: values that break a rule together
    │   └── InvalidAllocationPool, OutOfBoundsAllocationPool, InvalidIpForSubnet, … (subnets)
    ├── NotAuthenticated        401  no or wrong credentials
    ├── Forbidden               403  the caller's role does not allow it
    ├── NotFound                404
    │   ├── NodeNotFound
    │   ├── PortNotFound
    │   └── DriverNotFound
    ├── NotAcceptable           406  microversion out of range / field too new
    ├── Conflict                409
    │   ├── DuplicateName
    │   ├── MACAlreadyExists
    │   ├── NodeLocked              (retry helps: another flow holds the node)
    │   ├── StaleRevision           (retry helps: a concurrent write won the row)
    │   ├── InvalidStateForChange   (retry may help once the node moves)
    │   └── SubnetInUse, IpAddressGenerationFailure, IpAddressAlreadyAllocated, … (IPAM)
    ├── RevisionMismatch        412  ``If-Match: revision_number=N`` no longer holds
    ├── PayloadTooLarge         413
    ├── DriverError             500  a BMC, agent or network step failed (permanent)
    │   ├── DriverConfigError   400  driver_info is incomplete or invalid
    │   ├── DriverUnsupported   400  the driver or the device cannot do that (boot device…)
    │   ├── BmcCredentialsRefused 500 the BMC refused the credentials (as Ironic: 500)
    │   └── BmcRetryable        503  retry helps (the conductor retries these, bounded)
    │       ├── BmcUnreachable       no answer: connection refused, no route, no such host
    │       ├── BmcTimedOut          the BMC did not answer a request in time
    │       └── BmcBusy              the BMC answered "busy, try later"
    └── Unavailable             503  a dependency is down (retry helps)
        └── ConductorStopping        the server is stopping: flows end, new work is refused

Driver errors: vendor exceptions (sushy, pyghmi, HTTP) are translated into this
taxonomy inside each driver module.  Only ``retryable`` ones are tried again by the
conductor (``conductor/bmc.py``); every other driver error is final at once, so a
wrong password fails in one attempt with a clear ``last_error``.  A power wait
that runs out (the BMC answered, the machine did not get there) is a plain
``DriverError``: repeating it would repeat the same wait.
"""

from __future__ import annotations

from typing import ClassVar

from metalnic import redact


class MetalnicError(Exception):
    """Base class: a message for the user plus how to answer over HTTP."""

    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    # The "type" Neutron's error body would carry; None: derived from the status.
    neutron_type: ClassVar[str | None] = None

    def __init__(self, message: str) -> None:
        # Messages often quote what they were given (a URL, a driver's text):
        # redacted once, here, they are safe for answers, last_error and logs.
        message = redact.redact_text(message)
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return type(self).__name__


class InvalidInput(MetalnicError):
    status = 400


class InvalidPatch(InvalidInput):
    pass


class NotAuthenticated(MetalnicError):
    status = 401


class Forbidden(MetalnicError):
    status = 403


class NotFound(MetalnicError):
    status = 404


class NodeNotFound(NotFound):
    def __init__(self, ident: str) -> None:
        super().__init__(f"Node {ident} could not be found.")


class PortNotFound(NotFound):
    def __init__(self, ident: str) -> None:
        super().__init__(f"Port {ident} could not be found.")


class ChassisNotFound(NotFound):
    def __init__(self, ident: str) -> None:
        super().__init__(f"Chassis {ident} could not be found.")


class PortGroupNotFound(NotFound):
    def __init__(self, ident: str) -> None:
        super().__init__(f"Portgroup {ident} could not be found.")


class DriverNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"Could not find the following driver(s) or hardware type(s): {name}.")


class NotAcceptable(MetalnicError):
    status = 406


class Conflict(MetalnicError):
    status = 409


class DuplicateName(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"A node with name {name} already exists.")


class MACAlreadyExists(Conflict):
    def __init__(self, mac: str) -> None:
        super().__init__(f"A port with MAC address {mac} already exists.")


class InvalidStateForChange(Conflict):
    retryable = True


class StaleRevision(Conflict):
    """Another request changed the row between this one's read and its write
    (the row's revision moved on): nothing of this request was stored."""

    retryable = True


class RevisionMismatch(MetalnicError):
    """Neutron's ``If-Match: revision_number=N`` precondition failed."""

    status = 412
    neutron_type = "RevisionNumberConstraintFailed"


class PayloadTooLarge(MetalnicError):
    status = 413


class Unavailable(MetalnicError):
    status = 503
    retryable = True


class ConductorStopping(Unavailable):
    """The server is stopping: a flow ends at its next step, new work is refused."""

    def __init__(self, what: str) -> None:
        super().__init__(f"The conductor is stopping; {what}.")
        self.what = what


class NodeLocked(Conflict):
    retryable = True

    def __init__(self, node: str, holder: str) -> None:
        super().__init__(f"Node {node} is locked by {holder}; retry after it finishes.")


class InvalidStateRequested(InvalidInput):
    """A provision or power verb that the node's state does not allow."""


class NetworkNotFound(NotFound):
    neutron_type = "NetworkNotFound"

    def __init__(self, ident: str) -> None:
        super().__init__(f"Network {ident} could not be found.")


class NetworkPortNotFound(NotFound):
    neutron_type = "PortNotFound"

    def __init__(self, ident: str) -> None:
        super().__init__(f"Port {ident} could not be found.")


class SecurityGroupNotFound(NotFound):
    neutron_type = "SecurityGroupNotFound"

    def __init__(self, ident: str) -> None:
        super().__init__(f"Security group {ident} does not exist")


class AgentNotFound(NotFound):
    neutron_type = "AgentNotFound"

    def __init__(self, ident: str) -> None:
        super().__init__(f"Agent {ident} could not be found.")


class AgentGrantNotFound(NotFound):
    neutron_type = "AgentGrantNotFound"

    def __init__(self, user: str) -> None:
        super().__init__(f"User {user} has no agent grant.")


class SegmentInUse(Conflict):
    neutron_type = "VlanIdInUse"


class NoSegmentAvailable(Conflict):
    neutron_type = "NoNetworkAvailable"


class NetworkMacInUse(Conflict):
    neutron_type = "MacAddressInUse"


class NetworkInUse(Conflict):
    neutron_type = "NetworkInUse"


# --- subnets and IP addresses (Neutron's types and words) ---------------------------------


class InvalidOperation(InvalidInput):
    """A rule between values, or between a value and what is stored, is broken:
    Neutron's ``InvalidInput`` ("Invalid input for operation: ...")."""

    neutron_type = "InvalidInput"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid input for operation: {reason}")


class SubnetNotFound(NotFound):
    neutron_type = "SubnetNotFound"

    def __init__(self, ident: str) -> None:
        super().__init__(f"Subnet {ident} could not be found.")


class SubnetInUse(Conflict):
    neutron_type = "SubnetInUse"

    def __init__(self, ident: str) -> None:
        super().__init__(
            f"Unable to complete operation on subnet {ident}: One or more ports have an IP "
            "allocation from this subnet."
        )


class GatewayConflictWithAllocationPools(Conflict):
    neutron_type = "GatewayConflictWithAllocationPools"


class InvalidAllocationPool(InvalidInput):
    neutron_type = "InvalidAllocationPool"


class OutOfBoundsAllocationPool(InvalidInput):
    neutron_type = "OutOfBoundsAllocationPool"


class OverlappingAllocationPools(Conflict):
    neutron_type = "OverlappingAllocationPools"


class DNSNameServersExhausted(InvalidInput):
    neutron_type = "DNSNameServersExhausted"


class HostRoutesExhausted(InvalidInput):
    neutron_type = "HostRoutesExhausted"


class IpAddressGenerationFailure(Conflict):
    neutron_type = "IpAddressGenerationFailure"

    def __init__(self, network_id: str) -> None:
        super().__init__(f"No more IP addresses available on network {network_id}.")


class IpAddressAlreadyAllocated(Conflict):
    neutron_type = "IpAddressAlreadyAllocated"

    def __init__(self, ip: str, subnet_id: str) -> None:
        super().__init__(f"IP address {ip} already allocated in subnet {subnet_id}")


class InvalidIpForSubnet(InvalidInput):
    neutron_type = "InvalidIpForSubnet"

    def __init__(self, ip: str) -> None:
        super().__init__(f"IP address {ip} is not a valid IP for the specified subnet.")


class InvalidIpForNetwork(InvalidInput):
    neutron_type = "InvalidIpForNetwork"

    def __init__(self, ip: str) -> None:
        super().__init__(
            f"IP address {ip} is not a valid IP for any of the subnets on the specified network."
        )


class NicHostHeld(Conflict):
    """Another live agent serves this NIC host."""

    neutron_type = "NicHostInUse"


class TagNotFound(NotFound):
    neutron_type = "TagNotFound"

    def __init__(self, tag: str) -> None:
        super().__init__(f"Tag {tag} could not be found.")


class TagsLimitExceeded(InvalidInput):
    """More tags on one resource than Neutron's per-resource limit (its BadRequest)."""

    neutron_type = "BadRequest"

    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(
            f"Bad {kind} request: The number of tags exceed the per-resource limit of {limit}."
        )


class AddressPairAndPortSecurityRequired(Conflict):
    neutron_type = "AddressPairAndPortSecurityRequired"

    def __init__(self) -> None:
        super().__init__(
            "Port Security must be enabled in order to have allowed address pairs on a port."
        )


class AllowedAddressPairExhausted(InvalidInput):
    neutron_type = "AllowedAddressPairExhausted"

    def __init__(self, quota: int) -> None:
        super().__init__(f"Maximum number of allowed address pairs exceeded: {quota}.")


class DuplicateAddressPairInRequest(InvalidInput):
    neutron_type = "DuplicateAddressPairInRequest"

    def __init__(self, mac: str, ip: str) -> None:
        super().__init__(
            f"Request contains duplicate address pair: mac_address {mac} ip_address {ip}."
        )


class DriverError(MetalnicError):
    """A driver could not do what was asked; the message says why, without secrets."""

    status = 500


class DriverConfigError(DriverError):
    """driver_info is incomplete or invalid (found by validate())."""

    status = 400


class DriverUnsupported(DriverError):
    """The driver or the device cannot do this (a boot device, a power target);
    Ironic answers such requests with 400 (InvalidParameterValue)."""

    status = 400


class BmcCredentialsRefused(DriverError):
    """The BMC refused the credentials: retrying cannot help until driver_info changes."""


class BmcRetryable(DriverError):
    """A BMC failure that may pass: the conductor retries it; the API answers 503."""

    status = 503
    retryable = True


class BmcUnreachable(BmcRetryable):
    """No answer at all: connection refused, no route, the name does not resolve."""


class BmcTimedOut(BmcRetryable):
    """The BMC took a request but did not answer it in time."""


class BmcBusy(BmcRetryable):
    """The BMC answered that it is busy (HTTP 503/429, IPMI completion code 0xC0)."""
