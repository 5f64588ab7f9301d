"""An SMTP server in its own process that logs when each message arrives.

``python arrival_server.py PORT LOGFILE``: accepts every message on 127.0.0.1:PORT and
appends ``<monotonic seconds> <first recipient>`` per message to LOGFILE. Its own
process, so the sender's threads do not delay it (the arrival log shows what a remote
server would see). Runs until killed.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller


class _Log:
    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)  # open as long as the process lives

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.file.write(f"{time.monotonic():.6f} {envelope.rcpt_tos[0]}\n")
        return "250 2.0.0 Ok: queued"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(_Log(path), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
