"""SendGrid v3 ``/v3/mail/send`` transport (JSON).

How envelopes map to requests: every envelope becomes one or more
*personalizations* carrying what may differ per message: its recipients
(split into to / cc / bcc by the message's headers), subject, custom headers
(Message-ID, List-Unsubscribe, ...) and metadata as ``custom_args``.
Envelopes whose remaining content is identical (From, Reply-To, bodies,
attachments, tags as categories) share one request, up to 1,000
personalizations and 1,000 recipients in total; envelopes with different
content go in separate requests. SendGrid answers once per request, so the
envelopes of a request share its outcome and its ``X-Message-Id`` — except
when a 400 names the personalizations at fault: then only their envelopes are
rejected, and the others (not sent) go again at once in one more request.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import httpx

from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports._http import (
    PREPARE_ERRORS,
    Call,
    HTTPTransportBase,
    LocalResult,
    credential_from_url,
    http_url_options,
    json_or_none,
    status_for_http,
)
from mailscale.transports._mime import (
    BodyCache,
    Decomposed,
    decompose,
    quoted_string,
    split_recipients,
)
from mailscale.transports.base import TransportURL, redact_url

__all__ = ["SendGridTransport"]

_REGIONS = {
    "global": "https://api.sendgrid.com",
    "us": "https://api.sendgrid.com",
    "eu": "https://api.eu.sendgrid.com",
}
#: Per request: at most 1,000 personalizations and 1,000 recipients in total.
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)")
_NOT_SENT = "not sent: SendGrid refused another message of the same request"


class SendGridTransport(HTTPTransportBase):
    """Send through SendGrid's v3 Mail Send API.

    URL: ``sendgrid://API_KEY@default`` (``?region=eu`` for the EU data residency host).

    Args:
        api_key: the API key (sent as ``Authorization: Bearer``).
        region: ``"global"`` (default) or ``"eu"``.
        **http: see :class:`~mailscale.transports._http.HTTPTransportBase`
            (``base_url``, ``timeout``, ``verify``, ``max_connections``, ``concurrency``).
    """

    name: ClassVar[str] = "sendgrid"
    schemes: ClassVar[tuple[str, ...]] = ("sendgrid",)
    payload: str = "json"
    max_batch: int = MAX_PERSONALIZATIONS
    rate_preset: ClassVar[str | None] = "sendgrid"
    default_base_url: ClassVar[str] = _REGIONS["global"]

    def __init__(self, api_key: str, *, region: str = "global", **http: Any) -> None:
        if not api_key:
            raise ConfigurationError("sendgrid: an API key is required")
        if region not in _REGIONS:
            raise ConfigurationError(
                f"sendgrid: unknown region {region!r} (expected one of: global, eu)"
            )
        self.region = region
        self._api_key = api_key
        self._bodies = BodyCache()
        http.setdefault("base_url", _REGIONS[region])
        super().__init__(**http)

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> SendGridTransport:
        """Build from ``sendgrid://API_KEY@default[?region=eu][&base_url=URL]``."""
        key = credential_from_url(url, "api key")
        return cls(key, **{**http_url_options(url, ("region",)), **options})

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _send_again(self, results: Sequence[SendResult]) -> list[int]:
        """Envelopes held back by another's 400 are sent again once, at once."""
        return [i for i, r in enumerate(results) if r.status_text == _NOT_SENT]

    def _repr_fields(self) -> dict[str, Any]:
        return {"region": self.region, "base_url": redact_url(self.base_url)}

    # -- building requests ---------------------------------------------------

    def build_payload(self, env: Envelope) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The request body without personalizations, and the envelope's personalizations."""
        parts = decompose(env, self._bodies)
        return self._shared(env, parts), self._personalizations(env, parts)

    def _shared(self, env: Envelope, parts: Decomposed) -> dict[str, Any]:
        """The part of the request every personalization shares."""
        body: dict[str, Any] = {"from": _address(parts.from_email, parts.from_name)}
        if parts.reply_to:
            if len(parts.reply_to) == 1:
                body["reply_to"] = _address(parts.reply_to[0][1], parts.reply_to[0][0])
            else:
                body["reply_to_list"] = [_address(a, n) for n, a in parts.reply_to]
        content = []
        # SendGrid requires text/plain first, then text/html, then any other type.
        if parts.text:
            content.append({"type": "text/plain", "value": parts.text})
        if parts.html:
            content.append({"type": "text/html", "value": parts.html})
        content.extend({"type": t, "value": v} for t, v in parts.other_content if v)
        if content:
            body["content"] = content
        if parts.attachments:
            body["attachments"] = [
                {
                    "content": base64.b64encode(a.content).decode("ascii"),
                    "type": a.content_type,
                    "filename": a.filename,
                    "disposition": "inline" if a.inline else "attachment",
                    **({"content_id": a.content_id} if a.inline and a.content_id else {}),
                }
                for a in parts.attachments
            ]
        if env.tags:
            body["categories"] = list(env.tags)
        return body

    def _personalizations(self, env: Envelope, parts: Decomposed) -> list[dict[str, Any]]:
        """What is particular to *env*: recipients, subject, headers, custom_args."""
        personalizations = []
        names = parts.names()
        for to, cc, bcc in split_recipients(env, parts):
            p: dict[str, Any] = {"to": [_recipient(r, names.get(r.lower(), "")) for r in to]}
            if cc:
                p["cc"] = [_recipient(r, names.get(r.lower(), "")) for r in cc]
            if bcc:
                p["bcc"] = [{"email": r} for r in bcc]
            if parts.subject is not None:
                p["subject"] = parts.subject
            if parts.headers:
                p["headers"] = dict(parts.headers)
            if env.metadata:
                p["custom_args"] = dict(env.metadata)
            personalizations.append(p)
        return personalizations

    def _plan(self, batch: Sequence[Envelope]) -> tuple[list[Call], list[LocalResult]]:
        local: list[LocalResult] = []
        groups: dict[Hashable, tuple[dict[str, Any], list[tuple[int, list[dict[str, Any]]]]]] = {}
        for i, env in enumerate(batch):
            rejected = self._over_limits(i, env, "SendGrid", (MAX_RECIPIENTS, "request"))
            if rejected is not None:
                local.append(rejected)
                continue
            try:
                parts = decompose(env, self._bodies)
                personalizations = self._personalizations(env, parts)
            except PREPARE_ERRORS as exc:
                local.append(self._unreadable(i, env, exc))
                continue
            key: Hashable
            if parts.content_key is not None:
                # Byte-identical bodies: compare the small fields, not the whole JSON.
                key = (
                    parts.from_email,
                    parts.from_name,
                    parts.reply_to,
                    env.tags,
                    parts.content_key,
                )
                group = groups.get(key)
                if group is None:
                    group = groups[key] = (self._shared(env, parts), [])
            else:
                shared = self._shared(env, parts)
                key = json.dumps(shared, sort_keys=True)
                group = groups.setdefault(key, (shared, []))
            group[1].append((i, personalizations))
        calls: list[Call] = []
        for body, members in groups.values():
            chunk: list[tuple[int, list[dict[str, Any]]]] = []
            n_pers = n_rcpt = 0
            for index, pers in members:
                rcpts = sum(len(p.get(k, ())) for p in pers for k in ("to", "cc", "bcc"))
                if chunk and (
                    n_pers + len(pers) > MAX_PERSONALIZATIONS or n_rcpt + rcpts > MAX_RECIPIENTS
                ):
                    calls.append(self._call(body, chunk, batch))
                    chunk, n_pers, n_rcpt = [], 0, 0
                chunk.append((index, pers))
                n_pers += len(pers)
                n_rcpt += rcpts
            if chunk:
                calls.append(self._call(body, chunk, batch))
        return calls, local

    def _call(
        self,
        body: dict[str, Any],
        chunk: list[tuple[int, list[dict[str, Any]]]],
        batch: Sequence[Envelope],
    ) -> Call:
        owners: list[int] = []  # personalization position -> batch index
        personalizations: list[dict[str, Any]] = []
        for index, pers in chunk:
            owners.extend([index] * len(pers))
            personalizations.extend(pers)
        payload = {"personalizations": personalizations, **body}
        indices = tuple(index for index, _ in chunk)

        def parse_response(
            response: httpx.Response, latency: float
        ) -> list[tuple[int, SendResult]]:
            return self._parse_response(response, latency, indices, owners, batch)

        return Call(
            method="POST",
            path="/v3/mail/send",
            indices=indices,
            request={"json": payload},
            parse_response=parse_response,
        )

    # -- reading responses ---------------------------------------------------

    def _parse_response(
        self,
        response: httpx.Response,
        latency: float,
        indices: tuple[int, ...],
        owners: list[int],
        batch: Sequence[Envelope],
    ) -> list[tuple[int, SendResult]]:
        code = response.status_code
        status = status_for_http(code)
        if status is SendStatus.ACCEPTED:
            mid = response.headers.get("x-message-id")
            return [
                (
                    i,
                    self._result(
                        batch[i],
                        status,
                        response=response,
                        latency=latency,
                        message_id=mid,
                        status_text="accepted",
                    ),
                )
                for i in indices
            ]
        text, culprits = _errors(response, owners)
        if code == 400 and culprits and len(indices) > 1:
            # Only the envelopes SendGrid named are at fault: the rest were not sent.
            out = []
            for i in indices:
                if i in culprits:
                    out.append(
                        (
                            i,
                            self._result(
                                batch[i],
                                SendStatus.REJECTED,
                                response=response,
                                latency=latency,
                                status_text=culprits[i],
                            ),
                        )
                    )
                else:
                    out.append(
                        (
                            i,
                            self._result(
                                batch[i],
                                SendStatus.DEFERRED,
                                response=response,
                                latency=latency,
                                status_text=_NOT_SENT,
                            ),
                        )
                    )
            return out
        return [
            (
                i,
                self._result(
                    batch[i], status, response=response, latency=latency, status_text=text
                ),
            )
            for i in indices
        ]


def _address(addr: str, name: str = "") -> dict[str, str]:
    return {"email": addr, "name": name} if name else {"email": addr}


def _recipient(addr: str, name: str) -> dict[str, str]:
    """A personalization's to/cc entry: the name as text, quoted when it holds ``,`` or ``;``.

    SendGrid documents that personalization names may not hold commas or
    semicolons: it splits the address there and drops the message. A quoted
    string (RFC 5322 section 3.2.4) is read whole, and shows as the bare name.
    """
    if name and ("," in name or ";" in name):
        name = quoted_string(name)
    return _address(addr, name)


def _errors(response: httpx.Response, owners: list[int]) -> tuple[str, dict[int, str]]:
    """The provider's error text, and the text per envelope the errors point at."""
    data = json_or_none(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not errors:
        return (response.reason_phrase or f"HTTP {response.status_code}"), {}
    messages: list[str] = []
    culprits: dict[int, list[str]] = {}
    shared = False
    for err in errors:
        if not isinstance(err, dict):
            continue
        msg = str(err.get("message", ""))
        field = str(err.get("field") or "")
        messages.append(f"{field}: {msg}" if field else msg)
        m = _PERSONALIZATION_FIELD.match(field)
        if m and int(m.group(1)) < len(owners):
            culprits.setdefault(owners[int(m.group(1))], []).append(msg)
        else:
            # An error in shared content concerns every envelope of the request.
            shared = True
    text = "; ".join(messages)
    if shared:
        return text, {}
    return text, {i: "; ".join(v) for i, v in culprits.items()}
