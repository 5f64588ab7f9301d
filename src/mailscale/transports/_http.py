"""Shared machinery of the HTTP provider transports (SendGrid, Mailgun, Postmark).

Each transport turns a batch of envelopes into a list of :class:`Call`
objects (one HTTP request and the envelopes it carries) and maps each
response back to one :class:`SendResult` per envelope. This module runs the
calls through one pooled ``httpx.Client`` (or, for :meth:`send_async`, one
``httpx.AsyncClient``), turns network failures into typed errors and parses
the rate-limit headers the shaper learns from.

Whole-call failures: when no request of a batch got an answer (connection
refused, time-out), the call raises ``TransportConnectionError`` /
``TransportTimeout``. When some requests were answered, a network failure of
another does not raise (that would lose the results of what was already
accepted); the envelopes it carried come back DEFERRED instead.

Unreadable answers: a 2xx answer whose body the transport needs and cannot
interpret (not JSON, a missing or mistyped field, a list of the wrong length)
never makes a message accepted. Its messages come back DEFERRED, saying that
the provider may or may not have sent them; the other messages of the batch
keep their results.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import os
import ssl
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, ClassVar, TypeAlias
from urllib.parse import urlsplit

import attrs
import httpx

from mailscale._log import get_logger
from mailscale.errors import (
    ConfigurationError,
    MailscaleError,
    TransportAuthError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
)
from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus
from mailscale.transports.base import TransportBase, TransportURL, redact_url

#: What preparing one message may raise; such a message is rejected, the batch goes on.
PREPARE_ERRORS = (MailscaleError, ValueError, LookupError, UnicodeError, TypeError)

#: Ends the status_text of a message whose fate is unknown (sent, but no readable answer).
MAYBE_DELIVERED = "it may or may not have been delivered"

__all__ = [
    "DEFAULT_TIMEOUT",
    "Call",
    "LocalResult",
    "MAYBE_DELIVERED",
    "PREPARE_ERRORS",
    "HTTPTransportBase",
    "credential_from_url",
    "http_url_options",
    "parse_retry_after",
    "rate_limit_headers",
]

_log = get_logger("mailscale.transports")

#: A performed request: the call, its response or network error, and its latency in seconds.
Outcome: TypeAlias = "tuple[Call, httpx.Response | httpx.HTTPError, float]"
#: The sans-IO exchange: yields the calls to perform, receives their outcomes, returns results.
Exchange: TypeAlias = "Generator[list[Call], list[Outcome], list[SendResult]]"

#: Connect 5 s, write 30 s, read 30 s, wait for a pooled connection 10 s.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, pool=10.0)

#: Numbers the requests that answered for several messages (``SendResult.exchange``).
_EXCHANGES = itertools.count(1)

_RATE_HEADER_PREFIXES = ("x-ratelimit-", "ratelimit-")
_RATE_HEADER_NAMES = frozenset({"retry-after", "ratelimit"})


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers of a response: ``X-RateLimit-*``, ``RateLimit-*``, ``Retry-After``."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in _RATE_HEADER_NAMES or low.startswith(_RATE_HEADER_PREFIXES):
            out[low] = value
    return out


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date.

    RFC 9110 section 10.2.3.

    Returns None when the value is absent or unparseable; never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def _reset_delay(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` value: an epoch time, or a delta when small."""
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    current = time.time() if now is None else now
    # A Unix timestamp is > 1e9; smaller values are a delta in seconds.
    return max(0.0, reset - current) if reset > 1e9 else max(0.0, reset)


def retry_after_from(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """``Retry-After`` when present, else the time until ``X-RateLimit-Reset``."""
    delay = parse_retry_after(headers.get("retry-after"), now=now)
    if delay is None:
        delay = _reset_delay(headers.get("x-ratelimit-reset"), now=now)
    return delay


def credential_from_url(url: TransportURL, what: str) -> str:
    """The secret of ``scheme://SECRET@host`` (or ``scheme://user:SECRET@host``).

    Raises:
        ConfigurationError: when the URL carries none; the message shows the URL redacted.
    """
    secret = url.password or url.username
    if not secret:
        raise ConfigurationError(
            f"transport URL {url.redacted()!r} has no {what}: "
            f"use {url.scheme}://{what.upper().replace(' ', '_')}@..."
        )
    return secret


def http_url_options(url: TransportURL, known: Iterable[str] = ()) -> dict[str, str]:
    """The query options of a provider URL: *known* ones and ``base_url``.

    ``base_url`` points the transport at another API root (a regional host, a
    proxy, a local test server); it must be an ``http(s)://`` URL without
    credentials, which belong in the transport URL itself.

    Raises:
        ConfigurationError: an unknown option, an empty value or a bad ``base_url``;
            the message shows the URL redacted.
    """
    allowed = (*known, "base_url")
    url.check_options(allowed)
    url.check_values(allowed)
    options = {k: url.query[k] for k in allowed if k in url.query}
    base_url = options.get("base_url")
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise url.error("option 'base_url' must be an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise url.error("option 'base_url' must not carry credentials")
    return options


@attrs.frozen(kw_only=True)
class Call:
    """One HTTP request and the envelopes (indices into the batch) it carries.

    ``parse_response(response, latency)`` turns the provider's answer into
    ``(index, result)`` pairs for those envelopes.
    """

    method: str
    path: str
    indices: tuple[int, ...]
    request: Mapping[str, Any]
    parse_response: Callable[[httpx.Response, float], list[tuple[int, SendResult]]]


@attrs.frozen(kw_only=True)
class LocalResult:
    """A result decided before any request (a limit the provider would refuse)."""

    index: int
    result: SendResult


class HTTPTransportBase(TransportBase):
    """Base of the HTTP provider transports: pooled clients, timeouts, error mapping.

    Args:
        base_url: the provider's API root; tests point it at a loopback peer.
        timeout: seconds or an ``httpx.Timeout`` (default: connect 5 s, read 30 s).
        verify: TLS verification (True, a CA bundle path or an ``ssl.SSLContext``);
            on by default.
        max_connections: size of the connection pool.
        concurrency: requests in flight at once when a batch needs several
            (worker threads in :meth:`send`, tasks in :meth:`send_async`).
    """

    payload: str = "json"
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        verify: Any = True,
        max_connections: int = 10,
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"{self.name}: concurrency must be >= 1, got {concurrency}")
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if (
            timeout is not None
            and not isinstance(timeout, httpx.Timeout)
            and (
                isinstance(timeout, bool)
                or not isinstance(timeout, (int, float))
                or not timeout > 0
            )
        ):
            raise ConfigurationError(
                f"{self.name}: timeout must be a positive number of seconds or an "
                f"httpx.Timeout, got {timeout!r}"[:200]
            )
        self.timeout = DEFAULT_TIMEOUT if timeout is None else httpx.Timeout(timeout)
        if isinstance(verify, (str, os.PathLike)):
            # A CA bundle file or directory: httpx wants an SSLContext.
            path = os.fspath(verify)
            try:
                verify = (
                    ssl.create_default_context(capath=path)
                    if os.path.isdir(path)
                    else ssl.create_default_context(cafile=path)
                )
            except (OSError, ssl.SSLError) as exc:
                reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
                raise ConfigurationError(
                    f"{self.name}: verify={str(path)!r} is not a usable CA bundle: {reason}"
                ) from None
        elif not isinstance(verify, (bool, ssl.SSLContext)):
            raise ConfigurationError(
                f"{self.name}: verify must be True, False, a CA bundle path or an "
                f"ssl.SSLContext, got {type(verify).__name__}"
            )
        self.verify = verify
        self.max_connections = max_connections
        self.concurrency = concurrency
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @classmethod
    def tls_of(cls, url: TransportURL) -> str:
        """``"required"`` (HTTPS), or ``"none"`` for a plain ``http://`` ``?base_url=``."""
        base_url = url.query.get("base_url") or cls.default_base_url
        return "none" if urlsplit(base_url).scheme.lower() == "http" else "required"

    # -- to implement ------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every request (they hold the secret)."""
        return {}

    def _auth(self) -> httpx.Auth | None:
        return None

    def _plan(self, batch: Sequence[Envelope]) -> tuple[list[Call], list[LocalResult]]:
        """Split *batch* into requests, and results decided locally."""
        raise NotImplementedError  # pragma: no cover

    # -- clients -----------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        headers = {"User-Agent": "mailscale", "Accept": "application/json"}
        headers.update(self._auth_headers())
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "verify": self.verify,
            "limits": self._limits,
            "headers": headers,
            "auth": self._auth(),
            "follow_redirects": False,
        }

    def _sync_client(self) -> httpx.Client:
        self._check_open()
        if self._client is None:
            self._client = httpx.Client(**self._client_kwargs())
        return self._client

    async def _async_client(self) -> tuple[httpx.AsyncClient, bool]:
        """The pooled client of an ``async with`` session on this loop, else a one-call client.

        Pooled asyncio connections belong to the loop that opened them, so the
        pool lives between ``__aenter__`` and ``__aexit__``; outside such a
        session each :meth:`send_async` call opens (and closes) its own client.
        The second value says whether the caller owns (must close) the client.
        """
        self._check_open()
        if self._aclient is not None and self._aloop is asyncio.get_running_loop():
            return self._aclient, False
        return httpx.AsyncClient(**self._client_kwargs()), True

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"{self.name} transport is closed", provider=self.name)

    def close(self) -> None:
        """Close the pooled clients. In asyncio code prefer ``await close_async()``."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None
        aclient, loop = self._aclient, self._aloop
        self._aclient = self._aloop = None
        if aclient is not None and loop is not None and not loop.is_closed():
            # Left open by a session that was not exited: close it on its own loop.
            if loop.is_running():
                self._closing = loop.create_task(aclient.aclose())
            else:
                loop.run_until_complete(aclient.aclose())

    async def close_async(self) -> None:
        """Close the pooled clients from asyncio code."""
        if self._aclient is not None:
            aclient, self._aclient, self._aloop = self._aclient, None, None
            await aclient.aclose()
        self.close()

    async def __aenter__(self) -> HTTPTransportBase:
        """Start an asyncio session: :meth:`send_async` reuses one connection pool until exit."""
        self._check_open()
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(**self._client_kwargs())
            self._aloop = asyncio.get_running_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close_async()

    async def aclose(self) -> None:
        """Deprecated alias of :meth:`close_async`."""
        warnings.warn(
            "HTTPTransportBase.aclose() is deprecated and will be removed in the next "
            "release; use close_async()",
            DeprecationWarning,
            stacklevel=2,
        )
        await self.close_async()

    def _repr_fields(self) -> Mapping[str, Any]:
        return {"base_url": redact_url(self.base_url)}

    # -- sending -----------------------------------------------------------
    #
    # One implementation for both paths, as httpcore does: _exchange is a generator
    # that plans the requests, yields them, receives their outcomes and returns the
    # results, without doing any I/O. send() and send_async() only perform the
    # requests it yields, on httpx.Client or httpx.AsyncClient.

    def plan_requests(self, batch: Sequence[Envelope]) -> list[tuple[int, ...]]:
        """The provider requests :meth:`send` would make for *batch*, without sending:
        for each request, the indices of the envelopes it carries (an envelope refused
        before any request is in none). A shaper whose limit counts requests is charged
        with it before the call. A second round (SendGrid re-sending what another's 400
        held back) is not foreseen."""
        calls, _local = self._plan(batch)
        return [call.indices for call in calls]

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch*; one result per envelope, in order."""
        exchange = self._exchange(batch)
        try:
            calls = next(exchange)
            while True:
                calls = exchange.send(self._perform(calls))
        except StopIteration as done:
            results: list[SendResult] = done.value
            return results

    async def send_async(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch* natively on asyncio (``httpx.AsyncClient``), ``concurrency`` at once."""
        exchange = self._exchange(batch)
        try:
            calls = next(exchange)
        except StopIteration as done:
            results: list[SendResult] = done.value
            return results
        client, owned = await self._async_client()
        try:
            while True:
                outcomes = await self._perform_async(client, calls)
                try:
                    calls = exchange.send(outcomes)
                except StopIteration as done:
                    results = done.value
                    return results
        finally:
            if owned:
                await client.aclose()

    def _exchange(self, batch: Sequence[Envelope]) -> Exchange:
        """Plan *batch*, yield its requests, receive their outcomes, return its results.

        Envelopes that :meth:`_send_again` names go once more, at once, in a
        second round; if that round fails as a whole they keep their first results.
        """
        results = yield from self._round(batch)
        again = self._send_again(results)
        if again:
            try:
                retried = yield from self._round([batch[i] for i in again])
            except TransportError:
                return results  # the first round's results must not be lost
            for i, result in zip(again, retried, strict=True):
                results[i] = result
        return results

    def _round(self, batch: Sequence[Envelope]) -> Exchange:
        """One round of requests for *batch* (see :meth:`_exchange`)."""
        self._check_open()
        calls, local = self._plan(batch)
        results: list[SendResult | None] = [None] * len(batch)
        for item in local:
            results[item.index] = item.result
        if calls:
            outcomes = yield calls
            self._collect(outcomes, batch, results)
        return [r for r in results if r is not None]

    def _send_again(self, results: Sequence[SendResult]) -> list[int]:
        """Indices of envelopes to send once more at once (held back by another's error)."""
        return []

    def _perform(self, calls: list[Call]) -> list[Outcome]:
        """Perform *calls* on the pooled ``httpx.Client`` (worker threads when several)."""
        client = self._sync_client()

        def one(call: Call) -> Outcome:
            start = time.perf_counter()
            try:
                response = client.request(call.method, call.path, **call.request)
            except httpx.HTTPError as exc:
                return call, exc, time.perf_counter() - start
            return call, response, time.perf_counter() - start

        if len(calls) == 1 or self.concurrency == 1:
            return [one(c) for c in calls]
        return list(self._executor().map(one, calls))

    async def _perform_async(self, client: httpx.AsyncClient, calls: list[Call]) -> list[Outcome]:
        """Perform *calls* on *client*, ``concurrency`` at once."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(call: Call) -> Outcome:
            async with gate:
                start = time.perf_counter()
                try:
                    response = await client.request(call.method, call.path, **call.request)
                except httpx.HTTPError as exc:
                    return call, exc, time.perf_counter() - start
                return call, response, time.perf_counter() - start

        return list(await asyncio.gather(*(one(c) for c in calls)))

    def _executor(self) -> ThreadPoolExecutor:
        """Worker threads for :meth:`send` when a batch needs several requests."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix=f"mailscale-{self.name}"
            )
        return self._pool

    def _collect(
        self,
        outcomes: Sequence[Outcome],
        batch: Sequence[Envelope],
        results: list[SendResult | None],
    ) -> None:
        """Map each call's response onto its envelopes' results, in batch order."""
        # A 401 says nothing about the messages: only a request answered otherwise counts.
        # When one did, a 401 or a network failure of another request defers its
        # envelopes, so the answered results are not lost to an exception.
        any_ok = any(isinstance(o[1], httpx.Response) and o[1].status_code != 401 for o in outcomes)
        for call, outcome, latency in outcomes:
            if isinstance(outcome, httpx.Response):
                self._apply(call, outcome, latency, batch, results, raise_auth=not any_ok)
                if len(call.indices) > 1:
                    # One request answered for several messages: its latency is one sample.
                    exchange = next(_EXCHANGES)
                    for i in call.indices:
                        found = results[i]
                        if found is not None and found.latency:
                            results[i] = attrs.evolve(found, exchange=exchange)
            else:
                self._network_failure(outcome, call, batch, results, raise_it=not any_ok)

    def _apply(
        self,
        call: Call,
        response: httpx.Response,
        latency: float,
        batch: Sequence[Envelope],
        results: list[SendResult | None],
        *,
        raise_auth: bool = True,
    ) -> None:
        if response.status_code == 401:
            recipients = tuple(r for i in call.indices for r in batch[i].recipients)
            _log.warning("transport.auth_refused", provider=self.name, status=401)
            if not raise_auth:
                for i in call.indices:
                    results[i] = self._result(
                        batch[i],
                        SendStatus.DEFERRED,
                        response=response,
                        latency=latency,
                        status_text="the provider refused the credentials (HTTP 401); not sent",
                    )
                return
            raise TransportAuthError(
                f"{self.name}: the provider refused the credentials (HTTP 401)",
                provider=self.name,
                status=401,
                recipients=recipients,
            )
        try:
            interpreted = call.parse_response(response, latency)
        except Exception as exc:  # a hostile answer must not lose the batch's other results
            _log.warning(
                "transport.answer_unreadable",
                provider=self.name,
                status=response.status_code,
                error=type(exc).__name__,
            )
            what = f"HTTP {response.status_code} answer could not be read ({type(exc).__name__})"
            interpreted = [
                (
                    i,
                    self._unsure(batch[i], response, latency, what)
                    if response.is_success
                    else self._result(
                        batch[i],
                        status_for_http(response.status_code),
                        response=response,
                        latency=latency,
                        status_text=what,
                    ),
                )
                for i in call.indices
            ]
        for index, result in interpreted:
            results[index] = result

    def _network_failure(
        self,
        exc: httpx.HTTPError,
        call: Call,
        batch: Sequence[Envelope],
        results: list[SendResult | None],
        *,
        raise_it: bool,
    ) -> None:
        recipients = tuple(r for i in call.indices for r in batch[i].recipients)
        timeout = isinstance(exc, httpx.TimeoutException)
        # str(exc) from httpx names the failure, never the request headers.
        what = "timed out" if timeout else f"failed: {type(exc).__name__}"
        _log.warning("transport.send_failed", provider=self.name, error=type(exc).__name__)
        if raise_it:
            cls = TransportTimeout if timeout else TransportConnectionError
            raise cls(
                f"{self.name}: request to {redact_url(self.base_url)} {what}",
                provider=self.name,
                recipients=recipients,
            ) from None
        for i in call.indices:
            results[i] = SendResult(
                status=SendStatus.DEFERRED,
                recipients=batch[i].recipients,
                transport=self.name,
                status_text=f"request {what}; {MAYBE_DELIVERED}",
                idempotency_key=batch[i].idempotency_key,
            )

    # -- result helpers ------------------------------------------------------

    def _result(
        self,
        env: Envelope,
        status: SendStatus,
        *,
        response: httpx.Response | None = None,
        latency: float = 0.0,
        message_id: str | None = None,
        status_code: int | str | None = None,
        status_text: str = "",
        recipient_results: tuple[RecipientResult, ...] = (),
    ) -> SendResult:
        rate: dict[str, str] = {}
        retry_after = None
        if response is not None:
            # Computed once per response, however many envelopes it answers.
            cached = response.extensions.get("mailscale.rate_limit")
            if cached is None:
                cached = response.extensions["mailscale.rate_limit"] = rate_limit_headers(
                    response.headers
                )
            rate = cached
            if status is SendStatus.DEFERRED:
                retry_after = retry_after_from(rate)
            if status_code is None:
                status_code = response.status_code
        return SendResult(
            status=status,
            recipients=env.recipients,
            transport=self.name,
            message_id=message_id,
            status_code=status_code,
            status_text=status_text,
            retry_after=retry_after,
            latency=latency,
            recipient_results=recipient_results,
            rate_limit=rate,
            idempotency_key=env.idempotency_key,
        )

    def _unsure(
        self, env: Envelope, response: httpx.Response, latency: float, reason: str
    ) -> SendResult:
        """A message whose answer cannot be interpreted: deferred, perhaps already sent."""
        result = self._result(
            env,
            SendStatus.DEFERRED,
            response=response,
            latency=latency,
            status_text=f"{reason}; {MAYBE_DELIVERED}",
        )
        return attrs.evolve(result, possibly_delivered=True)

    def _unreadable(self, index: int, env: Envelope, exc: Exception) -> LocalResult:
        """A message that cannot be turned into a request: rejected, never raised."""
        what = str(exc) if isinstance(exc, MailscaleError) else type(exc).__name__
        return self._local_reject(index, env, f"message cannot be prepared: {what}")

    def _over_limits(
        self,
        index: int,
        env: Envelope,
        provider: str,
        recipients: tuple[int, str],
        tags: int | None = None,
    ) -> LocalResult | None:
        """A local rejection of *env* when it has more recipients (at most
        ``recipients[0]`` per ``recipients[1]``) or tags than *provider* takes, else None.

        Rejected rather than split or trimmed: the caller's message is never changed
        behind its back."""
        most, per = recipients
        if len(env.recipients) > most:
            return self._local_reject(
                index,
                env,
                f"{len(env.recipients)} recipients; {provider} takes at most {most} per {per}",
            )
        if tags is not None and len(env.tags) > tags:
            return self._local_reject(
                index, env, f"{len(env.tags)} tags; {provider} keeps at most {tags} per message"
            )
        return None

    def _local_reject(self, index: int, env: Envelope, reason: str) -> LocalResult:
        return LocalResult(
            index=index,
            result=SendResult(
                status=SendStatus.REJECTED,
                recipients=env.recipients,
                transport=self.name,
                status_code="local",
                status_text=reason,
                idempotency_key=env.idempotency_key,
            ),
        )


def status_for_http(code: int) -> SendStatus:
    """Generic mapping: 2xx accepted, 408/429/5xx deferred, other 4xx rejected."""
    if 200 <= code < 300:
        return SendStatus.ACCEPTED
    if code in (408, 425, 429) or code >= 500:
        return SendStatus.DEFERRED
    return SendStatus.REJECTED


def json_or_none(response: httpx.Response) -> Any:
    """The response body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
