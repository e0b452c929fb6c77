"""Rescue interfaces (Ironic's ``agent``, ``fake`` and ``no-rescue``).

* ``agent``: the rescue ramdisk's agent heartbeats from the rescuing network;
  the conductor sends it ``rescue.finalize_rescue`` with the password's crypt
  hash (``rescue_password`` + ``hashed: true``, IPA's parameters), after which
  the ramdisk sets it for its ``rescue`` user and serves SSH.
* ``fake``: nothing to hand over (fake-hardware): the rescue ramdisk is booted
  and the node is in ``rescue`` at once.
* ``no-rescue``: the node cannot be rescued; ``validate`` says so before
  anything is touched.
"""

from __future__ import annotations

from metalnic.baremetal.drivers.base import DriverConfigError, NodeContext, RescueInterface
from metalnic.baremetal.drivers.deploy import agent_client

FINALIZE = "rescue.finalize_rescue"


class FakeRescue(RescueInterface):
    def validate(self, ctx: NodeContext) -> None:
        return None


class AgentRescue(RescueInterface):
    uses_agent = True

    def validate(self, ctx: NodeContext) -> None:
        return None

    def finalize(self, ctx: NodeContext, agent_url: str, hashed_password: str) -> None:
        params = {"rescue_password": hashed_password, "hashed": True}
        agent_client.run_command(
            agent_url, FINALIZE, params, agent_client.token_of(ctx), timeout=60.0
        )


class NoRescue(RescueInterface):
    def validate(self, ctx: NodeContext) -> None:
        raise DriverConfigError(
            "the no-rescue rescue interface cannot rescue; set rescue_interface to agent"
        )
