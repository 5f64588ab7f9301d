"""The SendGrid peer in its own process, logging when each request arrives.

``python esp_arrival_server.py API_KEY LOGFILE``: serves SendGrid's Mail Send API on
127.0.0.1 (a free port, printed as ``ready URL``) and appends
``<monotonic seconds> <personalizations> <status>`` per request to LOGFILE. Its own
process, so the sender's threads do not delay it (the arrival log shows what the
provider would see). Runs until killed.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers.esp_base import Recorded, Reply
from peers.sendgrid_peer import SendGridPeer


class _Logging(SendGridPeer):
    def __init__(self, api_key: str, path: str) -> None:
        super().__init__(api_key)
        self.file = open(path, "a", buffering=1)  # open as long as the process lives

    def handle(self, req: Recorded) -> Reply:
        at = time.monotonic()
        reply = super().handle(req)
        try:
            count = len(req.json()["personalizations"])
        except (ValueError, KeyError, TypeError):
            count = 0
        self.file.write(f"{at:.6f} {count} {reply.status}\n")
        return reply


def main() -> None:
    peer = _Logging(sys.argv[1], sys.argv[2]).start()
    print("ready", peer.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
