"""Fault knobs of the lab's BMCs: a documented test hook, off unless a file says so.

A real BMC may refuse to boot its server into BIOS set-up (sushy-tools' libvirt
driver answers HTTP 500 for ``BiosSetup``; some vendors' Redfish answers 400,
an IPMI BMC a completion code).  The failure tests make the lab's BMCs do that
for one host:

* the knob is the file ``<faults dir>/<host name>/refuse-bios-setup`` — the lab
  passes its ``hosts`` directory, so it is ``<lab dir>/hosts/<name>/refuse-bios-setup``
  (``refuse_bios_setup(host_dir, True)`` writes it, ``False`` removes it);
* while it exists the host's Redfish system answers a ``PATCH`` of
  ``Boot.BootSourceOverrideTarget: BiosSetup`` with HTTP 400 and a Redfish error
  body, and stores nothing; the IPMI BMC (``lab.ipmi_bmc``) answers "set system
  boot options" for BIOS set-up with completion code 0xCC and keeps its flags.
  Every other request is served as usual.

The Redfish side runs sushy-tools' own emulator (``sushy_tools.emulator.main``)
in this module's ``main``, with one Flask ``before_request`` hook added — run it
as ``python -m metalnic.lab.bmcfaults --faults-dir DIR <sushy-emulator options>``
(``lab.redfish.start_redfish_emulator(faults_dir=…)`` does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from metalnic.jsontypes import JSONObject

REFUSE_BIOS_SETUP = "refuse-bios-setup"
BIOS_SETUP = "BiosSetup"


def refuse_bios_setup(host_dir: Path, refuse: bool) -> None:
    """Turn the host's "BMC refuses BIOS set-up" fault on or off."""
    knob = host_dir / REFUSE_BIOS_SETUP
    if refuse:
        host_dir.mkdir(parents=True, exist_ok=True)
        knob.write_text("the BMC refuses boot device BiosSetup (lab fault)\n")
    else:
        knob.unlink(missing_ok=True)


def refuses_bios_setup(faults_dir: Path | None, host: str) -> bool:
    """Is the fault on for ``host``?  (No faults dir, or an odd name: no.)"""
    if faults_dir is None or not host or "/" in host or host.startswith("."):
        return False
    return (faults_dir / host / REFUSE_BIOS_SETUP).exists()


def redfish_refusal(faults_dir: Path, system_name: str, body: Any) -> JSONObject | None:
    """The Redfish error body for a system PATCH that the fault refuses (else None)."""
    boot = body.get("Boot") if isinstance(body, dict) else None
    target = boot.get("BootSourceOverrideTarget") if isinstance(boot, dict) else None
    if target != BIOS_SETUP or not refuses_bios_setup(faults_dir, system_name):
        return None
    message = f"The boot source override target {BIOS_SETUP} is refused by this BMC."
    return {
        "error": {
            "code": "Base.1.0.GeneralError",
            "message": message,
            "@Message.ExtendedInfo": [
                {
                    "MessageId": "Base.1.0.PropertyValueNotInList",
                    "Message": message,
                    "Severity": "Warning",
                }
            ],
        }
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m metalnic.lab.bmcfaults", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--faults-dir", type=Path, required=True)
    args, rest = parser.parse_known_args(argv)
    import flask
    from sushy_tools.emulator import main as emulator

    faults_dir: Path = args.faults_dir

    def refuse() -> Any:
        request = flask.request
        path = request.path.rstrip("/")
        if request.method != "PATCH" or not path.startswith("/redfish/v1/Systems/"):
            return None
        identity = path.rsplit("/", 1)[1]
        try:
            name = str(emulator.app.systems.name(identity))
        except Exception:  # an unknown system: sushy-tools answers it itself
            return None
        refusal = redfish_refusal(faults_dir, name, request.get_json(silent=True))
        if refusal is None:
            return None
        emulator.app.logger.warning("lab fault: refused BiosSetup for system %s", name)
        return flask.jsonify(refusal), 400

    emulator.app.before_request(refuse)
    sys.argv = ["sushy-emulator", *rest]
    emulator.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
