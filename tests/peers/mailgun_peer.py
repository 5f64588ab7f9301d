"""A loopback Mailgun peer: ``POST /v3/{domain}/messages.mime``.

Implements, from Mailgun's API reference: HTTP Basic authentication with user
``api`` (401 ``Forbidden`` otherwise), known sending domains (404 ``Domain
not found``), a ``multipart/form-data`` body with ``to`` and the ``message``
file part (400 when missing), at most 1,000 recipients and 3 tags, and the
``200 {"id": "<...>", "message": "Queued. Thank you."}`` answer.
"""

from __future__ import annotations

import base64
import itertools
import re

import attrs

from peers.esp_base import ESPPeer, Recorded, Reply

_PATH = re.compile(r"^/v3/([^/]+)/messages\.mime$")


@attrs.frozen
class FormPart:
    """One part of a multipart/form-data body, bytes exact."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> list[FormPart]:
    """Split a multipart/form-data body (RFC 7578) into its parts, bytes exact."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("no boundary")
    delimiter = b"--" + m.group(1).encode()
    chunks = body.split(delimiter)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise ValueError("malformed part")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without a header block")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disp)
        filename = re.search(r'\bfilename="([^"]*)"', disp)
        if not name:
            raise ValueError("part without a name")
        parts.append(
            FormPart(
                name.group(1),
                filename.group(1) if filename else None,
                headers.get("content-type"),
                data,
            )
        )
    return parts


class MailgunPeer(ESPPeer):
    """Accepts mail for ``domains`` with ``api_key``."""

    def __init__(
        self, api_key: str = "key-0123456789abcdef", domains: tuple[str, ...] = ("mg.example.com",)
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.domains = set(domains)
        self._ids = itertools.count(1)
        #: (domain, form parts) of every accepted message.
        self.accepted: list[tuple[str, list[FormPart]]] = []

    def handle(self, req: Recorded) -> Reply:
        m = _PATH.match(req.path)
        if req.method != "POST" or not m:
            return Reply.json(404, {"message": "Not Found"})
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        if req.headers.get("authorization") != expected:
            return Reply(401, b"Forbidden", {"Content-Type": "text/plain"})
        domain = m.group(1)
        if domain not in self.domains:
            return Reply.json(404, {"message": f"Domain not found: {domain}"})
        try:
            parts = parse_multipart(req.headers.get("content-type", ""), req.body)
        except ValueError as exc:
            return Reply.json(400, {"message": f"malformed form data: {exc}"})
        to = [p.data.decode() for p in parts if p.name == "to"]
        message = [p for p in parts if p.name == "message"]
        tags = [p for p in parts if p.name == "o:tag"]
        if not to:
            return Reply.json(400, {"message": "'to' parameter is missing"})
        if len(message) != 1 or message[0].filename is None:
            return Reply.json(400, {"message": "'message' parameter is missing"})
        if len(to) > 1000:
            return Reply.json(400, {"message": "Too many recipients"})
        if any("@" not in t for t in to):
            return Reply.json(
                400, {"message": "to parameter is not a valid address. please check documentation"}
            )
        if len(tags) > 3:
            return Reply.json(400, {"message": "Too many tags"})
        self.accepted.append((domain, parts))
        mid = f"<{next(self._ids):06d}.peer@{domain}>"
        return Reply.json(200, {"id": mid, "message": "Queued. Thank you."})
