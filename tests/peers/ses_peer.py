"""SES peers: moto's SES v2 server on loopback, and an error-answering SES endpoint.

moto implements SendEmail with raw content and identity verification but not
throttling or service errors; :class:`SESErrorPeer` answers SendEmail the way
SES's REST-JSON protocol reports errors (``x-amzn-ErrorType`` header and a
``{"message": ...}`` body) so those paths run over real HTTP too.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from peers.esp_base import ESPPeer, Recorded, Reply


class MotoSES:
    """moto's server mode on 127.0.0.1 with helpers to verify identities and read sent mail."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def start(self) -> MotoSES:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(req) as r:
            r.read()

    def raw_messages(self) -> list[dict[str, Any]]:
        """Sent raw messages as moto records them (``raw_data``, ``source``, ``destinations``)."""
        with urllib.request.urlopen(self.url + "/moto-api/data.json") as r:
            data = json.load(r)
        return list(data.get("ses", {}).get("RawMessage", []))


class SESErrorPeer(ESPPeer):
    """Answers every SendEmail with the next programmed SES error (or 200 when none)."""

    def handle(self, req: Recorded) -> Reply:
        if req.path != "/v2/email/outbound-emails":
            return Reply.json(404, {"message": "not found"}, {"x-amzn-ErrorType": "NotFound"})
        return Reply.json(200, {"MessageId": f"peer-{len(self.requests)}"})

    def fail_with(
        self, n: int, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self.fail_next(
            n,
            Reply.json(status, {"message": message}, {"x-amzn-ErrorType": code, **(headers or {})}),
        )
