"""Deploy interfaces.  They differ only in how the image reaches the disk; the
network sequencing (and the smart NIC power rule) lives in the conductor's
flows, shared by all of them.

* ``fake``: nothing to write (fake-hardware).
* ``direct``: boots the ramdisk agent, which downloads the image from
  ``instance_info.image_source``, checks it against ``image_os_hash_value``
  (sha256) and writes it, with the config drive when the deploy gave one; the
  conductor checks the checksum it reports back.
* ``ramdisk``: the booted ramdisk is the instance; nothing is written.
* ``iscsi``: the ramdisk exports its disk over iSCSI and the conductor writes
  and reads back the image itself (``metalnic.baremetal.drivers.deploy.iscsi``).
* ``ansible``: the conductor runs metalnic's playbooks over SSH against the
  ramdisk (``metalnic.baremetal.drivers.deploy.ansible``).
"""

from __future__ import annotations

from metalnic.baremetal.drivers.base import (
    DeployInterface,
    DriverError,
    NodeContext,
    Say,
    say_nothing,
)
from metalnic.baremetal.drivers.deploy import agent_client, images
from metalnic.baremetal.drivers.deploy.ansible import AnsibleDeploy
from metalnic.baremetal.drivers.deploy.iscsi import IscsiDeploy

__all__ = ["AnsibleDeploy", "DirectDeploy", "FakeDeploy", "IscsiDeploy", "RamdiskDeploy"]


class FakeDeploy(DeployInterface):
    def validate(self, ctx: NodeContext) -> None:
        return None


class DirectDeploy(DeployInterface):
    uses_agent = True

    def validate(self, ctx: NodeContext) -> None:
        images.validate_image_info(ctx, "direct")

    def write_image(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        expected = str(ctx.instance_info["image_os_hash_value"]).lower()
        params: dict[str, object] = {
            "image_info": {
                "urls": [ctx.instance_info["image_source"]],
                "os_hash_algo": "sha256",
                "os_hash_value": expected,
            }
        }
        if "configdrive" in ctx.instance_info:
            params["configdrive"] = ctx.instance_info["configdrive"]
        result = agent_client.run_command(
            agent_url, "standby.prepare_image", params, agent_client.token_of(ctx)
        )
        written = str(result.get("os_hash_value", "")).lower()
        if written != expected:
            raise DriverError(
                f"image checksum mismatch: expected sha256 {expected}, the agent wrote {written}"
            )

    def clean_disk(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        agent_client.run_command(
            agent_url,
            "clean.execute_clean_step",
            {"step": {"interface": "deploy", "step": "erase_devices_metadata"}},
            agent_client.token_of(ctx),
        )


class RamdiskDeploy(DeployInterface):
    ramdisk_is_instance = True

    def validate(self, ctx: NodeContext) -> None:
        return None
