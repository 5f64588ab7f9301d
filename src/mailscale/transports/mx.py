"""``mx://``: deliver straight to each recipient domain's mail exchangers.

For self-hosted senders. Recipients are grouped by domain; each domain's MX
records are looked up with dnspython (resolver injectable) and tried in
preference order (RFC 5321 section 5.1), falling back to the domain's own
A/AAAA records when it has no MX. A null MX (RFC 7505, ``MX 0 .``) means the
domain accepts no mail: its recipients are rejected. A domain that does not
exist is rejected; a DNS failure or every exchanger unreachable is deferred.

STARTTLS is opportunistic by default (used when offered, certificate not
verified, falling back to plaintext when the handshake fails, as RFC 7435
describes); ``?tls=required`` demands it with a verified certificate for the
MX host name, ``?tls=none`` never uses it. The source address is
``?source=`` / ``source_address`` or, per domain, ``ip_pool.choose(domain)``.
Connections are pooled per exchanger address and reused across messages.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs
import dns.exception
import dns.name
import dns.resolver

from mailscale._log import get_logger
from mailscale.errors import (
    ConfigurationError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
)
from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus, overall_status
from mailscale.transports._session import (
    Connection,
    Dropped,
    Pool,
    TLSHandshakeError,
    build_result,
    check_helo_name,
    check_source_ip,
    dropped_result,
    make_ssl_context,
    open_connection,
)
from mailscale.transports.base import Signer, TransportBase, TransportURL, message_bytes

__all__ = ["IPChooser", "MXTransport", "Route"]

_log = get_logger("mailscale.transports")

# Bounds of the route cache (recipient domains come from input an attacker may choose):
# domains kept, bytes accounted (names, addresses, 512 per entry and 128 per address),
# and the largest entry kept (a domain with more exchangers is looked up each time).
_ROUTES_MAX = 4096
_ROUTES_MAX_BYTES = 4 << 20
_ROUTE_MAX_BYTES = 64 << 10
# Addresses marked down are forgotten once their time is up, checked when this many.
_DOWN_PRUNE = 1024
MX_TLS_MODES = ("opportunistic", "required", "none")


class IPChooser(Protocol):
    """Picks the local source address for a destination domain (an IP pool).

    ``choose`` returns the address, or an object with ``ip`` (None when no IP has
    capacity now) and ``retry_after`` seconds, as ``mailscale.shaping.IPPool`` does.
    """

    def choose(self, domain: str) -> Any: ...


@attrs.frozen
class Route:
    """One mail exchanger of a domain: its name, preference and addresses."""

    host: str
    preference: int
    addresses: tuple[str, ...]


@attrs.frozen
class _Verdict:
    """Why a domain cannot be delivered to right now (instead of routes)."""

    status: SendStatus
    code: int
    enhanced: str
    text: str


class MXTransport(TransportBase):
    """Direct-to-MX delivery with per-domain routing and pooled connections.

    Args:
        resolver: a ``dns.resolver.Resolver`` (default: the system's).
        port: the SMTP port of every exchanger (25; tests use another).
        tls: ``"opportunistic"`` (default), ``"required"`` or ``"none"``.
        verify: verify certificates in opportunistic mode too (default False;
            always True for ``tls="required"``).
        cafile: a CA bundle to trust for ``tls="required"``.
        ssl_context: an SSL context to use for ``tls="required"``.
        timeout: socket time-out in seconds.
        local_hostname: the EHLO name (default: the machine's FQDN).
        source_address: local IP to bind, or None.
        ip_pool: an object whose ``choose(domain)`` returns the local IP to
            bind for that domain (overrides ``source_address``), such as
            ``mailscale.shaping.IPPool``; when it has no IP with capacity, the
            domain's recipients are deferred with its ``retry_after``.
        pool_size: connections open at most per exchanger address.
        max_idle: seconds an idle connection is kept.
        route_ttl: seconds a domain's looked-up routes are cached at most
            (the DNS TTL applies when shorter).
        signer: an object with ``sign(bytes) -> bytes`` applied before sending.
        down_for: seconds an exchanger address that refused or timed out is
            skipped (tried anyway when every address of a domain is down), so
            one dead MX does not cost a time-out per message.
        rng: randomness for ordering exchangers of equal preference.
        clock: monotonic seconds (injectable for tests).
    """

    name: ClassVar[str] = "mx"
    schemes: ClassVar[tuple[str, ...]] = ("mx",)
    payload: str = "mime"
    max_batch: int = 1000
    rate_preset: ClassVar[str | None] = None

    _URL_OPTIONS = ("source", "port", "tls", "verify", "cafile", "timeout", "helo", "pool_size")

    def __init__(
        self,
        *,
        resolver: dns.resolver.Resolver | None = None,
        port: int = 25,
        tls: str = "opportunistic",
        verify: bool = False,
        cafile: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        source_address: str | None = None,
        ip_pool: IPChooser | None = None,
        pool_size: int = 2,
        max_idle: float = 30.0,
        route_ttl: float = 300.0,
        signer: Signer | None = None,
        down_for: float = 60.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tls not in MX_TLS_MODES:
            raise ConfigurationError(
                f"mx: tls must be one of {', '.join(MX_TLS_MODES)}, got {tls!r}"
            )
        if ip_pool is not None and not callable(getattr(ip_pool, "choose", None)):
            raise ConfigurationError("mx: ip_pool must have a choose(domain) -> ip method")
        if signer is not None and not callable(getattr(signer, "sign", None)):
            raise ConfigurationError("mx: signer must have a sign(bytes) -> bytes method")
        if pool_size < 1:
            raise ConfigurationError(f"mx: pool_size must be >= 1, got {pool_size}")
        check_helo_name(local_hostname, "mx")
        if source_address is not None:
            check_source_ip(source_address, "mx")
        self.resolver = resolver or dns.resolver.Resolver()
        self.port = port
        self.tls = tls
        self.verify = True if tls == "required" else verify
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.source_address = source_address
        self.ip_pool = ip_pool
        self.signer = signer
        self.route_ttl = route_ttl
        self._rng = rng or random.Random()
        self.down_for = down_for
        self._clock = clock
        self._down: dict[str, float] = {}
        if ssl_context is None and tls != "none":
            ssl_context = make_ssl_context(verify=self.verify, cafile=cafile)
        self._context = ssl_context
        self._pool = Pool(pool_size, max_idle)
        # domain -> (expiry, routes or verdict, accounted bytes); bounded (see _remember).
        self._routes: dict[str, tuple[float, list[Route] | _Verdict, int]] = {}
        self._routes_bytes = 0
        self._routes_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> MXTransport:
        """``mx://?source=203.0.113.7&tls=opportunistic&port=25&helo=mail.example.com``."""
        url.check_options(cls._URL_OPTIONS)
        if url.host or url.username is not None or url.path not in ("", "/"):
            raise url.error("mx:// takes no host, user or path: mx://?source=IP")
        settings: dict[str, Any] = {
            "source_address": url.get_str("source"),
            "port": url.get_int("port", 25, minimum=1),
            "tls": cls.tls_of(url),
            "verify": url.get_bool("verify", False),
            "cafile": url.get_str("cafile"),
            "timeout": url.get_float("timeout", 30.0, minimum=0.001),
            "local_hostname": url.get_str("helo"),
            "pool_size": url.get_int("pool_size", 2, minimum=1),
        }
        settings.update(options)
        try:
            return cls(**settings)
        except ConfigurationError as exc:
            raise url.error(str(exc)) from None

    @classmethod
    def tls_of(cls, url: TransportURL) -> str:
        """``"opportunistic"`` (the default), ``"required"`` or ``"none"``."""
        url.check_options(cls._URL_OPTIONS)
        tls = url.get_str("tls", "opportunistic") or "opportunistic"
        if tls not in MX_TLS_MODES:
            raise url.error(f"mx: tls must be one of {', '.join(MX_TLS_MODES)}, got {tls!r}")
        return tls

    # --- routing -------------------------------------------------------------

    def routes(self, domain: str) -> list[Route] | _Verdict:
        """The exchangers for *domain* in the order to try, or why there are none."""
        key = domain.lower().rstrip(".")
        now = time.monotonic()
        with self._routes_lock:
            cached = self._routes.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        found, ttl = self._lookup(key)
        if not (isinstance(found, _Verdict) and found.status is SendStatus.DEFERRED):
            with self._routes_lock:
                self._remember(key, now + min(ttl, self.route_ttl), found)
        return found

    def _remember(self, key: str, until: float, found: list[Route] | _Verdict) -> None:
        """Cache a domain's routes within the cache's bounds (called under the lock)."""
        size = 512 + 2 * len(key)
        if isinstance(found, _Verdict):
            size += 2 * len(found.text)
        else:
            size += sum(2 * len(r.host) + sum(128 + len(a) for a in r.addresses) for r in found)
        if size > _ROUTE_MAX_BYTES:
            return
        if len(self._routes) >= _ROUTES_MAX or self._routes_bytes + size > _ROUTES_MAX_BYTES:
            # Drop what has expired; if that frees less than half, start again.
            now = time.monotonic()
            self._routes = {k: v for k, v in self._routes.items() if v[0] > now}
            self._routes_bytes = sum(v[2] for v in self._routes.values())
            if (
                len(self._routes) >= _ROUTES_MAX // 2
                or self._routes_bytes + size > _ROUTES_MAX_BYTES // 2
            ):
                self._routes, self._routes_bytes = {}, 0
        old = self._routes.pop(key, None)
        if old is not None:
            self._routes_bytes -= old[2]
        self._routes[key] = (until, found, size)
        self._routes_bytes += size
        if len(self._down) >= _DOWN_PRUNE:
            clock = self._clock()
            self._down = {a: t for a, t in self._down.items() if t > clock}

    def _lookup(self, domain: str) -> tuple[list[Route] | _Verdict, float]:
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return _Verdict(SendStatus.REJECTED, 553, "5.1.2", f"invalid domain {domain!r}"), 0.0
        try:
            answer = self.resolver.resolve(ascii_domain + ".", "MX")
        except dns.resolver.NXDOMAIN:
            return (
                _Verdict(SendStatus.REJECTED, 550, "5.1.2", f"domain {domain} does not exist"),
                self.route_ttl,
            )
        except dns.resolver.NoAnswer:
            # RFC 5321 section 5.1: no MX → the domain itself is the implicit MX.
            addresses = self._addresses(ascii_domain)
            if isinstance(addresses, _Verdict):
                return addresses, 0.0
            if not addresses:
                return (
                    _Verdict(
                        SendStatus.REJECTED,
                        550,
                        "5.1.2",
                        f"domain {domain} has neither MX nor address records",
                    ),
                    self.route_ttl,
                )
            return [Route(ascii_domain, 0, addresses)], self.route_ttl
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            text = f"DNS lookup for {domain} failed: {exc}"
            return _Verdict(SendStatus.DEFERRED, 451, "4.4.3", text), 0.0
        records = sorted(
            ((int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer),
            key=lambda r: (r[0], self._rng.random()),
        )
        # RFC 7505: a null MX ("MX 0 .") says the domain accepts no mail.
        if all(host in ("", ".") for _, host in records):
            return (
                _Verdict(
                    SendStatus.REJECTED, 556, "5.1.10", f"domain {domain} accepts no mail (null MX)"
                ),
                float(answer.rrset.ttl if answer.rrset is not None else self.route_ttl),
            )
        routes: list[Route] = []
        for preference, host in records:
            if host in ("", "."):
                continue
            addresses = self._addresses(host)
            if isinstance(addresses, _Verdict) or not addresses:
                _log.debug("transport.mx_host_unresolved", domain=domain, host=host)
                continue
            routes.append(Route(host, preference, addresses))
        if not routes:
            return (
                _Verdict(
                    SendStatus.DEFERRED, 451, "4.4.3", f"no exchanger of {domain} has an address"
                ),
                0.0,
            )
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else self.route_ttl
        return routes, ttl

    def _addresses(self, host: str) -> tuple[str, ...] | _Verdict:
        found: list[str] = []
        failure: _Verdict | None = None
        for rdtype in ("A", "AAAA"):
            try:
                found.extend(r.to_text() for r in self.resolver.resolve(host + ".", rdtype))
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                failure = _Verdict(
                    SendStatus.DEFERRED, 451, "4.4.3", f"DNS lookup for {host} failed: {exc}"
                )
        if not found and failure is not None:
            return failure
        return tuple(found)

    # --- sending -------------------------------------------------------------

    def _source(self, domain: str) -> tuple[str | None, float | None]:
        """The local address to send from, and None; or None and the seconds to wait when
        the pool has no IP with capacity for *domain* now."""
        if self.ip_pool is None:
            return self.source_address, None
        choice: Any = self.ip_pool.choose(domain)
        # mailscale.shaping.IPPool answers with a PoolChoice (ip, retry_after); a plain
        # pool may answer with the address itself.
        ip = getattr(choice, "ip", choice)
        if ip is None:
            return None, max(0.0, float(getattr(choice, "retry_after", 0.0)))
        return str(ip), None

    def _opener(
        self, route: Route, address: str, source: str | None, tls: str
    ) -> Callable[[], Connection]:
        return lambda: open_connection(
            address,
            self.port,
            tls="starttls" if tls == "required" else tls,
            context=self._context,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
            source_address=(source, 0) if source else None,
            server_hostname=route.host,
            provider=self.name,
        )

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Deliver each envelope to every recipient domain's exchangers."""
        results = []
        for env in batch:
            prepared = message_bytes(env, self.signer, self.name)
            if isinstance(prepared, SendResult):
                results.append(prepared)
                continue
            results.append(self._deliver(env, prepared))
        return results

    def _deliver(self, env: Envelope, data: bytes) -> SendResult:
        start = time.perf_counter()
        by_domain: dict[str, list[str]] = {}
        for rcpt in env.recipients:
            by_domain.setdefault(rcpt.rpartition("@")[2].lower(), []).append(rcpt)
        outcome: dict[str, RecipientResult] = {}
        replies: list[SendResult] = []
        for domain, rcpts in by_domain.items():
            found = self.routes(domain)
            if isinstance(found, _Verdict):
                for r in rcpts:
                    outcome[r] = RecipientResult(
                        recipient=r,
                        status=found.status,
                        status_code=found.code,
                        status_text=f"{found.enhanced} {found.text}",
                        enhanced_status=found.enhanced,
                    )
                continue
            result = self._deliver_domain(env, domain, rcpts, data, found)
            replies.append(result)
            for rr in result.recipient_results:
                outcome[rr.recipient] = rr
        ordered = tuple(outcome[r] for r in env.recipients)
        status = overall_status(r.status for r in ordered)
        accepted = next((r for r in replies if r.message_id), None)
        # The headline status code: the first recipient that shares the message's
        # status when it is not accepted, else the first exchanger's DATA reply.
        head: RecipientResult | SendResult | None = next(
            (r for r in ordered if r.status is status and status is not SendStatus.ACCEPTED),
            replies[0] if replies else None,
        )
        return SendResult(
            status=status,
            recipients=env.recipients,
            transport=self.name,
            message_id=accepted.message_id if accepted else None,
            status_code=head.status_code if head else None,
            status_text=head.status_text if head else "",
            enhanced_status=head.enhanced_status if head else None,
            latency=time.perf_counter() - start,
            recipient_results=ordered,
            idempotency_key=env.idempotency_key,
            possibly_delivered=any(r.possibly_delivered for r in replies),
            # The longest wait any domain asked for (an IP pool without capacity).
            retry_after=max((r.retry_after for r in replies if r.retry_after), default=None),
        )

    def _deliver_domain(
        self, env: Envelope, domain: str, rcpts: list[str], data: bytes, routes: list[Route]
    ) -> SendResult:
        """Try each exchanger in order until one answers the transaction."""
        source, wait = self._source(domain)
        part = attrs.evolve(env, recipients=tuple(rcpts))
        if wait is not None:
            return _pool_full(part, domain, wait, self.name)
        failures: list[str] = []
        candidates = [(route, address) for route in routes for address in route.addresses]
        now = self._clock()
        with self._routes_lock:
            up = [c for c in candidates if self._down.get(c[1], 0.0) <= now]
        for route, address in up or candidates:
            try:
                return self._transact(part, route, address, source, data)
            except (TransportConnectionError, TransportTimeout) as exc:
                failures.append(f"{route.host}[{address}]: {exc}")
                with self._routes_lock:
                    self._down[address] = self._clock() + self.down_for
            except TransportError as exc:
                failures.append(f"{route.host}[{address}]: {exc}")
            except Dropped as exc:
                if exc.possibly_delivered:
                    # The exchanger may have taken the message: another one must not
                    # get a second copy. Deferred, marked, for a later single retry.
                    _log.warning(
                        "transport.connection_lost",
                        transport=self.name,
                        host=route.host,
                        stage=exc.stage,
                        timed_out=exc.timed_out,
                        possibly_delivered=True,
                    )
                    return dropped_result(part, exc, transport=self.name, timeout=self.timeout)
                failures.append(f"{route.host}[{address}]: {exc.describe(self.timeout)}")
                if exc.timed_out:
                    with self._routes_lock:
                        self._down[address] = self._clock() + self.down_for
        _log.warning(
            "transport.mx_unreachable", domain=domain, tried=len(failures), last=failures[-1:]
        )
        text = "4.4.1 no exchanger accepted the connection: " + "; ".join(failures[-3:])
        return SendResult(
            status=SendStatus.DEFERRED,
            recipients=part.recipients,
            transport=self.name,
            status_code=451,
            status_text=text,
            enhanced_status="4.4.1",
            recipient_results=tuple(
                RecipientResult(
                    recipient=r,
                    status=SendStatus.DEFERRED,
                    status_code=451,
                    status_text=text,
                    enhanced_status="4.4.1",
                )
                for r in rcpts
            ),
        )

    def _transact(
        self, env: Envelope, route: Route, address: str, source: str | None, data: bytes
    ) -> SendResult:
        """One transaction on a pooled connection to *address*.

        Raises:
            TransportError: the exchanger could not be reached (try the next).
            Dropped: the connection broke or timed out (try the next, unless
                ``possibly_delivered``: it broke after the final dot).
        """
        key = (address, self.port, source)
        opener = self._opener(route, address, source, self.tls)
        try:
            conn, reused = self._pool.acquire(key, opener)
        except TLSHandshakeError:
            if self.tls != "opportunistic":
                raise
            # RFC 7435: opportunistic TLS falls back to cleartext when TLS fails.
            _log.info("transport.mx_tls_fallback", host=route.host, address=address)
            conn, reused = self._pool.acquire(key, self._opener(route, address, source, "none"))
        start = time.perf_counter()
        try:
            rcpts, reply = self._pool.transact(conn, reused, opener, env, data)
        finally:
            self._pool.release(key, conn)
        if reply is None and rcpts and all(r.status_code == 421 for r in rcpts):
            raise Dropped("RCPT", "421 service closing")
        return build_result(
            env, rcpts, reply, transport=self.name, latency=time.perf_counter() - start
        )

    def down_addresses(self) -> list[str]:
        """Exchanger addresses being skipped now after a failed connection."""
        now = self._clock()
        with self._routes_lock:
            return sorted(a for a, until in self._down.items() if until > now)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()

    def _repr_fields(self) -> Mapping[str, Any]:
        return {
            "port": self.port,
            "tls": self.tls,
            "verify": self.verify,
            "source_address": self.source_address,
            "ip_pool": self.ip_pool,
        }


def _pool_full(part: Envelope, domain: str, wait: float, transport: str) -> SendResult:
    """Deferred without a connection: no IP of the pool may send to *domain* yet."""
    text = f"4.7.0 no source IP of the pool has capacity for {domain} now"
    return SendResult(
        status=SendStatus.DEFERRED,
        recipients=part.recipients,
        transport=transport,
        status_code="local",
        status_text=text,
        enhanced_status="4.7.0",
        retry_after=wait,
        recipient_results=tuple(
            RecipientResult(
                recipient=r,
                status=SendStatus.DEFERRED,
                status_code="local",
                status_text=text,
                enhanced_status="4.7.0",
            )
            for r in part.recipients
        ),
        idempotency_key=part.idempotency_key,
    )
