"""Mailgun ``messages.mime`` transport (raw MIME: DKIM signatures pass through).

Each envelope is one ``POST /v3/{domain}/messages.mime`` call: the envelope
recipients as ``to`` fields and the message bytes, unchanged, as the
``message`` file part. Tags become ``o:tag`` (Mailgun keeps at most 3 per
message) and metadata becomes ``v:`` variables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import httpx

from mailscale._log import get_logger
from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports._compat import deprecated_method
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
from mailscale.transports.base import Signer, TransportURL, check_signer, redact_url, signed_bytes

__all__ = ["MailgunTransport"]

_log = get_logger("mailscale.transports")

_REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
MAX_RECIPIENTS = 1000
MAX_TAGS = 3


class MailgunTransport(HTTPTransportBase):
    """Send raw MIME through Mailgun's ``messages.mime`` endpoint.

    URL: ``mailgun://API_KEY@mg.example.com`` (``?region=eu`` for the EU host).

    Args:
        api_key: the API key (HTTP Basic, user ``api``).
        domain: the Mailgun sending domain.
        region: ``"us"`` (default) or ``"eu"``.
        test_mode: send ``o:testmode=yes`` (Mailgun accepts but does not deliver).
        signer: an object with ``sign(bytes) -> bytes`` (a DKIM signer) applied
            to each message before it is sent, as for SMTP.
        **http: see :class:`~mailscale.transports._http.HTTPTransportBase`.
    """

    name: ClassVar[str] = "mailgun"
    schemes: ClassVar[tuple[str, ...]] = ("mailgun",)
    payload: str = "mime"
    max_batch: int = 1
    rate_preset: ClassVar[str | None] = "mailgun"
    default_base_url: ClassVar[str] = _REGIONS["us"]

    def __init__(
        self,
        api_key: str,
        domain: str,
        *,
        region: str = "us",
        test_mode: bool = False,
        signer: Signer | None = None,
        **http: Any,
    ) -> None:
        if not api_key:
            raise ConfigurationError("mailgun: an API key is required")
        if not domain or "/" in domain:
            raise ConfigurationError(f"mailgun: {domain!r} is not a sending domain")
        if region not in _REGIONS:
            raise ConfigurationError(f"mailgun: unknown region {region!r} (expected us or eu)")
        check_signer(signer, "mailgun")
        self.domain = domain
        self.region = region
        self.test_mode = test_mode
        self.signer = signer
        self._api_key = api_key
        http.setdefault("base_url", _REGIONS[region])
        super().__init__(**http)

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> MailgunTransport:
        """Build from ``mailgun://API_KEY@DOMAIN[?region=eu][&test_mode=yes][&base_url=URL]``."""
        key = credential_from_url(url, "api key")
        if not url.host or url.host == "default":
            raise ConfigurationError(
                f"transport URL {url.redacted()!r} has no sending domain: "
                "use mailgun://API_KEY@mg.example.com"
            )
        settings: dict[str, Any] = http_url_options(url, ("region", "test_mode"))
        settings["test_mode"] = url.get_bool("test_mode", False)
        return cls(key, url.host, **{**settings, **options})

    def _auth(self) -> httpx.Auth:
        return httpx.BasicAuth("api", self._api_key)

    def _repr_fields(self) -> dict[str, Any]:
        return {"domain": self.domain, "region": self.region, "base_url": redact_url(self.base_url)}

    def build_payload(self, env: Envelope) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """The form fields (repeated names as lists) and the ``message`` file part for *env*."""
        fields: dict[str, list[str]] = {"to": list(env.recipients)}
        if env.tags:
            fields["o:tag"] = list(env.tags)
        for k, v in env.metadata.items():
            fields[f"v:{k}"] = [v]
        if self.test_mode:
            fields["o:testmode"] = ["yes"]
        data = signed_bytes(env, self.signer)
        files = {"message": ("message.mime", data, "message/rfc822")}
        return fields, files

    def _plan(self, batch: Sequence[Envelope]) -> tuple[list[Call], list[LocalResult]]:
        calls: list[Call] = []
        local: list[LocalResult] = []
        path = f"/v3/{self.domain}/messages.mime"
        for i, env in enumerate(batch):
            rejected = self._over_limits(i, env, "Mailgun", (MAX_RECIPIENTS, "call"), tags=MAX_TAGS)
            if rejected is not None:
                local.append(rejected)
                continue
            try:
                fields, files = self.build_payload(env)
            except PREPARE_ERRORS as exc:
                local.append(self._unreadable(i, env, exc))
                continue
            calls.append(
                Call(
                    method="POST",
                    path=path,
                    indices=(i,),
                    request={"data": fields, "files": files},
                    parse_response=self._response_parser(i, batch),
                )
            )
        return calls, local

    def _response_parser(
        self, index: int, batch: Sequence[Envelope]
    ) -> Callable[[httpx.Response, float], list[tuple[int, SendResult]]]:
        """The ``parse_response`` of the call carrying ``batch[index]``."""
        return lambda response, latency: self._parse_response(response, latency, index, batch)

    def _parse_response(
        self, response: httpx.Response, latency: float, index: int, batch: Sequence[Envelope]
    ) -> list[tuple[int, SendResult]]:
        """Mailgun's answer to one message: ``{"id": ..., "message": ...}`` when queued."""
        env = batch[index]
        status = status_for_http(response.status_code)
        data = json_or_none(response)
        mid = data.get("id") if isinstance(data, dict) else None
        if status is SendStatus.ACCEPTED and (not isinstance(mid, str) or not mid):
            # Mailgun's success answer is {"id": ..., "message": ...}; anything else (an
            # HTML page from a proxy, a truncated body) does not say the message was queued.
            what = "not JSON" if data is None else 'no "id"'
            _log.warning(
                "transport.answer_unreadable",
                provider=self.name,
                status=response.status_code,
                problem=what,
            )
            return [
                (
                    index,
                    self._unsure(
                        env,
                        response,
                        latency,
                        f"Mailgun's HTTP {response.status_code} answer could not be read ({what})",
                    ),
                )
            ]
        text = ""
        if isinstance(data, dict):
            text = str(data.get("message", ""))
        if not text:
            text = response.text.strip()[:200] or response.reason_phrase
        return [
            (
                index,
                self._result(
                    env,
                    status,
                    response=response,
                    latency=latency,
                    message_id=mid if status is SendStatus.ACCEPTED else None,
                    status_text=text,
                ),
            )
        ]

    build_form = deprecated_method("build_form", "build_payload")
