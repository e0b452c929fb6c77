"""The JSON shape of an agent as Neutron renders it (``GET /v2.0/agents``).

Re-exported by ``network/views.py`` (``views.agent``), where the other shapes
live; kept apart only so that module stays readable.  ``configurations`` is
shown through ``metalnic.redact`` (secret-named keys read ``******``).
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from metalnic import redact
from metalnic.jsontypes import JSONObject
from metalnic.network.models import Agent


class AgentView(TypedDict):
    id: str
    agent_type: str
    binary: str
    host: str
    topic: str
    admin_state_up: bool
    alive: bool
    availability_zone: None
    description: None
    resources_synced: None
    configurations: JSONObject
    created_at: str
    started_at: str
    heartbeat_timestamp: str


def agent(a: Agent, alive: bool) -> AgentView:
    def plain(value: dt.datetime) -> str:  # Neutron's agent timestamps have no T/Z
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    return {
        "id": a.id,
        "agent_type": a.agent_type,
        "binary": a.binary,
        "host": a.host,
        "topic": "N/A",
        "admin_state_up": a.admin_state_up,
        "alive": alive,
        "availability_zone": None,
        "description": None,
        "resources_synced": None,
        "configurations": redact.redact(a.configurations),
        "created_at": plain(a.created_at),
        "started_at": plain(a.started_at),
        "heartbeat_timestamp": plain(a.heartbeat_timestamp),
    }
