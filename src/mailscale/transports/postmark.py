"""Postmark ``/email`` and ``/email/batch`` transport (JSON).

A batch of one message goes to ``/email``; larger batches to ``/email/batch``
in chunks of at most 500 messages. Postmark answers a batch with 200 even
when some messages failed, so every entry's ``ErrorCode`` is read: 0 is
accepted, 100 (maintenance) and 429 (rate limit) deferred, any other code
rejected with Postmark's message. Postmark carries one ``Tag`` per message: the envelope's
first tag is sent, the others are not.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import httpx

from mailscale._log import get_logger
from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus, overall_status
from mailscale.transports._compat import deprecated_method, module_getattr
from mailscale.transports._http import (
    MAYBE_DELIVERED,
    PREPARE_ERRORS,
    Call,
    HTTPTransportBase,
    LocalResult,
    credential_from_url,
    http_url_options,
    json_or_none,
    status_for_http,
)
from mailscale.transports._mime import BodyCache, decompose, format_address, split_recipients
from mailscale.transports.base import TransportURL, redact_url

__all__ = ["PostmarkTransport", "status_for_error_code"]

_log = get_logger("mailscale.transports")

MAX_BATCH = 500
#: Postmark refuses a request body over 50 MB (/email/batch, attachments included).
MAX_REQUEST_BYTES = 50 * 1000 * 1000
MAX_RECIPIENTS = 50
#: Postmark's ``Tag`` holds one tag per message.
MAX_TAGS = 1
#: Postmark ErrorCodes that are transient (100 maintenance, 429 rate limit exceeded);
#: 0 is success, every other code is permanent.
TRANSIENT_CODES = frozenset({100, 429})


_Layout = list[tuple[int, list[tuple[str, ...]]]]


_JSON = {"Content-Type": "application/json"}


def _encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def status_for_error_code(code: int) -> SendStatus:
    """Map a Postmark ``ErrorCode`` to a status (0 accepted, 100/429 deferred, else rejected)."""
    if code == 0:
        return SendStatus.ACCEPTED
    if code in TRANSIENT_CODES:
        return SendStatus.DEFERRED
    return SendStatus.REJECTED


class PostmarkTransport(HTTPTransportBase):
    """Send through Postmark's email API.

    URL: ``postmark://SERVER_TOKEN@default`` (``?message_stream=broadcast`` to pick a stream).

    Args:
        server_token: the server API token (``X-Postmark-Server-Token``);
            ``POSTMARK_API_TEST`` makes test sends.
        message_stream: the ``MessageStream`` (default: Postmark's ``outbound``).
        **http: see :class:`~mailscale.transports._http.HTTPTransportBase`.
    """

    name: ClassVar[str] = "postmark"
    schemes: ClassVar[tuple[str, ...]] = ("postmark",)
    payload: str = "json"
    max_batch: int = MAX_BATCH
    rate_preset: ClassVar[str | None] = "postmark"
    #: Largest request body sent; a message alone above it is rejected locally.
    max_request_bytes: int = MAX_REQUEST_BYTES
    default_base_url: ClassVar[str] = "https://api.postmarkapp.com"

    def __init__(
        self, server_token: str, *, message_stream: str | None = None, **http: Any
    ) -> None:
        if not server_token:
            raise ConfigurationError("postmark: a server token is required")
        self.message_stream = message_stream
        self._token = server_token
        self._bodies = BodyCache()
        super().__init__(**http)

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> PostmarkTransport:
        """Build from ``postmark://SERVER_TOKEN@default[?message_stream=NAME][&base_url=URL]``."""
        token = credential_from_url(url, "server token")
        settings: dict[str, Any] = http_url_options(url, ("message_stream",))
        settings["message_stream"] = settings.get("message_stream") or None
        return cls(token, **{**settings, **options})

    def _auth_headers(self) -> dict[str, str]:
        return {"X-Postmark-Server-Token": self._token}

    def _repr_fields(self) -> dict[str, Any]:
        return {"message_stream": self.message_stream, "base_url": redact_url(self.base_url)}

    def build_payload(self, env: Envelope) -> list[dict[str, Any]]:
        """The Postmark messages for *env*: one, or one per recipient when all are hidden."""
        return [msg for msg, _ in self._messages(env)]

    def _messages(self, env: Envelope) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
        """Each Postmark message for *env*, with the envelope recipients it carries."""
        parts = decompose(env, self._bodies)
        # Names as text: Postmark writes (and encodes) the headers itself (RFC 6532 quoting).
        common: dict[str, Any] = {"From": format_address(parts.from_name, parts.from_email)}
        if parts.subject is not None:
            common["Subject"] = parts.subject
        if parts.text is not None:
            common["TextBody"] = parts.text
        if parts.html is not None:
            common["HtmlBody"] = parts.html
        if parts.reply_to:
            common["ReplyTo"] = ", ".join(format_address(n, a) for n, a in parts.reply_to)
        if parts.headers:
            common["Headers"] = [{"Name": k, "Value": v} for k, v in parts.headers]
        if env.tags:
            common["Tag"] = env.tags[0]
        if env.metadata:
            common["Metadata"] = dict(env.metadata)
        if parts.attachments:
            # Postmark inlines any attachment with a ContentID: only inline parts get one.
            common["Attachments"] = [
                {
                    "Name": a.filename,
                    "Content": base64.b64encode(a.content).decode("ascii"),
                    "ContentType": a.content_type,
                    **({"ContentID": f"cid:{a.content_id}"} if a.inline and a.content_id else {}),
                }
                for a in parts.attachments
            ]
        if self.message_stream:
            common["MessageStream"] = self.message_stream
        out = []
        names = parts.names()
        for to, cc, bcc in split_recipients(env, parts):
            msg = {
                **common,
                "To": ", ".join(format_address(names.get(r.lower(), ""), r) for r in to),
            }
            if cc:
                msg["Cc"] = ", ".join(format_address(names.get(r.lower(), ""), r) for r in cc)
            if bcc:
                msg["Bcc"] = ", ".join(bcc)
            out.append((msg, (*to, *cc, *bcc)))
        return out

    def _plan(self, batch: Sequence[Envelope]) -> tuple[list[Call], list[LocalResult]]:
        local: list[LocalResult] = []
        # Per envelope: its index, the recipients of each of its messages, their JSON.
        planned: list[tuple[int, list[tuple[str, ...]], list[bytes]]] = []
        limit = self.max_request_bytes
        for i, env in enumerate(batch):
            # Rejected rather than silently dropping recipients or tags.
            rejected = self._over_limits(
                i, env, "Postmark", (MAX_RECIPIENTS, "message"), tags=MAX_TAGS
            )
            if rejected is not None:
                local.append(rejected)
                continue
            try:
                msgs = self._messages(env)
            except PREPARE_ERRORS as exc:
                local.append(self._unreadable(i, env, exc))
                continue
            # Encoded once: the sizes decide the split, the bytes are the request body.
            encoded = [_encode(m) for m, _ in msgs]
            size = sum(len(e) + 1 for e in encoded) + 1
            if size > limit:
                local.append(
                    self._local_reject(
                        i,
                        env,
                        f"message of {size} bytes as JSON; Postmark takes at most "
                        f"{limit} bytes per request",
                    )
                )
                continue
            planned.append((i, [rcpts for _, rcpts in msgs], encoded))
        if len(planned) == 1 and len(planned[0][1]) == 1:
            index, [rcpts], [body] = planned[0]
            return [self._call("/email", body, [(index, [rcpts])], batch)], local
        calls: list[Call] = []
        chunk: list[tuple[int, list[tuple[str, ...]], list[bytes]]] = []
        count = size = 0
        for index, copies, encoded in planned:
            nbytes = sum(len(e) + 1 for e in encoded)
            if chunk and (count + len(copies) > MAX_BATCH or size + nbytes + 1 > limit):
                calls.append(self._batch_call(chunk, batch))
                chunk, count, size = [], 0, 0
            chunk.append((index, copies, encoded))
            count += len(copies)
            size += nbytes
        if chunk:
            calls.append(self._batch_call(chunk, batch))
        return calls, local

    def _batch_call(
        self, chunk: list[tuple[int, list[tuple[str, ...]], list[bytes]]], batch: Sequence[Envelope]
    ) -> Call:
        body = b"[" + b",".join(e for _, _, encoded in chunk for e in encoded) + b"]"
        return self._call("/email/batch", body, [(i, rcpts) for i, rcpts, _ in chunk], batch)

    def _call(self, path: str, body: bytes, layout: _Layout, batch: Sequence[Envelope]) -> Call:
        """A request; *layout* gives, per envelope in order, the recipients of each message."""
        single = path == "/email"

        def parse_response(
            response: httpx.Response, latency: float
        ) -> list[tuple[int, SendResult]]:
            return self._parse_response(response, latency, layout, batch, single)

        return Call(
            method="POST",
            path=path,
            indices=tuple(i for i, _ in layout),
            request={"content": body, "headers": _JSON},
            parse_response=parse_response,
        )

    def _parse_response(
        self,
        response: httpx.Response,
        latency: float,
        layout: _Layout,
        batch: Sequence[Envelope],
        single: bool,
    ) -> list[tuple[int, SendResult]]:
        data = json_or_none(response)
        code = response.status_code
        count = sum(len(m) for _, m in layout)
        whole = _error_code(data)  # a dict answering for the whole call
        entries: list[Any]
        if response.is_success and not single and isinstance(data, list):
            if len(data) != count:
                # Entries answer messages by position: with a wrong count none can be trusted.
                return self._all_unsure(
                    layout, batch, response, latency, f"{len(data)} entries for {count} messages"
                )
            entries = data
        elif (
            whole is not None
            and (response.is_success or code == 422)
            and (whole != 0 or (single and response.is_success))
        ):
            # A single answer (or a whole-batch error) applies to every message of the call.
            entries = [data] * count
        elif response.is_success:
            return self._all_unsure(
                layout, batch, response, latency, _shape_problem(data, single, count)
            )
        else:
            status = status_for_http(code)
            if isinstance(data, dict) and data.get("Message"):
                text = str(data["Message"])
            else:
                text = response.text.strip()[:200] or response.reason_phrase
            return [
                (
                    i,
                    self._result(
                        batch[i], status, response=response, latency=latency, status_text=text
                    ),
                )
                for i, _ in layout
            ]
        out = []
        pos = 0
        for index, messages in layout:
            mine = entries[pos : pos + len(messages)]
            pos += len(messages)
            out.append(
                (index, self._envelope_result(batch[index], messages, mine, response, latency))
            )
        return out

    def _all_unsure(
        self,
        layout: _Layout,
        batch: Sequence[Envelope],
        response: httpx.Response,
        latency: float,
        what: str,
    ) -> list[tuple[int, SendResult]]:
        """Every message of the call deferred: Postmark's answer could not be interpreted."""
        _log.warning(
            "transport.answer_unreadable",
            provider=self.name,
            status=response.status_code,
            problem=what,
        )
        reason = f"Postmark's HTTP {response.status_code} answer could not be read ({what})"
        return [(i, self._unsure(batch[i], response, latency, reason)) for i, _ in layout]

    def _envelope_result(
        self,
        env: Envelope,
        messages: list[tuple[str, ...]],
        entries: list[Any],
        response: httpx.Response,
        latency: float,
    ) -> SendResult:
        statuses: list[SendStatus] = []
        per_rcpt: list[RecipientResult] = []
        texts: list[str] = []
        codes: list[int] = []
        ids: list[str] = []
        unsure = False
        for rcpts, entry in zip(messages, entries, strict=True):
            code = _error_code(entry)
            if code is None:
                unsure = True
                statuses.append(SendStatus.DEFERRED)
                texts.append(
                    "Postmark's answer for this message could not be read (no "
                    f"integer ErrorCode); {MAYBE_DELIVERED}"
                )
                per_rcpt.extend(
                    RecipientResult(recipient=r, status=SendStatus.DEFERRED, status_text=texts[-1])
                    for r in rcpts
                )
                continue
            status = status_for_error_code(code)
            statuses.append(status)
            codes.append(code)
            texts.append(str(entry.get("Message", "")))
            if entry.get("MessageID"):
                ids.append(str(entry["MessageID"]))
            per_rcpt.extend(
                RecipientResult(recipient=r, status=status, status_code=code, status_text=texts[-1])
                for r in rcpts
            )
        status = overall_status(statuses)
        worst = next((c for c in codes if c != 0), codes[0] if codes else None)
        result = self._result(
            env,
            status,
            response=response,
            latency=latency,
            message_id=ids[0] if ids else None,
            status_code=worst,
            status_text="; ".join(dict.fromkeys(t for t in texts if t)),
            recipient_results=tuple(per_rcpt) if len(messages) > 1 else (),
        )
        return attrs.evolve(result, possibly_delivered=True) if unsure else result

    build_messages = deprecated_method("build_messages", "build_payload")


def _shape_problem(data: Any, single: bool, count: int) -> str:
    """What is wrong with a 2xx answer that is neither an entry nor a list of them."""
    if data is None:
        return "not JSON"
    if isinstance(data, dict):
        if _error_code(data) is None:
            return "no integer ErrorCode"
        return f"one answer for a batch of {count} messages"
    if isinstance(data, list) and single:
        return "a list answering one message"
    return f"a JSON {type(data).__name__}, not an object or a list"


def _error_code(entry: Any) -> int | None:
    """An answer's ``ErrorCode`` when it is an integer, else None (it cannot be read)."""
    code = entry.get("ErrorCode") if isinstance(entry, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


__getattr__ = module_getattr(
    __name__, {"error_code_status": "mailscale.transports.postmark:status_for_error_code"}
)
