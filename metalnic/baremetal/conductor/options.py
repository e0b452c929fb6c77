"""Options a provision verb accepts besides its target, as Ironic's API does.

``clean_steps`` (manual cleaning) goes to ``driver_internal_info``;
``configdrive`` (deploy/rebuild) to ``instance_info``; ``rescue_password``
(rescue, required there and refused elsewhere, as Ironic does) is stored as its
hash only (``metalnic.baremetal.rescuepw``).  Unknown options and
malformed values are refused before anything moves: the caller's transaction
rolls back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metalnic.baremetal import rescuepw
from metalnic.baremetal.conductor.states import Event
from metalnic.baremetal.models import Node
from metalnic.errors import InvalidInput


def apply(node: Node, event: Event, body: dict[str, Any]) -> None:
    """Verb options Ironic accepts; unknown ones are refused before anything moves."""
    allowed = {
        "target",
        "clean_steps",
        "configdrive",
        "rescue_password",
        "disable_ramdisk",
        "deploy_steps",
    }
    unknown = set(body) - allowed
    if unknown:
        raise InvalidInput(f"Unknown provision option(s): {', '.join(sorted(unknown))}.")
    _configdrive(node, event, body)
    _rescue_password(node, event, body)
    if event == Event.CLEAN:
        steps = body.get("clean_steps")
        if (
            not isinstance(steps, list)
            or not steps
            or not all(
                isinstance(s, dict)
                and isinstance(s.get("interface"), str)
                and isinstance(s.get("step"), str)
                for s in steps
            )
        ):
            raise InvalidInput(
                'Manual cleaning needs clean_steps: [{"interface": "deploy", "step": "..."}].'
            )
        node.driver_internal_info = {**node.driver_internal_info, "clean_steps": steps}


def _rescue_password(node: Node, event: Event, body: Mapping[str, object]) -> None:
    password = body.get("rescue_password")
    if event != Event.RESCUE:
        if password is not None:
            raise InvalidInput(rescuepw.ONLY_RESCUE)
        return
    hashed = rescuepw.hash_password(password)  # refuses a missing or blank one
    node.instance_info = {**node.instance_info, rescuepw.HASH_KEY: hashed}


CONFIGDRIVE_KEYS = frozenset({"meta_data", "network_data", "user_data", "vendor_data"})


def _configdrive(node: Node, event: Event, body: dict[str, Any]) -> None:
    """Ironic's ``configdrive`` on deploy/rebuild: the instance's metadata, network
    configuration and user data, written by the ramdisk agent next to the image.

    Kept in ``instance_info`` (a secret there: never shown) until the node is
    undeployed.  Accepted: a dict of the OpenStack metadata keys (API 1.56's form)
    or a string (an encoded ISO image, handed to the agent as it is)."""
    drive = body.get("configdrive")
    if event == Event.DELETE:
        node.instance_info = {k: v for k, v in node.instance_info.items() if k != "configdrive"}
    if drive is None:
        return
    if event not in (Event.DEPLOY, Event.REBUILD):
        raise InvalidInput("configdrive is accepted only with the active and rebuild targets.")
    if isinstance(drive, dict):
        unknown = set(drive) - CONFIGDRIVE_KEYS
        if unknown:
            raise InvalidInput(
                f"Unknown configdrive key(s): {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(CONFIGDRIVE_KEYS))}."
            )
        for key in ("meta_data", "network_data", "vendor_data"):
            if key in drive and not isinstance(drive[key], dict):
                raise InvalidInput(f"configdrive {key} must be an object.")
    elif not isinstance(drive, str) or not drive:
        raise InvalidInput("configdrive must be an object or a non-empty string.")
    node.instance_info = {**node.instance_info, "configdrive": drive}
