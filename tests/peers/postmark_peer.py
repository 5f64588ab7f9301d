"""A loopback Postmark peer: ``POST /email`` and ``POST /email/batch``.

Implements, from Postmark's API reference: the ``X-Postmark-Server-Token``
header (401 with ErrorCode 10 when missing or wrong; ``POSTMARK_API_TEST``
accepted), ``Accept``/``Content-Type: application/json``, required From/To,
at most 50 recipients per To/Cc/Bcc field (comma-separated RFC 5322
addresses: a display name holding a comma must be quoted, else the piece
before it is an illegal address, ErrorCode 300), one Tag of at most 1,000
characters, at most 500 messages per batch (422 with ErrorCode 410),
inactive recipients (ErrorCode 406) and sender signatures (ErrorCode 400).
``/email`` answers 200 or 422 with ``{"ErrorCode", "Message", ...}``;
``/email/batch`` always answers 200 with one such entry per message.
"""

from __future__ import annotations

import itertools
import json
import uuid
from email.utils import getaddresses
from typing import Any

from peers.esp_base import ESPPeer, Recorded, Reply


def _addresses(field: Any) -> list[tuple[str, str]]:
    """(name, address) pairs of a comma-separated RFC 5322 address list."""
    text = str(field or "").strip()
    return getaddresses([text]) if text else []


def _split(field: Any) -> list[str]:
    return [a for _, a in _addresses(field)]


class PostmarkPeer(ESPPeer):
    """Accepts mail from ``senders`` with ``token``."""

    def __init__(
        self,
        token: str = "pm-server-token-0123",
        senders: tuple[str, ...] = ("news@mail.example.org",),
    ) -> None:
        super().__init__()
        self.token = token
        self.senders = set(senders)
        self.inactive: set[str] = set()
        self.maintenance = False
        self.accepted: list[dict[str, Any]] = []
        self._n = itertools.count(1)

    def handle(self, req: Recorded) -> Reply:
        if req.method != "POST" or req.path not in ("/email", "/email/batch"):
            return Reply.json(404, {"ErrorCode": 404, "Message": "Not found"})
        if req.headers.get("x-postmark-server-token") not in (self.token, "POSTMARK_API_TEST"):
            return Reply.json(
                401,
                {
                    "ErrorCode": 10,
                    "Message": "The Server Token you provided "
                    "in the X-Postmark-Server-Token request header was invalid.",
                },
            )
        if "application/json" not in req.headers.get("accept", ""):
            return Reply.json(
                406, {"ErrorCode": 0, "Message": "Not Acceptable: send Accept: application/json"}
            )
        if "application/json" not in req.headers.get("content-type", ""):
            return Reply.json(415, {"ErrorCode": 0, "Message": "Unsupported Media Type"})
        try:
            body = json.loads(req.body)
        except ValueError:
            return Reply.json(422, {"ErrorCode": 402, "Message": "Invalid JSON"})
        if req.path == "/email":
            if not isinstance(body, dict):
                return Reply.json(422, {"ErrorCode": 402, "Message": "Invalid JSON"})
            entry = self._one(body)
            return Reply.json(200 if entry["ErrorCode"] == 0 else 422, entry)
        if not isinstance(body, list):
            return Reply.json(422, {"ErrorCode": 402, "Message": "Invalid JSON"})
        if len(body) > 500:
            return Reply.json(
                422,
                {
                    "ErrorCode": 410,
                    "Message": "Too many batch messages: the batch can contain up to 500 messages.",
                },
            )
        return Reply.json(200, [self._one(m) for m in body])

    def _one(self, msg: dict[str, Any]) -> dict[str, Any]:
        to = _split(msg.get("To"))
        if self.maintenance:
            return {"ErrorCode": 100, "Message": "Maintenance: sending is temporarily paused."}
        if not msg.get("From"):
            return {"ErrorCode": 300, "Message": "Invalid 'From' address: ''."}
        if not to:
            return {"ErrorCode": 300, "Message": "Zero recipients specified"}
        for field in ("To", "Cc", "Bcc", "From", "ReplyTo"):
            for _, addr in _addresses(msg.get(field)):
                if "@" not in addr:
                    return {
                        "ErrorCode": 300,
                        "Message": f"Error parsing '{field}': Illegal "
                        f"email address '{addr}'. It must contain the '@' symbol.",
                    }
            if field in ("To", "Cc", "Bcc") and len(_split(msg.get(field))) > 50:
                return {"ErrorCode": 300, "Message": f"Too many {field} recipients."}
        froms = _split(msg["From"])
        sender = froms[0] if len(froms) == 1 else ""
        if sender not in self.senders:
            return {
                "ErrorCode": 400,
                "Message": f"The 'From' address you supplied ({sender}) "
                "is not a Sender Signature on your account.",
            }
        if not msg.get("TextBody") and not msg.get("HtmlBody"):
            return {
                "ErrorCode": 300,
                "Message": "Provide either email TextBody or HtmlBody or both.",
            }
        tag = msg.get("Tag")
        if tag is not None and (not isinstance(tag, str) or len(tag) > 1000):
            return {
                "ErrorCode": 300,
                "Message": "Tag must be one string of at most 1000 characters.",
            }
        everyone = to + _split(msg.get("Cc")) + _split(msg.get("Bcc"))
        if any(a in self.inactive for a in everyone):
            return {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive.",
            }
        self.accepted.append(msg)
        n = next(self._n)
        return {
            "To": msg["To"],
            "SubmittedAt": "2026-11-27T23:00:00.0000000Z",
            "MessageID": str(uuid.UUID(int=n)),
            "ErrorCode": 0,
            "Message": "OK",
        }
