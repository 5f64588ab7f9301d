"""The SMTP client session shared by ``smtp://`` and ``mx://``: connection, pool, results.

:func:`open_connection` connects, says EHLO, starts TLS and authenticates,
mapping every set-up failure to a typed ``TransportError`` through one table
(:data:`SETUP_ERRORS`). :class:`Connection` runs one transaction (MAIL, RCPT,
DATA) and raises :class:`Dropped` when the connection breaks, naming the stage
reached. :class:`Pool` keeps idle connections per key. :func:`build_result`
and :func:`dropped_result` turn what the server said into a :class:`SendResult`.
"""

from __future__ import annotations

import ipaddress
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from mailscale.errors import (
    ConfigurationError,
    TransportAuthError,
    TransportCertificateError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
)
from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus, overall_status

__all__ = [
    "SETUP_ERRORS",
    "SetupFailure",
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
    "make_ssl_context",
    "open_connection",
    "setup_error",
    "status_for_reply",
]

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)")
_HELO_NAME = re.compile(r"[\x21-\x7e]{1,255}")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_QUEUED_AS = re.compile(r"(?:queued as\s+|\bid=)([A-Za-z0-9._@<>-]+)", re.IGNORECASE)
TLS_MODES = ("starttls", "implicit", "opportunistic", "none")


def make_ssl_context(*, verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """A client TLS context, verified against the system CAs (or *cafile*) unless told not to."""
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load CA file {cafile!r}: {exc}") from None


def status_for_reply(code: int) -> SendStatus:
    """Map an SMTP reply code to a status: 2xx accepted, 5xx rejected, else deferred.

    Only a 2xx is a yes; 4xx is a transient no, and a reply that is neither
    (1xx, 3xx where a 2xx was due, or an unreadable code) is no answer at all,
    so it defers rather than counting as accepted.
    """
    if 200 <= code < 300:
        return SendStatus.ACCEPTED
    if 500 <= code < 600:
        return SendStatus.REJECTED
    return SendStatus.DEFERRED


#: What the client was doing at each stage, for errors and results that name it.
_DOING = {
    "connect": "connecting",
    "greeting": "waiting for the greeting",
    "EHLO": "waiting for the EHLO reply",
    "STARTTLS": "in STARTTLS",
    "AUTH": "in AUTH",
    "RSET": "waiting for the RSET reply",
    "MAIL": "waiting for the MAIL FROM reply",
    "RCPT": "waiting for a RCPT TO reply",
    "DATA": "in DATA (before the final dot)",
    "final dot": "waiting for the reply to the final dot",
}


def doing(stage: str) -> str:
    """*stage* as a phrase: ``"waiting for the greeting"``."""
    return _DOING.get(stage, f"at {stage}")


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply


def _enhanced(text: str) -> str | None:
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


class TLSHandshakeError(TransportConnectionError):
    """The TLS handshake failed for a reason other than certificate verification."""


class Dropped(Exception):
    """The connection went away or timed out; ``stage`` says how far the transaction got.

    ``partial`` holds the RCPT replies received before (none of them final for a
    recipient the server accepted: DATA did not complete). After the final dot
    the server may have taken the message: ``possibly_delivered``.
    """

    def __init__(
        self,
        stage: str,
        detail: str,
        *,
        code: int | None = None,
        timed_out: bool = False,
        partial: Sequence[RecipientResult] = (),
    ) -> None:
        super().__init__(detail)
        self.stage = stage
        self.code = code
        self.timed_out = timed_out
        self.partial = tuple(partial)

    @property
    def possibly_delivered(self) -> bool:
        return self.stage == "final dot"

    def describe(self, timeout: float | None = None) -> str:
        """The reason a result gives: what happened, and at which stage."""
        if self.timed_out:
            limit = f" after {timeout:g}s" if timeout is not None else ""
            text = f"timed out{limit} {doing(self.stage)}"
        elif self.code is not None:
            text = f"{self.stage}: {self.code} {self}"
        else:
            text = f"connection lost {doing(self.stage)}: {self}"
        if self.possibly_delivered:
            text += " (the whole message was sent: it may have been delivered)"
        return text


def _wire_data(data: bytes) -> bytes:
    """*data* dot-stuffed (RFC 5321 section 4.5.2), ending in CRLF and the final dot."""
    stuffed = _LEADING_DOT.sub(b"..", data)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def _unsent(
    results: Sequence[RecipientResult], code: int | None, text: str, enhanced: str | None
) -> list[RecipientResult]:
    """*results* with every RCPT-accepted recipient deferred: the message was not sent.

    A 250 to RCPT only says the server would take the message for that
    recipient; the recipient is accepted when the server took the message after DATA.
    """
    return _settle_accepted(results, SendStatus.DEFERRED, code, text, enhanced)


def _settle_accepted(
    results: Sequence[RecipientResult],
    status: SendStatus,
    code: int | None,
    text: str,
    enhanced: str | None,
) -> list[RecipientResult]:
    """*results* with every RCPT-accepted recipient given *status*; the others kept."""
    return [
        RecipientResult(
            recipient=r.recipient,
            status=status,
            status_code=code,
            status_text=text,
            enhanced_status=enhanced,
        )
        if r.status is SendStatus.ACCEPTED
        else r
        for r in results
    ]


def _each(
    recipients: Sequence[str],
    status: SendStatus,
    code: int,
    text: str,
    enhanced: str | None,
) -> list[RecipientResult]:
    """The same result for every recipient of *recipients*."""
    return [
        RecipientResult(
            recipient=r,
            status=status,
            status_code=code,
            status_text=text,
            enhanced_status=enhanced,
        )
        for r in recipients
    ]


@attrs.define
class _Step:
    """How far one transaction got: the stage a broken connection is reported at, and
    the RCPT replies received so far."""

    stage: str = "MAIL"
    results: list[RecipientResult] = attrs.field(factory=list)


class Connection:
    """One open SMTP session (after EHLO, STARTTLS and AUTH)."""

    def __init__(self, smtp: smtplib.SMTP, *, tls: bool) -> None:
        self.smtp = smtp
        self.tls = tls
        self.dirty = False
        self.alive = True
        self.last_used = time.monotonic()
        self.transactions = 0

    def close(self) -> None:
        """QUIT politely, then close the socket; never raises."""
        self.alive = False
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            self.smtp.close()

    def transact(
        self, sender: str, recipients: Sequence[str], data: bytes
    ) -> tuple[list[RecipientResult], tuple[int, str] | None]:
        """Run MAIL/RCPT/DATA; return per-recipient RCPT results and the DATA answer.

        The answer is the reply to the final dot, or the refusal of the DATA
        command; None when DATA was not sent. A recipient whose RCPT was accepted
        is accepted only by that answer (see :func:`build_result`).

        Raises:
            Dropped: the connection was lost or timed out, the server answered
                421 to RSET or MAIL, or its replies were out of step.
        """
        self.last_used = time.monotonic()
        options = self._mail_options(sender, recipients, data)
        if options is None:
            text = "5.6.7 the server does not support SMTPUTF8 (internationalized address)"
            return _each(recipients, SendStatus.REJECTED, 553, text, "5.6.7"), None
        step = _Step()
        try:
            if self.dirty:
                self._rset(step)
            refused = self._mail(step, sender, options, recipients)
            if refused is not None:
                return refused, None
            closed = self._rcpt(step, recipients)
            if closed is not None:
                return closed, None
            if not any(r.status is SendStatus.ACCEPTED for r in step.results):
                return step.results, None
            return step.results, self._data(step, data)
        except smtplib.SMTPResponseException as exc:
            self.alive = False
            raise Dropped(
                step.stage, f"{exc.smtp_code} {_text(exc.smtp_error)}", partial=step.results
            ) from None
        except TimeoutError:
            self.alive = False
            raise Dropped(step.stage, "timed out", timed_out=True, partial=step.results) from None
        except OSError as exc:  # includes SMTPServerDisconnected
            self.alive = False
            raise Dropped(
                step.stage, str(exc) or type(exc).__name__, partial=step.results
            ) from None

    def _mail_options(
        self, sender: str, recipients: Sequence[str], data: bytes
    ) -> list[str] | None:
        """The MAIL FROM parameters for this message; None when it needs SMTPUTF8 and the
        server does not offer it."""
        smtp = self.smtp
        options: list[str] = []
        if smtp.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        if smtp.has_extn("8bitmime") and not data.isascii():
            options.append("BODY=8BITMIME")
        if not (sender.isascii() and all(r.isascii() for r in recipients)):
            if not smtp.has_extn("smtputf8"):
                return None
            options.append("SMTPUTF8")
        return options

    def _rset(self, step: _Step) -> None:
        """RSET after an earlier transaction; a refusal leaves the session in an unknown
        state, so the connection is replaced."""
        step.stage = "RSET"
        code, reply = self.smtp.rset()
        if not 200 <= code < 300:
            self.alive = False
            raise Dropped("RSET", _text(reply), code=code)
        self.dirty = False

    def _mail(
        self, step: _Step, sender: str, options: list[str], recipients: Sequence[str]
    ) -> list[RecipientResult] | None:
        """MAIL FROM; every recipient's result when the server refuses it, else None."""
        step.stage = "MAIL"
        code, reply = self.smtp.mail(sender, options)
        if code == 421:
            self.alive = False
            raise Dropped("MAIL", _text(reply), code=421)
        self.dirty = True
        if 200 <= code < 300:
            return None
        text = _text(reply)
        return _each(
            recipients, status_for_reply(code), code, f"MAIL FROM: {text}", _enhanced(text)
        )

    def _rcpt(self, step: _Step, recipients: Sequence[str]) -> list[RecipientResult] | None:
        """RCPT TO for each recipient, into ``step.results``; every recipient's result
        when the server closes the session (421), else None."""
        step.stage = "RCPT"
        for i, rcpt in enumerate(recipients):
            code, reply = self.smtp.rcpt(rcpt)
            text = _text(reply)
            if code == 421:
                # The server is closing: this and the remaining recipients wait,
                # and so do the ones it accepted: DATA was never sent.
                self.alive = False
                enhanced = _enhanced(text)
                step.results.extend(_each(recipients[i:], SendStatus.DEFERRED, 421, text, enhanced))
                unsent = f"the server closed the session before DATA: {text}"
                return _unsent(step.results, 421, unsent, enhanced)
            step.results.append(
                RecipientResult(
                    recipient=rcpt,
                    status=status_for_reply(code),
                    status_code=code,
                    status_text=text,
                    enhanced_status=_enhanced(text),
                )
            )
        return None

    def _data(self, step: _Step, data: bytes) -> tuple[int, str]:
        """DATA, the message and the final dot; the reply to the final dot, or the
        refusal of the DATA command (which the RCPT-accepted recipients share)."""
        smtp = self.smtp
        step.stage = "DATA"
        code, reply = smtp.docmd("DATA")
        if code != 354:
            text = _text(reply)
            if not 400 <= code < 600:
                # Neither "go ahead" nor a refusal: the session is out of step.
                self.alive = False
                raise Dropped("DATA", f"unexpected reply {code} {text}")
            if code == 421:
                self.alive = False
            self.transactions += 1
            return code, text
        smtp.send(_wire_data(data))
        step.stage = "final dot"
        code, reply = smtp.getreply()
        self.dirty = not 200 <= code < 300
        if code == 421 or not 200 <= code < 600:
            self.alive = False
        self.transactions += 1
        return code, _text(reply)


@attrs.frozen
class SetupFailure:
    """What :func:`open_connection` knew when the session set-up failed."""

    where: str  #: ``host:port``
    stage: str  #: how far the set-up got (``"connect"``, ``"EHLO"``, ``"AUTH"``...)
    timeout: float
    provider: str


def _auth_refused(exc: Any, f: SetupFailure) -> TransportError:
    return TransportAuthError(
        f"{f.where} refused the credentials: {exc.smtp_code} {_text(exc.smtp_error)}",
        provider=f.provider,
        status=exc.smtp_code,
    )


def _certificate(exc: Any, f: SetupFailure) -> TransportError:
    return TransportCertificateError(
        f"{f.where}: TLS certificate verification failed ({exc.verify_message}); "
        "trust its CA with ?cafile= or ssl_context=",
        provider=f.provider,
    )


def _handshake(exc: Any, f: SetupFailure) -> TransportError:
    reason = getattr(exc, "reason", None) or exc  # None or absent on some SSLErrors
    return TLSHandshakeError(f"{f.where}: TLS handshake failed ({reason})", provider=f.provider)


def _session_refused(exc: Any, f: SetupFailure) -> TransportError:
    return TransportConnectionError(
        f"{f.where} refused the session: {exc.smtp_code} {_text(exc.smtp_error)}",
        provider=f.provider,
        status=exc.smtp_code,
        transient=exc.smtp_code < 500,
    )


def _setup_refused(exc: Any, f: SetupFailure) -> TransportError:
    return TransportConnectionError(
        f"{f.where} failed the session set-up at {f.stage}: "
        f"{exc.smtp_code} {_text(exc.smtp_error)}",
        provider=f.provider,
        status=exc.smtp_code,
        transient=exc.smtp_code < 500,
    )


def _disconnected(exc: Any, f: SetupFailure) -> TransportError:
    return TransportConnectionError(
        f"{f.where} closed the connection during set-up ({doing(f.stage)})",
        provider=f.provider,
    )


def _smtp_error(exc: Any, f: SetupFailure) -> TransportError:
    return TransportError(f"{f.where}: {exc}", provider=f.provider)


def _timed_out(exc: Any, f: SetupFailure) -> TransportError:
    return TransportTimeout(
        f"{f.where}: timed out after {f.timeout:g}s {doing(f.stage)}", provider=f.provider
    )


def _network(exc: Any, f: SetupFailure) -> TransportError:
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if f.stage == "connect":
        message = f"cannot connect to {f.where}: {detail}"
    else:
        message = f"{f.where}: connection lost {doing(f.stage)}: {detail}"
    return TransportConnectionError(message, provider=f.provider)


#: Set-up failure -> typed error, first match wins (subclasses before their bases).
SETUP_ERRORS: tuple[
    tuple[type[BaseException], Callable[[Any, SetupFailure], TransportError]], ...
] = (
    (smtplib.SMTPAuthenticationError, _auth_refused),
    (ssl.SSLCertVerificationError, _certificate),
    (ssl.SSLError, _handshake),
    (smtplib.SMTPConnectError, _session_refused),
    (smtplib.SMTPResponseException, _setup_refused),
    (smtplib.SMTPServerDisconnected, _disconnected),
    (smtplib.SMTPException, _smtp_error),
    (TimeoutError, _timed_out),
    (OSError, _network),
)


def setup_error(exc: BaseException, failure: SetupFailure) -> TransportError | None:
    """The typed error for a set-up failure *exc* (per :data:`SETUP_ERRORS`), or None."""
    for kind, build in SETUP_ERRORS:
        if isinstance(exc, kind):
            return build(exc, failure)
    return None


def open_connection(
    host: str,
    port: int,
    *,
    tls: str,
    context: ssl.SSLContext | None,
    timeout: float,
    local_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
    username: str | None = None,
    password: str | None = None,
    server_hostname: str | None = None,
    provider: str = "smtp",
) -> Connection:
    """Connect, EHLO, STARTTLS (per *tls*) and AUTH; raise a typed ``TransportError``.

    *server_hostname* is the name checked against the certificate when *host*
    is an IP address (direct-to-MX connects by address). Whatever fails, the
    socket is closed before the error leaves.
    """
    where = f"{host}:{port}"
    smtp: _SMTP | None = None
    try:
        smtp = (_SMTPSSL if tls == "implicit" else _SMTP)(
            local_hostname=local_hostname,
            timeout=timeout,
            source_address=source_address,
            server_hostname=server_hostname,
            **({"context": context} if tls == "implicit" else {}),
        )
        return _set_up(
            smtp,
            host,
            port,
            tls=tls,
            context=context,
            username=username,
            password=password,
            where=where,
            provider=provider,
        )
    except BaseException as exc:
        if smtp is not None:
            smtp.close()
        if isinstance(exc, TransportError):
            raise
        typed = setup_error(
            exc, SetupFailure(where=where, stage=_stage(smtp), timeout=timeout, provider=provider)
        )
        if typed is None:
            raise
        raise typed from None


def _set_up(
    smtp: _SMTP,
    host: str,
    port: int,
    *,
    tls: str,
    context: ssl.SSLContext | None,
    username: str | None,
    password: str | None,
    where: str,
    provider: str,
) -> Connection:
    """The set-up dialogue of :func:`open_connection` on the unconnected *smtp*."""
    code, reply = smtp.connect(host, port)
    if code != 220:
        raise smtplib.SMTPConnectError(code, reply)
    _hello(smtp)
    secured = tls == "implicit"
    if tls in ("starttls", "opportunistic"):
        if smtp.has_extn("starttls"):
            smtp.stage = "STARTTLS"
            smtp.starttls(context=context)
            _hello(smtp)
            secured = True
        elif tls == "starttls":
            raise TransportError(
                f"{where} does not offer STARTTLS, which this transport requires "
                "(use ?tls=none to allow plaintext explicitly)",
                provider=provider,
            )
    if username is not None:
        if not smtp.has_extn("auth"):
            raise TransportError(
                f"{where} does not offer AUTH"
                + ("" if secured else " without TLS (the session is not encrypted)"),
                provider=provider,
            )
        smtp.stage = "AUTH"
        smtp.login(username, password or "")
    return Connection(smtp, tls=secured)


def _stage(smtp: smtplib.SMTP | None) -> str:
    return str(getattr(smtp, "stage", "connect"))


def _hello(smtp: _SMTP) -> None:
    """EHLO, falling back to HELO; raise unless the server said yes."""
    smtp.stage = "EHLO"
    code, reply = smtp.ehlo()
    if code == 421:
        raise smtplib.SMTPHeloError(code, reply)
    if not 200 <= code < 300:
        code, reply = smtp.helo()
        if not 200 <= code < 300:
            raise smtplib.SMTPHeloError(code, reply)


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP that checks the certificate against *server_hostname* when given,
    keeps a time-out a ``TimeoutError`` (smtplib reports it as a disconnection) and
    records the set-up ``stage`` it reached."""

    stage = "connect"

    def __init__(self, *, server_hostname: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self._server_hostname = server_hostname

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        self._host = self._server_hostname or host
        self.stage = "connect"
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self.stage = "greeting"
        return sock

    def getreply(self) -> tuple[int, bytes]:
        try:
            return super().getreply()
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):
                raise TimeoutError("timed out") from None
            raise

    def send(self, s: Any) -> None:
        try:
            super().send(s)
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):
                raise TimeoutError("timed out") from None
            raise


class _SMTPSSL(_SMTP, smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL with the same *server_hostname* handling."""


class Pool:
    """Idle SMTP connections per key, at most ``size`` open per key."""

    def __init__(self, size: int, max_idle: float) -> None:
        self.size = size
        self.max_idle = max_idle
        self._idle: dict[Any, list[Connection]] = {}
        self._open: dict[Any, int] = {}
        self._cond = threading.Condition()
        self.closed = False

    def acquire(self, key: Any, factory: Callable[[], Connection]) -> tuple[Connection, bool]:
        """An idle connection for *key* (reused=True) or a new one from *factory*."""
        stale: list[Connection] = []
        try:
            with self._cond:
                while True:
                    if self.closed:
                        raise TransportError("the transport is closed")
                    idle = self._idle.get(key, [])
                    now = time.monotonic()
                    while idle:
                        conn = idle.pop()
                        if now - conn.last_used <= self.max_idle:
                            return conn, True
                        stale.append(conn)
                        self._open[key] -= 1
                    if self._open.get(key, 0) < self.size:
                        self._open[key] = self._open.get(key, 0) + 1
                        break
                    self._cond.wait()
        finally:
            for conn in stale:
                conn.close()
        try:
            return factory(), False
        except BaseException:
            with self._cond:
                self._open[key] -= 1
                self._cond.notify()
            raise

    def release(self, key: Any, conn: Connection) -> None:
        """Return *conn* for reuse, or close it when it is dead or the pool is closed."""
        with self._cond:
            keep = conn.alive and not self.closed
            if keep:
                self._idle.setdefault(key, []).append(conn)
            else:
                self._open[key] -= 1
            self._cond.notify()
        if not keep:
            conn.close()

    def transact(
        self,
        conn: Connection,
        reused: bool,
        factory: Callable[[], Connection],
        env: Envelope,
        data: bytes,
    ) -> tuple[list[RecipientResult], tuple[int, str] | None]:
        """One transaction on *conn*, replacing it once if it was a stale pooled connection.

        A reused connection that the server closed while idle fails at RSET or
        MAIL, before anything was sent: *conn* is replaced in place (from
        *factory*) and the transaction runs again.

        Raises:
            Dropped: the connection broke (a second time, or after MAIL).
            TransportError: the replacement could not be opened.
        """
        try:
            return conn.transact(env.sender, env.recipients, data)
        except Dropped as exc:
            if not (reused and exc.stage in ("RSET", "MAIL")):
                raise
            replacement = self.replace(conn, factory)
            conn.__dict__.update(replacement.__dict__)
            return conn.transact(env.sender, env.recipients, data)

    def replace(self, conn: Connection, factory: Callable[[], Connection]) -> Connection:
        """Close a dropped *conn* and open its replacement in the same slot.

        When *factory* fails, *conn* stays (dead) in the caller's hands and frees
        its slot when released.
        """
        conn.close()
        return factory()

    def close(self) -> None:
        """Close every idle connection; connections in use close when released."""
        with self._cond:
            self.closed = True
            idle = [c for conns in self._idle.values() for c in conns]
            for key, conns in self._idle.items():
                self._open[key] -= len(conns)
            self._idle.clear()
            self._cond.notify_all()
        for conn in idle:
            conn.close()


def build_result(
    env: Envelope,
    rcpt_results: list[RecipientResult],
    data_reply: tuple[int, str] | None,
    *,
    transport: str,
    latency: float,
) -> SendResult:
    """One message's result from its RCPT replies and the answer to DATA.

    A recipient is accepted only when the server accepted the message after
    DATA; until then an RCPT-accepted recipient is still pending.
    """
    possibly = False
    if data_reply is not None:
        code, text = data_reply
        final = status_for_reply(code)
        # A reply that is neither yes nor no, after the whole message: unknown.
        possibly = not (200 <= code < 300 or 400 <= code < 600)
        if final is not SendStatus.ACCEPTED:
            # DATA refused: every recipient RCPT accepted shares DATA's fate.
            rcpt_results = _settle_accepted(rcpt_results, final, code, text, _enhanced(text))
        match = _QUEUED_AS.search(text) if final is SendStatus.ACCEPTED else None
        return SendResult(
            status=overall_status(r.status for r in rcpt_results),
            recipients=env.recipients,
            transport=transport,
            message_id=match.group(1) if match else None,
            status_code=code,
            status_text=text,
            enhanced_status=_enhanced(text),
            latency=latency,
            recipient_results=tuple(rcpt_results),
            idempotency_key=env.idempotency_key,
            possibly_delivered=possibly,
        )
    # DATA was not sent: nobody can have been accepted.
    rcpt_results = _unsent(rcpt_results, None, "DATA was not sent", "4.4.2")
    first = rcpt_results[0] if rcpt_results else None
    worst = next((r for r in rcpt_results if r.status is SendStatus.DEFERRED), first)
    return SendResult(
        status=overall_status(r.status for r in rcpt_results),
        recipients=env.recipients,
        transport=transport,
        status_code=worst.status_code if worst else None,
        status_text=worst.status_text if worst else "",
        enhanced_status=worst.enhanced_status if worst else None,
        latency=latency,
        recipient_results=tuple(rcpt_results),
        idempotency_key=env.idempotency_key,
    )


def dropped_result(
    env: Envelope, exc: Dropped, *, transport: str, timeout: float | None, latency: float = 0.0
) -> SendResult:
    """The result of a transaction whose connection was lost or timed out.

    RCPT refusals received before stand (a 5xx is final, a 4xx deferred with
    its code); every other recipient is deferred with the reason, since the
    server never answered the message for it. After the final dot the result
    is marked ``possibly_delivered``.
    """
    text = exc.describe(timeout)
    enhanced = "4.4.1" if exc.timed_out else "4.4.2"
    if exc.code is not None:  # the server's own words (a 421 to MAIL, RSET)
        enhanced = _enhanced(str(exc)) or enhanced
    known = {r.recipient: r for r in exc.partial if r.status is not SendStatus.ACCEPTED}
    per = tuple(
        known.get(r)
        or RecipientResult(
            recipient=r,
            status=SendStatus.DEFERRED,
            status_code=exc.code,
            status_text=text,
            enhanced_status=enhanced,
        )
        for r in env.recipients
    )
    return SendResult(
        status=overall_status(r.status for r in per),
        recipients=env.recipients,
        transport=transport,
        status_code=exc.code,
        status_text=text,
        enhanced_status=enhanced,
        latency=latency,
        recipient_results=per,
        idempotency_key=env.idempotency_key,
        possibly_delivered=exc.possibly_delivered,
    )


def check_helo_name(name: object, transport: str) -> None:
    """Raise ``ConfigurationError`` unless *name* is None or usable after EHLO.

    A domain or address literal: printable ASCII without spaces, so no CR/LF
    can smuggle a command into the session (RFC 5321 section 4.1.1.1).
    """
    if name is None:
        return
    if not isinstance(name, str) or not _HELO_NAME.fullmatch(name):
        shown = name[:40] if isinstance(name, str) else type(name).__name__
        raise ConfigurationError(
            f"{transport}: the EHLO name {shown!r} must be a domain or address literal "
            "(printable ASCII, no spaces or line breaks)"
        )


def check_source_ip(address: object, transport: str) -> None:
    """Raise ``ConfigurationError`` unless *address* is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(address if isinstance(address, str) else "")
    except ValueError:
        shown = address[:45] if isinstance(address, str) else type(address).__name__
        raise ConfigurationError(
            f"{transport}: source address {shown!r} is not an IP address"
        ) from None


def deferred_result(
    env: Envelope, transport: str, text: str, code: int | None = None
) -> SendResult:
    """A deferred result for a message whose connection failed."""
    return SendResult(
        status=SendStatus.DEFERRED,
        recipients=env.recipients,
        transport=transport,
        status_code=code,
        status_text=text,
        enhanced_status="4.4.2" if code is None else None,
        idempotency_key=env.idempotency_key,
    )
