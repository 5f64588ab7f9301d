"""``smtp://`` and ``smtps://``: relay through an SMTP server, with a connection pool.

Each message is one SMTP transaction (MAIL, RCPT per recipient, DATA) on a
pooled connection, so every recipient gets its own result: a 4xx to RCPT
defers it, a 5xx rejects it (with the reply code, text and RFC 3463 enhanced
status code), and a 2xx to RCPT makes it accepted only once the server
accepted the message after DATA; until then it is pending. A connection lost
or timed out after the final dot leaves the message deferred but
``possibly_delivered``. The message bytes are sent exactly as given (after
DKIM signing when a signer is attached), only dot-stuffed on the wire (RFC
5321 section 4.5.2, undone by the server) with a final CRLF added when the
message lacks one. Commands are not pipelined. Messages must use CRLF line
ends; a message with a bare CR or LF is rejected rather than rewritten, since
rewriting would break a DKIM signature.

TLS: ``smtp://`` requires STARTTLS and verifies the server certificate by
default; ``?tls=none`` allows plaintext and ``?verify=false`` disables
verification (both explicit opt-outs). ``smtps://`` uses implicit TLS
(RFC 8314). ``?cafile=`` or an ``ssl_context=`` setting trusts a private CA.

Connections are pooled (``?pool_size=``) and reused across messages and
calls; an aborted transaction is cleared with RSET, and a reused connection
that fails at RSET or MAIL (dropped while idle, refused, silent) is replaced
before any of the message is sent. Time-outs are ``TransportTimeout`` during
set-up and deferred results during a transaction, both naming the stage.
One ``send`` call uses one connection; concurrent calls (threads, or
``send_async``, which runs ``send`` in a worker thread) use up to
``pool_size`` connections.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from mailscale._log import get_logger
from mailscale.errors import ConfigurationError, TransportError
from mailscale.message import Envelope, SendResult
from mailscale.transports import _session, base
from mailscale.transports._compat import module_getattr
from mailscale.transports._session import make_ssl_context
from mailscale.transports.base import Signer, TransportBase, TransportURL

# Signer (now in transports.base) and make_ssl_context (transports._session) stay importable here.
__all__ = ["Signer", "SMTPTransport", "make_ssl_context"]

_log = get_logger("mailscale.transports")


class SMTPTransport(TransportBase):
    """Relay through one SMTP server with pooled connections.

    Args:
        host: the relay's host name (checked against its certificate).
        port: default 587 (STARTTLS), 465 (implicit TLS), 25 (``tls="none"``).
        username: AUTH user name (give both username and password, or neither).
        password: AUTH password.
        tls: ``"starttls"`` (required, the default), ``"implicit"`` (smtps),
            ``"opportunistic"`` (STARTTLS when offered) or ``"none"``.
        verify: verify the server certificate (default True).
        cafile: a CA bundle to trust instead of the system's.
        ssl_context: a ready TLS context (overrides ``verify`` and ``cafile``).
        timeout: socket time-out in seconds.
        pool_size: connections open at most at once.
        max_idle: seconds an idle pooled connection is kept.
        local_hostname: the EHLO name (default: the machine's FQDN).
        source_address: local ``(ip, port)`` or ip to bind.
        signer: an object with ``sign(bytes) -> bytes`` (a DKIM signer),
            applied to every message before sending.
    """

    name: ClassVar[str] = "smtp"
    schemes: ClassVar[tuple[str, ...]] = ("smtp", "smtps")
    payload: str = "mime"
    max_batch: int = 1000
    rate_preset: ClassVar[str | None] = None

    _URL_OPTIONS = (
        "tls",
        "verify",
        "cafile",
        "timeout",
        "pool_size",
        "max_idle",
        "local_hostname",
        "source",
    )

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: str = "starttls",
        verify: bool = True,
        cafile: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        pool_size: int = 4,
        max_idle: float = 60.0,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | str | None = None,
        signer: Signer | None = None,
    ) -> None:
        if tls not in _session.TLS_MODES:
            raise ConfigurationError(
                f"smtp: tls must be one of {', '.join(_session.TLS_MODES)}, got {tls!r}"
            )
        if (username is None) != (password is None) or username == "":
            raise ConfigurationError("smtp: AUTH needs both a username and a password")
        if pool_size < 1:
            raise ConfigurationError(f"smtp: pool_size must be >= 1, got {pool_size}")
        base.check_signer(signer, "smtp")
        _session.check_helo_name(local_hostname, "smtp")
        if isinstance(source_address, str):
            source_address = (source_address, 0)
        if source_address is not None:
            _session.check_source_ip(source_address[0], "smtp")
        self.host = host
        self.port = port if port is not None else {"implicit": 465, "none": 25}.get(tls, 587)
        self.username = username
        self.password = password
        self.tls = tls
        self.verify = verify if ssl_context is None else ssl_context.verify_mode != ssl.CERT_NONE
        self.timeout = timeout
        self.pool_size = pool_size
        self.local_hostname = local_hostname
        self.source_address = source_address
        self.signer = signer
        self._context = (
            ssl_context
            if ssl_context is not None
            else (make_ssl_context(verify=verify, cafile=cafile) if tls != "none" else None)
        )
        self._pool = _session.Pool(pool_size, max_idle)
        if tls != "none" and not self.verify:
            _log.warning("transport.tls_unverified", transport="smtp", host=host)

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> SMTPTransport:
        """``smtp://user:pass@host:587?tls=starttls&verify=true&cafile=...&pool_size=4``."""
        url.check_options(cls._URL_OPTIONS)
        if not url.host:
            raise url.error("missing host: use smtp://user:pass@host:port")
        if url.username is not None and not url.password:
            raise url.error("missing password for the SMTP user")
        if url.password is not None and not url.username:
            raise url.error("missing user name for the SMTP password")
        tls = cls._url_tls_mode(url)
        settings: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "username": url.username,
            "password": url.password,
            "tls": tls,
            "verify": url.get_bool("verify", True),
            "cafile": url.get_str("cafile"),
            "timeout": url.get_float("timeout", 30.0, minimum=0.001),
            "pool_size": url.get_int("pool_size", 4, minimum=1),
            "max_idle": url.get_float("max_idle", 60.0),
            "local_hostname": url.get_str("local_hostname"),
            "source_address": url.get_str("source"),
        }
        settings.update(options)
        try:
            return cls(**settings)
        except ConfigurationError as exc:
            raise url.error(str(exc)) from None

    @staticmethod
    def _url_tls_mode(url: TransportURL) -> str:
        """The ``tls`` mode a URL asks for: smtps:// implicit, smtp:// STARTTLS unless told."""
        default_tls = "implicit" if url.scheme == "smtps" else "starttls"
        tls = url.get_str("tls", default_tls) or default_tls
        if tls == "required":
            tls = "starttls"
        if tls not in _session.TLS_MODES:
            raise url.error(
                f"option 'tls' must be one of {', '.join(_session.TLS_MODES)}, got {tls!r}"
            )
        if url.scheme == "smtps" and tls != "implicit":
            raise url.error("smtps:// always uses implicit TLS; use smtp:// for other modes")
        return tls

    @classmethod
    def tls_of(cls, url: TransportURL) -> str:
        """``"required"`` (STARTTLS or implicit TLS), ``"opportunistic"`` or ``"none"``."""
        url.check_options(cls._URL_OPTIONS)
        mode = cls._url_tls_mode(url)
        return "required" if mode in ("starttls", "implicit") else mode

    def _connect(self) -> _session.Connection:
        return _session.open_connection(
            self.host,
            self.port,
            tls=self.tls,
            context=self._context,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
            source_address=self.source_address,
            username=self.username,
            password=self.password,
            provider=self.name,
        )

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send each envelope as one SMTP transaction on one pooled connection."""
        results: list[SendResult] = []
        if not batch:
            return results
        conn: _session.Connection | None = None
        reused = False
        try:
            conn, reused = self._pool.acquire(None, self._connect)
            for index, env in enumerate(batch):
                prepared = base.message_bytes(env, self.signer, self.name)
                if isinstance(prepared, SendResult):
                    results.append(prepared)
                    continue
                if not conn.alive:
                    try:
                        conn = self._pool.replace(conn, self._connect)
                    except TransportError as exc:
                        if not results:
                            raise
                        results.extend(
                            _session.deferred_result(e, self.name, str(exc)) for e in batch[index:]
                        )
                        break
                    reused = False
                results.append(self._send_one(conn, env, prepared, reused))
                reused = True
        finally:
            if conn is not None:
                self._pool.release(None, conn)
        return results

    def _send_one(
        self, conn: _session.Connection, env: Envelope, data: bytes, reused: bool
    ) -> SendResult:
        start = time.perf_counter()
        try:
            rcpts, reply = self._pool.transact(conn, reused, self._connect, env, data)
        except TransportError as err:  # the stale connection's replacement failed
            return _session.deferred_result(env, self.name, str(err))
        except _session.Dropped as exc:
            _log.warning(
                "transport.connection_lost",
                transport=self.name,
                host=self.host,
                stage=exc.stage,
                timed_out=exc.timed_out,
                possibly_delivered=exc.possibly_delivered,
            )
            return _session.dropped_result(
                env,
                exc,
                transport=self.name,
                timeout=self.timeout,
                latency=time.perf_counter() - start,
            )
        return _session.build_result(
            env, rcpts, reply, transport=self.name, latency=time.perf_counter() - start
        )

    def close(self) -> None:
        """Close every pooled connection (QUIT)."""
        self._pool.close()

    def _repr_fields(self) -> Mapping[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": "***" if self.password else None,
            "tls": self.tls,
            "verify": self.verify if self.tls != "none" else None,
            "pool_size": self.pool_size,
        }


#: Names this module held before the session moved to ``transports._session`` and the
#: signing glue to ``transports.base``; importing them from here warns.
__getattr__ = module_getattr(
    __name__,
    {
        **{
            name: f"mailscale.transports._session:{name}"
            for name in (
                "TLS_MODES",
                "Connection",
                "Dropped",
                "Pool",
                "TLSHandshakeError",
                "build_result",
                "check_helo_name",
                "check_source_ip",
                "deferred_result",
                "doing",
                "dropped_result",
                "open_connection",
            )
        },
        **{
            name: f"mailscale.transports.base:{name}"
            for name in ("check_signer", "message_bytes", "signed_bytes")
        },
        "status_of": "mailscale.transports._session:status_for_reply",
    },
)
