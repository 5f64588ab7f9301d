"""The transport contract: a batch of envelopes in, one :class:`SendResult` per envelope out.

A transport never raises for a single bad recipient or message: that is a
rejected (or deferred) result. It raises a typed ``TransportError`` only when
the whole call failed (connection refused, credentials refused, time-out).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from mailscale.errors import ConfigurationError, InvalidMessage, MailscaleError
from mailscale.message import Envelope, SendResult, SendStatus

__all__ = [
    "Signer",
    "Transport",
    "TransportBase",
    "TransportURL",
    "check_signer",
    "is_secret_option",
    "message_bytes",
    "redact_url",
    "signed_bytes",
]

_REDACTED = "***"

#: Query options whose values are secrets (``?api_key=...``): redacted like userinfo.
_SECRET_OPTION = re.compile(r"pass|secret|token|key|auth|credential|signature", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#]*)@")
# A scheme that starts a URL (at the start of the text or after a separator of a
# composite expression): the text up to the next one is that URL's "authority-ish" part.
_URL_START = re.compile(r"(?i)(?:^|(?<=[\s,(]))[a-z][a-z0-9+.\-]*://")
_SCHEME_PREFIX = re.compile(r"(?ai)^\s*([a-z][a-z0-9+.\-]*)://")
# RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), ASCII only
# (no re.IGNORECASE: with it, [a-z] also takes the Kelvin sign and the long s).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_URL_SECRET_OPTION = re.compile(
    r"(?i)([?&][^=&\s#()]*(?:pass|secret|token|key|auth|credential|signature)[^=&\s#()]*=)"
    r"[^&\s#()]*"
)
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: refused in every
# part of a URL once percent-decoded (a CR LF in a user name would reach the SMTP dialogue).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _frozen(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def is_secret_option(name: str) -> bool:
    """True when a URL query option named *name* carries a secret (and is redacted)."""
    return bool(_SECRET_OPTION.search(name))


class Signer(Protocol):
    """Anything that DKIM-signs a message: ``sign(bytes) -> bytes``.

    :class:`mailscale.signing.DKIMSigner` is one; ``mailscale.signing.Signer`` is this
    same protocol. Raw-MIME transports (SMTP, MX, Mailgun, SES) apply it to every message.
    """

    def sign(self, message: bytes) -> bytes:
        """*message* with a DKIM-Signature field prepended."""
        ...


def check_signer(signer: object, transport: str) -> None:
    """Raise ``ConfigurationError`` unless *signer* is None or has ``sign(bytes) -> bytes``."""
    if signer is not None and not callable(getattr(signer, "sign", None)):
        raise ConfigurationError(f"{transport}: signer must have a sign(bytes) -> bytes method")


def _line_ends_ok(data: bytes) -> bool:
    crlf = data.count(b"\r\n")
    return data.count(b"\n") == crlf and data.count(b"\r") == crlf


def signed_bytes(env: Envelope, signer: Signer | None) -> bytes:
    """*env*'s wire bytes, DKIM-signed when *signer* is given.

    Raises:
        InvalidMessage: the message cannot be serialized or the signer failed
            (whatever it raised: one message's failure must not abort a batch).
    """
    data = env.to_bytes()
    if signer is None:
        return data
    try:
        signed = signer.sign(data)
        if not isinstance(signed, (bytes, bytearray)):
            raise TypeError(f"sign() returned {type(signed).__name__}, not bytes")
    except Exception as exc:
        what = str(exc) if isinstance(exc, MailscaleError) else f"{type(exc).__name__}: {exc}"
        raise InvalidMessage(f"signing failed: {what}") from None
    return bytes(signed)


def message_bytes(env: Envelope, signer: Signer | None, transport: str) -> bytes | SendResult:
    """The bytes to send (signed when a signer is attached), or a rejected result."""
    try:
        data = env.to_bytes()
    except MailscaleError as exc:  # an EmailMessage changed into something unsendable
        return SendResult(
            status=SendStatus.REJECTED,
            recipients=env.recipients,
            transport=transport,
            status_text=str(exc),
            idempotency_key=env.idempotency_key,
        )
    if not _line_ends_ok(data):
        return SendResult(
            status=SendStatus.REJECTED,
            recipients=env.recipients,
            transport=transport,
            status_text="the message has a bare CR or LF; SMTP needs CRLF line ends "
            "(RFC 5321 section 2.3.8); it is not rewritten so a signature stays valid",
            idempotency_key=env.idempotency_key,
        )
    if signer is not None:
        try:
            data = signer.sign(data)
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError(f"sign() returned {type(data).__name__}, not bytes")
        except Exception as exc:
            what = str(exc) if isinstance(exc, MailscaleError) else f"{type(exc).__name__}: {exc}"
            return SendResult(
                status=SendStatus.REJECTED,
                recipients=env.recipients,
                transport=transport,
                status_text=f"signing failed: {what}",
                idempotency_key=env.idempotency_key,
            )
    return data


@runtime_checkable
class Transport(Protocol):
    """What every transport provides, built-in or plugin.

    The five descriptive attributes are read-only here: a transport may
    provide them as plain class attributes (most do) or per instance
    (composites take ``max_batch`` and ``payload`` from their members).

    Attributes:
        name: short name used in results and logs (``"sendgrid"``).
        schemes: URL schemes it is built from (``("smtp", "smtps")``).
        payload: ``"mime"`` when it sends raw MIME (DKIM signatures pass
            through), ``"json"`` when the provider builds the MIME.
        max_batch: how many envelopes one provider call can carry.
        rate_preset: name of the matching ``mailscale.shaping.presets``
            function, or None.
    """

    @property
    def name(self) -> str:
        """Short name used in results and logs (``"sendgrid"``)."""
        ...

    @property
    def schemes(self) -> tuple[str, ...]:
        """URL schemes it is built from (``("smtp", "smtps")``)."""
        ...

    @property
    def payload(self) -> str:
        """``"mime"`` (raw MIME sent as is) or ``"json"`` (the provider builds it)."""
        ...

    @property
    def max_batch(self) -> int:
        """How many envelopes one provider call can carry."""
        ...

    @property
    def rate_preset(self) -> str | None:
        """Name of the matching ``mailscale.shaping.presets`` function, or None."""
        ...

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch*; return one result per envelope, in order."""
        ...

    async def send_async(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Like :meth:`send`, for asyncio callers."""
        ...

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> Transport:
        """Build the transport from a parsed URL; *options* are keyword settings."""
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
    #: Class-level defaults that an instance may replace (a composite takes its members').
    payload: str = "mime"
    max_batch: int = 1
    rate_preset: ClassVar[str | None] = None

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> TransportBase:
        """Build the transport from a parsed URL (every transport class provides this).

        Raises:
            ConfigurationError: when the URL lacks a setting or has an unknown option.
        """
        raise url.error(f"{cls.__name__} cannot be configured from a URL")

    @classmethod
    def tls_of(cls, url: TransportURL) -> str | None:
        """How a transport built from *url* protects its connections, or None.

        ``"required"``, ``"opportunistic"`` or ``"none"``; None (the default) for
        a transport that does not send over a network. Optional for plugins:
        readiness checks read it through ``registry.transport_tls``.
        """
        return None

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch*; one SendResult per envelope, in order (every subclass fills this)."""
        raise NotImplementedError  # pragma: no cover - the contract every subclass fills

    async def send_async(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Run :meth:`send` in a worker thread so the event loop never blocks."""
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
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        # Masked here, whatever _repr_fields returns: any field whose name looks
        # secret (token, key, secret, pass, auth, credential, ...; see is_secret_option).
        inner = ", ".join(
            f"{k}={(_REDACTED if v and is_secret_option(k) else v)!r}"
            for k, v in self._repr_fields().items()
        )
        return f"{type(self).__name__}({inner})"


@attrs.frozen(kw_only=True, repr=False)
class TransportURL:
    """A parsed transport URL such as ``mailgun://KEY@mg.example.com?region=eu``.

    ``repr`` and ``str`` show the URL with user, password and secret query
    options (``api_key``, ``token``, ...) redacted; use :attr:`username`,
    :attr:`password` and :attr:`query` to read them.
    """

    scheme: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)

    @classmethod
    def parse(cls, url: str) -> TransportURL:
        """Parse *url*; raise ``ConfigurationError`` (with the URL redacted) when malformed."""
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(
                f"transport URL {redact_url(str(url))!r} is not of the form scheme://..."
            )
        # An unparseable URL is never echoed: where the credential ends is unknown.
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
            raise ConfigurationError(
                f"transport URL {_scheme_only(url)!r} (not shown) contains whitespace or a "
                "control character"
            )
        scheme_problem = _scheme_problem(url.partition("://")[0])
        if scheme_problem is not None:
            # What precedes "://" is not a scheme, so where a credential starts is unknown.
            raise ConfigurationError(
                f"transport URL {_scheme_only(url)!r} (not shown) {scheme_problem}: a scheme "
                "is a letter followed by letters, digits, '+', '-' or '.', then '://' "
                "(RFC 3986 section 3.1)"
            )
        bad_port: str | None = None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            # urllib's own words may quote a piece of the credential; only a range is safe.
            bad_port = "port out of range 0-65535" if "out of range" in str(exc) else "host or port"
        if bad_port is not None:
            # Raised outside the handler, so the original error is not chained to it.
            raise ConfigurationError(
                f"transport URL {_scheme_only(url)!r} (not shown) has an invalid {bad_port}; "
                "percent-encode '/', '?', '#' and '@' in credentials (%2F %3F %23 %40)"
            )
        # An "@" after the host is most likely the end of a credential holding "/", "?"
        # or "#"; only a URL-valued option (base_url=http://...) may carry one unencoded.
        stray_at = "@" in parts.path + parts.fragment or any(
            "@" in piece and "://" not in piece.partition("=")[2]
            for piece in parts.query.split("&")
        )
        if parts.netloc and stray_at:
            raise ConfigurationError(
                f"transport URL {_scheme_only(url)!r} (not shown) has an '@' after the host; "
                "percent-encode '/', '?', '#' and '@' in credentials (%2F %3F %23 %40)"
            )
        if parts.netloc.count("@") > 1:
            # user:pw@host:25@other: where the credential ends is a guess; never guess.
            raise ConfigurationError(
                f"transport URL {_scheme_only(url)!r} (not shown) has more than one '@' before "
                "the host; percent-encode '@' in a user name or password as %40 "
                "(postmaster%40mg.example.com)"
            )
        query: dict[str, str] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            if _CONTROL.search(k):
                raise _control_error(url, "the name of an option")
            if _CONTROL.search(v):
                raise _control_error(url, f"the value of option {k[:40]!r}")
            if k in query:
                raise ConfigurationError(
                    f"transport URL {redact_url(url)!r}: option {k!r} given twice"
                )
            query[k] = v
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        path = unquote(parts.path)
        for part, value in (
            ("user name", username),
            ("password", password),
            ("host", unquote(parts.hostname or "")),
            ("path", path),
        ):
            if value and _CONTROL.search(value):
                raise _control_error(url, part)
        return cls(
            scheme=parts.scheme.lower(),
            username=username,
            password=password,
            host=parts.hostname,
            port=port,
            path=path,
            query=query,
        )

    def error(self, problem: str) -> ConfigurationError:
        """A ``ConfigurationError`` about this URL, showing it redacted."""
        return ConfigurationError(f"transport URL {self.redacted()!r}: {problem}")

    def check_options(self, allowed: Iterable[str]) -> None:
        """Raise ``ConfigurationError`` naming any query option not in *allowed*."""
        unknown = sorted(set(self.query) - set(allowed))
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise self.error(f"unknown option(s) {', '.join(unknown)} (known: {known})")

    def check_values(self, names: Iterable[str]) -> None:
        """Raise ``ConfigurationError`` when an option of *names* is given an empty value.

        ``?region=`` is a mistake (an unset variable in a template), not "the default":
        an option that takes a value is either given one or left out.
        """
        for name in names:
            if self.query.get(name) == "":
                raise self.error(f"option {name!r} is empty: give it a value or leave it out")

    def get_str(
        self, name: str, default: str | None = None, *, allow_empty: bool = False
    ) -> str | None:
        """The query option *name*, or *default* when absent.

        Raises:
            ConfigurationError: the option is given empty (``?name=``), unless *allow_empty*.
        """
        if not allow_empty:
            self.check_values((name,))
        return self.query.get(name, default)

    def get_bool(self, name: str, default: bool) -> bool:
        """The query option *name* as a boolean (``true/false/1/0/yes/no/on/off``)."""
        raw = self.query.get(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise self.error(f"option {name!r} must be true or false, got {raw!r}")

    def get_int(self, name: str, default: int | None, *, minimum: int | None = None) -> int | None:
        """The query option *name* as an integer (at least *minimum*)."""
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.error(f"option {name!r} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise self.error(f"option {name!r} must be at least {minimum}, got {value}")
        return value

    def get_float(self, name: str, default: float | None, *, minimum: float = 0.0) -> float | None:
        """The query option *name* as a number of at least *minimum*."""
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self.error(f"option {name!r} must be a number, got {raw!r}") from None
        if not value >= minimum:  # also rejects NaN
            raise self.error(f"option {name!r} must be at least {minimum}, got {raw!r}")
        return value

    def redacted(self) -> str:
        """The URL with user, password and secret query options replaced by ``***``."""
        auth = ""
        if self.username is not None or self.password is not None:
            auth = _REDACTED + (":" + _REDACTED if self.password is not None else "") + "@"
        host = self.host or ""
        if host and ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port is not None else ""
        query = "&".join(
            f"{quote(k)}={_REDACTED if is_secret_option(k) else _quote_value(v)}"
            for k, v in self.query.items()
        )
        return f"{self.scheme}://{auth}{host}{port}{quote(self.path)}" + (
            f"?{query}" if query else ""
        )

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"TransportURL({self.redacted()!r})"


def _control_error(url: str, part: str) -> ConfigurationError:
    return ConfigurationError(
        f"transport URL {_scheme_only(url)!r} (not shown) has a control character or line "
        f"break in {part} (after percent-decoding)"
    )


def _scheme_problem(scheme: str) -> str | None:
    """What makes *scheme* (the text before ``://``) not an RFC 3986 scheme, or None."""
    if not scheme:
        return "has no scheme"
    if _SCHEME.fullmatch(scheme):
        return None
    if not _SCHEME.fullmatch(scheme[0]):
        # One character is shown: never enough of a credential to matter.
        return f"has a scheme starting with {scheme[0]!r}"
    bad = next(ch for ch in scheme if not _SCHEME.fullmatch("a" + ch))
    return f"has {bad!r} in its scheme"


def _scheme_only(url: str) -> str:
    """``scheme://...`` for a URL that cannot be shown safely."""
    match = _SCHEME_PREFIX.match(url)
    return f"{match.group(1)}://..." if match else "..."


def _quote_value(value: str) -> str:
    """A query value for display: a URL inside it (``base_url=``) loses its userinfo."""
    value = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{_REDACTED}@", value)
    return quote(value, safe="/:*@")


def redact_url(url: str) -> str:
    """Return *url* with credentials (userinfo, secret query options) replaced by ``***``.

    Works on malformed URLs and on composite expressions holding several URLs
    (``failover(smtp://u:p@a smtp://u:p@b)``), so error messages can show them safely.
    """
    text = str(url)
    starts = list(_URL_START.finditer(text))
    if starts:
        # Everything between "://" and the last "@" before the next URL may be a
        # credential, even when it holds "/", "?", "#" or whitespace.
        out = [text[: starts[0].start()]]
        for i, start in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            segment = text[start.end() : end]
            at = segment.rfind("@")
            if at != -1:
                segment = _REDACTED + segment[at:]
            out.append(text[start.start() : start.end()] + segment)
        text = "".join(out)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{_REDACTED}@", text)
    text = _URL_SECRET_OPTION.sub(lambda m: f"{m.group(1)}{_REDACTED}", text)
    if "://" not in text and "@" in text:
        # Not a URL at all: whatever precedes the last "@" may be a credential.
        text = _REDACTED + text[text.rindex("@") :]
    return text
