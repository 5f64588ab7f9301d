"""A loopback SendGrid v3 Mail Send peer (``POST /v3/mail/send``).

Implements, from SendGrid's v3 API reference: Bearer authentication (401
with ``errors[]``), the request's required fields (personalizations with at
least one ``to``, ``from.email``, a subject for every personalization,
content with a non-empty ``value`` and ``text/plain`` before ``text/html``),
limits (1,000 personalizations, 1,000 recipients in total, 10 categories),
reserved headers, and the 202 answer with ``X-Message-Id``. Errors come back
as ``400 {"errors": [{"message", "field", "help"}]}``.
"""

from __future__ import annotations

import itertools
import json
import ssl
from typing import Any

from peers.esp_base import ESPPeer, Recorded, Reply

RESERVED_HEADERS = {
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
}


class SendGridPeer(ESPPeer):
    """Accepts mail for ``api_key``; refuses other keys with 401."""

    def __init__(
        self, api_key: str = "SG.test-key-0123456789", ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(ssl_context)
        self.api_key = api_key
        self._ids = itertools.count(1)
        self.accepted: list[dict[str, Any]] = []
        #: Recipients the peer refuses (400 naming the personalization).
        self.invalid_recipients: set[str] = set()

    def handle(self, req: Recorded) -> Reply:
        if req.method != "POST" or req.path != "/v3/mail/send":
            return Reply.json(404, {"errors": [{"message": "not found", "field": None}]})
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply.json(
                401,
                {
                    "errors": [
                        {
                            "field": None,
                            "message": (
                                "The provided authorization grant is invalid, expired, or revoked"
                            ),
                        }
                    ]
                },
            )
        if "application/json" not in req.headers.get("content-type", ""):
            return self._bad([("Content-Type should be application/json.", None)])
        if len(req.body) > 30 * 1024 * 1024:
            return Reply(413, b"")
        try:
            body = json.loads(req.body)
        except ValueError:
            return self._bad([("Bad Request", None)])
        errors = list(self._validate(body))
        if errors:
            return self._bad(errors)
        self.accepted.append(body)
        mid = f"sgpeer{next(self._ids):06d}"
        return Reply(202, b"", {"X-Message-Id": mid})

    def _bad(self, errors: list[tuple[str, str | None]]) -> Reply:
        return Reply.json(
            400,
            {
                "errors": [
                    {"message": m, "field": f, "help": "http://sendgrid.com/docs/API_Reference/"}
                    for m, f in errors
                ]
            },
        )

    def _validate(self, body: Any) -> Any:
        if not isinstance(body, dict):
            yield "Bad Request", None
            return
        pers = body.get("personalizations")
        if not isinstance(pers, list) or not pers:
            yield (
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
            return
        if len(pers) > 1000:
            yield (
                "The personalizations field may not have more than 1000 items.",
                "personalizations",
            )
        total = 0
        for n, p in enumerate(pers):
            to = p.get("to")
            if not isinstance(to, list) or not to:
                yield (
                    "The to array is required for all personalization objects, and must "
                    "have at least one email object with a valid email address.",
                    f"personalizations.{n}.to",
                )
                continue
            for kind in ("to", "cc", "bcc"):
                for k, r in enumerate(p.get(kind, [])):
                    total += 1
                    addr = r.get("email", "") if isinstance(r, dict) else ""
                    if "@" not in addr or addr in self.invalid_recipients:
                        yield (
                            "Does not contain a valid address.",
                            f"personalizations.{n}.{kind}.{k}.email",
                        )
            if "subject" not in p and not body.get("subject"):
                yield (
                    "The subject is required. You can get around this requirement if you "
                    "use a template with a subject defined or if every personalization has "
                    "a subject defined.",
                    "subject",
                )
            for name in p.get("headers", {}):
                if name.lower() in RESERVED_HEADERS:
                    yield (
                        f"The header {name} is reserved and cannot be set.",
                        f"personalizations.{n}.headers",
                    )
            args = p.get("custom_args", {})
            if any(not isinstance(v, str) for v in args.values()):
                yield "Custom args values must be strings.", f"personalizations.{n}.custom_args"
        if total > 1000:
            yield "The total number of recipients must be no more than 1000.", "personalizations"
        frm = body.get("from")
        if not isinstance(frm, dict) or "@" not in str(frm.get("email", "")):
            yield (
                "The from object must be provided for every email send. It is an object "
                "that requires an email parameter, but may also contain a name parameter.",
                "from",
            )
        content = body.get("content")
        if not body.get("template_id"):
            if not isinstance(content, list) or not content:
                yield (
                    "Unless a valid template_id is provided, the content parameter is required.",
                    "content",
                )
            else:
                types = [c.get("type") for c in content]
                if (
                    "text/html" in types
                    and "text/plain" in types
                    and types.index("text/plain") > types.index("text/html")
                ):
                    yield (
                        "If present, text/plain must be first, followed by text/html, "
                        "followed by any other content.",
                        "content",
                    )
                for k, c in enumerate(content):
                    if not c.get("value"):
                        yield (
                            "The content value must be a string at least one character in length.",
                            f"content.{k}.value",
                        )
        cats = body.get("categories", [])
        if len(cats) > 10:
            yield "The categories array may not have more than 10 items.", "categories"
        for name in body.get("headers", {}):
            if name.lower() in RESERVED_HEADERS:
                yield f"The header {name} is reserved and cannot be set.", "headers"
