"""Count the queries a check sends to the hostile fan-out zones (docs/auth.md, DNS budget).

PYTHONPATH=src:tests:tests/auth python tests/auth/fanout_count.py
"""

from __future__ import annotations

import time

from auth_zones import FAN, MX_FAN, PTR_FAN_IP, RUA_FAN, fanout_zone

from mailscale.auth import check_domain
from peers.dns_server import DNSServer

CASES: list[tuple[str, dict[str, object]]] = [
    ("SPF includes 300 wide, one sending IP", {"domain": FAN, "sending_ips": ["203.0.113.7"]}),
    ("2,000 MX hosts", {"domain": MX_FAN}),
    ("DMARC rua with 2,000 destinations", {"domain": RUA_FAN}),
    ("PTR with 1,000 names", {"domain": "nothing.test", "sending_ips": [PTR_FAN_IP]}),
]


def main() -> None:
    with DNSServer(fanout_zone()) as server:
        for name, kwargs in CASES:
            server.queries.clear()
            start = time.monotonic()
            check_domain(resolver=server.nameserver, timeout=1, lifetime=2, **kwargs)  # type: ignore[arg-type]
            print(
                f"{name}: {len(server.queries)} queries at the server "
                f"in {time.monotonic() - start:.1f} s"
            )


if __name__ == "__main__":
    main()
