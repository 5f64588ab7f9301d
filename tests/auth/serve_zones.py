"""Serve the authentication test zones on 127.0.0.1 until interrupted.

    PYTHONPATH=src:tests:tests/auth python tests/auth/serve_zones.py 5353

then, in another shell: ``mailscale dns check good.example.com --nameserver 127.0.0.1:5353``.
"""

from __future__ import annotations

import sys
import time

from auth_zones import build_zone, make_keys

from peers.dns_server import DNSServer


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5353
    with DNSServer(build_zone(make_keys()), port=port) as server:
        print(f"serving the test zones on {server.nameserver} (UDP and TCP); Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
