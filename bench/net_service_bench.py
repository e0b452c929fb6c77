"""In-process CPU per call of the network service (no HTTP, SQLite in a temporary
directory): smart-nic port create (the median of ports 300–N), show of one port,
list of all N ports.  ``--attrs`` gives every port two tags, two allowed address
pairs and two extra DHCP options (Ironic's iPXE pair).  CPU time
(``time.process_time``) of this process only, so another process on a shared
machine disturbs it less than it does wall-clock HTTP timings.  To compare two
versions, run it alternately with each on ``PYTHONPATH``:

    PYTHONPATH=/tmp/main-src .venv/bin/python bench/net_service_bench.py
    .venv/bin/python bench/net_service_bench.py --attrs

It measures and reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.embedded_network import CONDUCTOR
from metalnic.network.inputs import NetworkCreate, PortCreate
from metalnic.network.service import NetworkService
from metalnic.settings import Settings


def port_body(network_id: str, i: int, attrs: bool) -> dict[str, Any]:
    host = f"nic-{i}"
    body: dict[str, Any] = {
        "network_id": network_id,
        "name": f"b{i}",
        "binding:vnic_type": "smart-nic",
        "binding:host_id": host,
        "binding:profile": {"local_link_information": [{"hostname": host, "port_id": "pf0hpf"}]},
    }
    if attrs:
        body["tags"] = ["bench", f"n{i}"]
        body["allowed_address_pairs"] = [
            {"ip_address": "10.0.0.0/24"},
            {"ip_address": f"10.1.{i // 250}.{i % 250}"},
        ]
        body["extra_dhcp_opts"] = [
            {"opt_name": "tag:ipxe,67", "opt_value": "http://192.0.2.1/boot.ipxe"},
            {"opt_name": "tag:!ipxe,67", "opt_value": "undionly.kpxe"},
        ]
    return body


def cpu_ms(call: Any) -> float:
    start = time.process_time()
    call()
    return (time.process_time() - start) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ports", type=int, default=500)
    p.add_argument("--repeats", type=int, default=50, help="lists and rounds of shows")
    p.add_argument("--attrs", action="store_true", help="tags, pairs and DHCP options")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="net-service-bench-")
    db = Database(f"sqlite:///{tmp}/db.sqlite")
    migrate.upgrade(db.engine)
    service = NetworkService(Settings(state_dir=tmp), db)
    net = service.networks.create(CONDUCTOR, NetworkCreate(name="bench"))["id"]
    creates, ids = [], []
    for i in range(args.ports):
        body = PortCreate.parse(port_body(net, i, args.attrs), ("port",))
        start = time.process_time()
        ids.append(service.ports.create(CONDUCTOR, body)["id"])
        creates.append((time.process_time() - start) * 1000)
    sample = ids[:: max(1, len(ids) // 50)]
    shows = [
        cpu_ms(lambda: [service.ports.show(CONDUCTOR, i) for i in sample]) / len(sample)
        for _ in range(args.repeats // 5 or 1)
    ]
    lists = [
        cpu_ms(lambda: service.ports.list(CONDUCTOR, {"network_id": net}))
        for _ in range(args.repeats)
    ]
    tail = creates[min(300, len(creates) // 2) :]
    print(
        f"ports {args.ports}{' with attrs' if args.attrs else ''}: "
        f"create median {statistics.median(tail):.2f} ms; "
        f"show median {statistics.median(shows):.3f} ms (min {min(shows):.3f}); "
        f"list median {statistics.median(lists):.2f} ms (min {min(lists):.2f})"
    )
    db.dispose()


if __name__ == "__main__":
    main()
