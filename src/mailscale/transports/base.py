"""The transport contract: a batch of envelopes in, one :class:`SendResult` per envelope out.

A transport never raises for a single bad recipient or message: that is a
rejected (or deferred) result. It raises a typed ``TransportError`` only when
the whole call failed (connection refused, credentials refused, time-out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, SendResult

__all__ = ["Transport", "TransportBase", "TransportURL", "redact_url"]

_REDACTED = "***"


@runtime_checkable
class Transport(Protocol):
    """What every transport provides, built-in or plugin.

    Class attributes:
        name: short name used in results and logs (``"sendgrid"``).
        schemes: URL schemes it is built from (``("smtp", "smtps")``).
        payload: ``"mime"`` when it sends raw MIME (DKIM signatures pass
            through), ``"json"`` when the provider builds the MIME.
        max_batch: how many envelopes one provider call can carry.
        rate_preset: name of the matching ``mailscale.shaping.presets``
            function, or None.
    """

    name: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]
    payload: ClassVar[str]
    max_batch: ClassVar[int]
    rate_preset: ClassVar[str | None]

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch*; return one result per envelope, in order."""
        ...

    async def send_async(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Like :meth:`send`, for asyncio callers."""
        ...

    def close(self) -> None:
        """Release connections and pools; the transport is unusable afterwards."""
        ...

    def __enter__(self) -> Transport: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class TransportBase:
    """Shared implementation: context manager, asyncio offload, safe repr.

    Subclasses implement :meth:`send` and usually :meth:`close`, and may
    override :meth:`send_async` with a native asyncio implementation. The
    default :meth:`send_async` runs :meth:`send` in a worker thread
    (``asyncio.to_thread``), so the event loop never blocks.
    """

    name: ClassVar[str] = "transport"
    schemes: ClassVar[tuple[str, ...]] = ()
    payload: ClassVar[str] = "mime"
    max_batch: ClassVar[int] = 1
    rate_preset: ClassVar[str | None] = None

    #: Attribute names whose values are secrets: shown as *** in repr.
    _secret_attrs: ClassVar[tuple[str, ...]] = ("password", "api_key", "token", "key", "secret")

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        raise NotImplementedError  # pragma: no cover - the contract every subclass fills

    async def send_async(self, batch: Sequence[Envelope]) -> list[SendResult]:
        return await asyncio.to_thread(self.send, batch)

    def close(self) -> None:
        """Release resources; the default holds none."""

    def __enter__(self) -> TransportBase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> TransportBase:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _repr_fields(self) -> Mapping[str, Any]:
        """The configuration shown by repr; override to choose. Secrets are masked."""
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {k: (_REDACTED if k in self._secret_attrs and v else v) for k, v in fields.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._repr_fields().items())
        return f"{type(self).__name__}({inner})"


@attrs.frozen(kw_only=True, repr=False)
class TransportURL:
    """A parsed transport URL such as ``mailgun://KEY@mg.example.com?region=eu``.

    ``repr`` and ``str`` show the URL with user and password redacted; use
    :attr:`username` and :attr:`password` to read the credentials.
    """

    scheme: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def parse(cls, url: str) -> TransportURL:
        """Parse *url*; raise ``ConfigurationError`` (with the URL redacted) when malformed."""
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(
                f"transport URL {redact_url(str(url))!r} is not of the form scheme://..."
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"transport URL {redact_url(url)!r}: {exc}") from None
        if not parts.scheme:
            raise ConfigurationError(f"transport URL {redact_url(url)!r} has no scheme")
        query: dict[str, str] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            if k in query:
                raise ConfigurationError(
                    f"transport URL {redact_url(url)!r}: option {k!r} given twice"
                )
            query[k] = v
        return cls(
            scheme=parts.scheme.lower(),
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            host=parts.hostname,
            port=port,
            path=unquote(parts.path),
            query=query,
        )

    def redacted(self) -> str:
        """The URL with any user or password replaced by ``***``."""
        auth = ""
        if self.username is not None or self.password is not None:
            auth = _REDACTED + (":" + _REDACTED if self.password is not None else "") + "@"
        host = self.host or ""
        if host and ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port is not None else ""
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in self.query.items())
        return f"{self.scheme}://{auth}{host}{port}{quote(self.path)}" + (
            f"?{query}" if query else ""
        )

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"TransportURL({self.redacted()!r})"


def redact_url(url: str) -> str:
    """Return *url* with the userinfo part (credentials) replaced by ``***``.

    Works on malformed URLs too, so error messages can show them safely.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url if "@" not in url else _REDACTED + url[url.rindex("@") :]
    authority_end = len(rest)
    for ch in "/?#":
        idx = rest.find(ch)
        if idx != -1:
            authority_end = min(authority_end, idx)
    authority = rest[:authority_end]
    if "@" in authority:
        authority = _REDACTED + authority[authority.rindex("@") :]
    return f"{scheme}{sep}{authority}{rest[authority_end:]}"
