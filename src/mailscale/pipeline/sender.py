"""The ``Sender``: submit messages into an outbox; workers shape, sign and send them.

What it guarantees:

- ``submit`` validates the whole batch (addresses, header injection, size;
  typed errors naming the message's index) and returns only when the outbox
  holds every message (committed, for a durable outbox). A message without a
  Message-ID gets one then, so every retry and duplicate carries the same one.
- Delivery is at-least-once: a message leaves the outbox only when every
  recipient is settled (accepted, or rejected with its reason) or the delivery
  schedule gives up on it (a dead letter with its last outcome). A whole-call
  failure (connection refused, time-out, a plugin's exception) puts the batch
  back for a later attempt; nothing is lost and nothing is reported accepted
  that the transport did not report accepted.
- Deferred recipients are retried alone, on the delivery schedule, never
  before a provider's Retry-After.
- The shaper is never exceeded: a message the shaper refuses goes back to the
  outbox with a not-before time from the decision, and is not counted as an
  attempt. 429, SMTP 421 and 4.7.x answers throttle the keys involved; rate
  limit headers are fed to the shaper.
- Transactional mail never waits behind bulk: workers serve priority classes
  in a weighted rotation, so a transactional message is leased by the next
  batch whatever the bulk backlog.

Workers are threads (``workers=``); ``drain`` without running workers delivers
in the calling thread, which is how tests drive it on an injected clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.message import EmailMessage
from types import TracebackType
from typing import Any

import attrs

from mailscale._log import get_logger
from mailscale.errors import (
    ConfigurationError,
    InvalidMessage,
    MailscaleError,
    ShapingError,
    TransportError,
)
from mailscale.message import (
    Envelope,
    RecipientResult,
    SendResult,
    SendStatus,
    ensure_message_id,
)
from mailscale.pipeline._prepare import at_index, to_envelope, wire_form
from mailscale.pipeline.events import Event, EventKind, EventStream
from mailscale.pipeline.memory import MemoryOutbox
from mailscale.pipeline.metrics import Metrics, MetricsSnapshot
from mailscale.pipeline.outbox import (
    Lease,
    MessageId,
    NewMessage,
    Outbox,
    OutcomeStatus,
    Priority,
    RecipientOutcome,
    Settle,
    Settlement,
    outbox_from_url,
)
from mailscale.pipeline.routing import DEFAULT_ROUTE, Route, RouteRule, RuleFunction, check_rule
from mailscale.pipeline.schedule import DeliverySchedule
from mailscale.transports.base import Transport

__all__ = ["DeliveryTimeout", "Sender"]

_log = get_logger("mailscale.pipeline")

#: 25 MiB: the largest message the big mailbox providers accept.
DEFAULT_MAX_SIZE = 25 * 1024 * 1024
_MAX_KEYS = 32  # the shaper's limit of keys per decision
_MIN_WAIT = 0.001
_MAYBE = "possibly delivered: "
_THROTTLE_FACTOR = 0.5
_THROTTLE_SECONDS = 60.0
# What a limit counts (mailscale.shaping.Unit's values; a limit without a unit counts messages).
_MESSAGE, _REQUEST, _RECIPIENT = "message", "request", "recipient"
_UNSEEN = object()
# Which class leads each lease: transactional every other batch, normal and bulk in turn.
_ROTATION = (Priority.TRANSACTIONAL, Priority.NORMAL, Priority.TRANSACTIONAL, Priority.BULK)


class DeliveryTimeout(MailscaleError, TimeoutError):
    """``Sender.send`` saw no outcome for its message within the time-out (the message
    stays in the outbox and will still be delivered)."""


class _Route:
    """A route resolved for sending."""

    __slots__ = (
        "by_ip",
        "domain_keys",
        "down_until",
        "failover",
        "keys",
        "lock",
        "max_batch",
        "mime",
        "name",
        "options",
        "owned",
        "pool",
        "requests_held",
        "signer",
        "source_ip",
        "transport",
        "url",
    )

    def __init__(self, name: str, route: Route, signer: Any) -> None:
        transport = route.transport
        self.owned = isinstance(transport, str)
        self.url = transport if isinstance(transport, str) else None
        self.options = dict(route.options)
        self.pool = route.ip_pool
        self.by_ip: dict[str, Transport] = {}
        self.lock = threading.Lock()
        if self.pool is not None:
            if not callable(getattr(self.pool, "choose", None)):
                raise ConfigurationError(
                    f"route {name!r}: ip_pool must have a choose(domain) method"
                )
            if self.url is None:
                raise ConfigurationError(
                    f"route {name!r}: a route with an ip_pool needs its transport as a URL "
                    "(one transport is built per source IP)"
                )
            if route.source_ip:
                raise ConfigurationError(f"route {name!r}: give source_ip or ip_pool, not both")
            if "ip_pool" in self.options or "source_address" in self.options:
                raise ConfigurationError(
                    f"route {name!r}: the source address comes from the route's ip_pool, "
                    "not from options"
                )
        elif self.options and self.url is None:
            raise ConfigurationError(f"route {name!r}: options need the transport as a URL")
        if isinstance(transport, str):
            from mailscale.transports.registry import transport_from_url

            transport = transport_from_url(transport, **self.options)
        if not callable(getattr(transport, "send", None)):
            raise ConfigurationError(
                f"route {name!r}: transport must be a Transport or a URL, "
                f"got {type(transport).__name__}"
            )
        self.name = name
        self.transport: Transport = transport
        if self.pool is not None and getattr(transport, "source_address", None):
            transport.close()
            raise ConfigurationError(
                f"route {name!r}: the URL sets a source address (?source=) but the route "
                "has an ip_pool"
            )
        keys = route.shaper_keys if route.shaper_keys is not None else (f"route:{name}",)
        if route.source_ip:
            keys = (*keys, f"ip:{route.source_ip}")
        self.keys: tuple[str, ...] = tuple(keys)
        self.source_ip = route.source_ip or None
        # Until when the route's per-request keys refuse (new messages wait, uncharged).
        self.requests_held = 0.0
        self.mime = getattr(transport, "payload", "mime") == "mime"
        self.signer = route.signer if route.signer is not None else signer
        self.max_batch = max(1, int(getattr(transport, "max_batch", 1) or 1))
        self.failover = route.failover
        self.domain_keys = route.domain_keys
        self.down_until = 0.0

    def for_ip(self, ip: str) -> Transport:
        """The route's transport bound to source address *ip* (built on first use)."""
        found = self.by_ip.get(ip)
        if found is None:
            from mailscale.transports.registry import transport_from_url

            assert self.url is not None
            with self.lock:
                found = self.by_ip.get(ip)
                if found is None:
                    found = transport_from_url(self.url, source_address=ip, **self.options)
                    self.by_ip[ip] = found
        return found

    def transports(self) -> list[Transport]:
        """Every transport the route owns (the URL's and one per source IP used)."""
        with self.lock:
            return [self.transport, *self.by_ip.values()] if self.owned else []


class _Waiter:
    __slots__ = ("event", "ready")

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.event: Event | None = None


class Sender:
    """Submit messages; deliver them through shaping, DKIM signing and transports.

    Args:
        transport: a Transport or a transport URL (composites included): the
            single route ``"default"``. Give this or *routes*.
        routes: route name → :class:`Route` (or a Transport or URL).
        rule: picks a route per message: a :class:`RouteRule` or a callable
            ``(envelope, priority) -> route name``; default: the route named
            ``"default"``, else the first route.
        outbox: an Outbox or an outbox URL (``memory://``, the default;
            ``sqlite:///path``).
        signer: a DKIM signer (``DKIMSigner`` or ``MultiSigner``) for raw-MIME routes.
        shaper: a ``Shaper`` or ``RedisShaper``; default: the routes' transports'
            rate presets on keys ``route:NAME``, or no shaping when none has one.
        retry: the delivery schedule (default: retries growing from 1 minute to
            4,000 s, expiry after 3 days).
        workers: delivery threads started by ``start``/``run``.
        batch_size: messages leased per batch (default: the largest route batch, at most 256).
        visibility: seconds a lease holds before another worker may take the message.
        max_message_size: bytes; larger messages are refused at submit.
        sign_workers: threads for ``sign_batch`` (default: one).
        failover_cooldown: seconds a route that failed transiently is skipped in
            favour of its failover route.
        destination_backoff: seconds a destination domain is left alone after every one
            of its recipients in a batch was deferred without a server's answer (a
            connection that failed) or with 421, like Postfix's dead-destination list;
            its messages wait without an attempt being counted. 0 turns it off.
        clock: epoch seconds; injectable for tests (the outbox made here uses it too).
        sleep: how ``drain`` and ``send`` wait when they deliver in the calling thread
            (tests pass a function that advances their clock).
        on_event: a callable receiving every :class:`Event`.
        poll_interval: the longest a idle worker sleeps before looking again.

    Raises:
        ConfigurationError: an unknown transport URL or outbox URL, a route rule
            naming a route that does not exist, or a setting out of range.
    """

    def __init__(
        self,
        transport: Transport | str | None = None,
        *,
        routes: Mapping[str, Route | Transport | str] | None = None,
        rule: RouteRule | RuleFunction | None = None,
        outbox: Outbox | str | None = None,
        signer: Any = None,
        shaper: Any = None,
        retry: DeliverySchedule | None = None,
        workers: int = 1,
        batch_size: int | None = None,
        visibility: float = 300.0,
        max_message_size: int = DEFAULT_MAX_SIZE,
        sign_workers: int | None = None,
        failover_cooldown: float = 30.0,
        destination_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        on_event: Callable[[Event], object] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        if (transport is None) == (routes is None):
            raise ConfigurationError("Sender needs a transport or routes (one of them)")
        if workers < 1:
            raise ConfigurationError(f"workers must be at least 1, got {workers}")
        if batch_size is not None and batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        if not visibility > 0:
            raise ConfigurationError(f"visibility must be positive, got {visibility!r}")
        self._clock = clock
        self._sleep = sleep
        self._held_until = 0.0
        given: Mapping[str, Route | Transport | str] = (
            {DEFAULT_ROUTE: transport} if routes is None else routes  # type: ignore[dict-item]
        )
        if not given:
            raise ConfigurationError("routes: at least one route is needed")
        self._routes: dict[str, _Route] = {}
        try:
            for name, spec in given.items():
                route = spec if isinstance(spec, Route) else Route(transport=spec)
                self._routes[name] = _Route(name, route, signer)
        except BaseException:
            self._close_transports()
            raise
        for r in self._routes.values():
            if r.failover is not None and r.failover not in self._routes:
                self._close_transports()
                raise ConfigurationError(
                    f"route {r.name!r} fails over to unknown route {r.failover!r}"
                )
        check_rule(rule, {k: Route(transport="null://") for k in self._routes})
        self._default = DEFAULT_ROUTE if DEFAULT_ROUTE in self._routes else next(iter(given))
        self._rule = rule
        self._owns_outbox = not isinstance(outbox, Outbox)
        if outbox is None:
            self._outbox: Outbox = MemoryOutbox(clock=clock)
        elif isinstance(outbox, str):
            self._outbox = outbox_from_url(outbox, clock=clock)
        else:
            self._outbox = outbox
        self._shaper = shaper if shaper is not None else self._preset_shaper()
        self._schedule = retry or DeliverySchedule()
        self._workers = workers
        largest = max(r.max_batch for r in self._routes.values())
        self._batch = batch_size if batch_size is not None else min(largest, 256)
        self._visibility = float(visibility)
        self._max_size = max_message_size
        self._sign_workers = sign_workers
        self._cooldown = failover_cooldown
        self._dest_backoff = destination_backoff
        self._held_domains: dict[str, float] = {}
        self._poll = poll_interval
        self._metrics = Metrics(clock)
        self._listeners: list[Callable[[Event], object]] = [on_event] if on_event else []
        self._streams: list[EventStream] = []
        self._waiters: dict[str, _Waiter] = {}
        self._emit_lock = threading.RLock()
        self._cond = threading.Condition()
        self._kicked = False
        self._stopping = False
        self._graceful = True
        self._threads: list[threading.Thread] = []
        self._inflight = 0
        self._cycle = 0
        self._limit_cache: dict[str, str | None] = {}
        self._closed = False

    # -- configuration helpers ---------------------------------------------

    def _preset_shaper(self) -> Any:
        from mailscale.shaping import Limit, Shaper, presets

        limits: dict[str, Limit] = {}
        for r in self._routes.values():
            name = getattr(r.transport, "rate_preset", None)
            make = getattr(presets, name, None) if isinstance(name, str) else None
            if make is None:
                continue
            try:
                limit = make()
            except TypeError:  # a preset that needs account figures (SES)
                continue
            if isinstance(limit, Limit):
                for key in r.keys:
                    limits[key] = limit
        if not limits:
            return None
        return Shaper(limits, strict=False)

    @property
    def outbox(self) -> Outbox:
        """The outbox messages wait in."""
        return self._outbox

    @property
    def shaper(self) -> Any:
        """The shaper deciding admission, or None."""
        return self._shaper

    @property
    def schedule(self) -> DeliverySchedule:
        """The delivery schedule deferred recipients are retried on."""
        return self._schedule

    @property
    def routes(self) -> tuple[str, ...]:
        """The route names, ``"default"`` when one transport was given."""
        return tuple(self._routes)

    def __repr__(self) -> str:
        return f"Sender(routes={list(self._routes)!r}, outbox={self._outbox!r})"

    # -- submitting ----------------------------------------------------------

    def submit(
        self,
        envelopes: Envelope | EmailMessage | Iterable[Envelope | EmailMessage],
        *,
        priority: Priority | str | int = Priority.NORMAL,
        idempotency_key: str | None = None,
        route: str | None = None,
        not_before: float | None = None,
    ) -> list[MessageId]:
        """Validate and store messages; return their ids once the outbox holds them.

        Args:
            envelopes: one message or many (Envelope, or EmailMessage whose headers
                give the envelope).
            priority: the priority class of every message of the call.
            idempotency_key: makes a repeated submit a no-op; for several messages,
                message ``i`` gets ``KEY:i``. An envelope's own key wins.
            route: the route for every message (default: the rule's choice).
            not_before: earliest time to send (epoch seconds of the sender's clock).

        Raises:
            InvalidMessage: (or its subclasses HeaderInjection, InvalidAddress,
                MessageTooLarge) naming the index of the first bad message; nothing
                of the batch is stored.
            ConfigurationError: an unknown route or priority.
        """
        if isinstance(envelopes, (Envelope, EmailMessage)):
            items: list[Any] = [envelopes]
        else:
            items = list(envelopes)
        prio = Priority.parse(priority)
        if route is not None and route not in self._routes:
            raise ConfigurationError(f"unknown route {route!r} (known: {', '.join(self._routes)})")
        single = len(items) == 1
        records: list[NewMessage] = []
        for i, item in enumerate(items):
            try:
                env = to_envelope(item)
                data = wire_form(env, self._max_size)
            except InvalidMessage as exc:
                raise at_index(i, exc) from None
            data, message_id = ensure_message_id(data, env.sender)
            chosen = route if route is not None else self._choose(env, prio, i)
            key = env.idempotency_key
            if key is None and idempotency_key is not None:
                key = idempotency_key if single else f"{idempotency_key}:{i}"
            records.append(
                NewMessage(
                    sender=env.sender,
                    recipients=env.recipients,
                    body=data,
                    message_id=message_id,
                    priority=prio,
                    route=chosen,
                    tags=env.tags,
                    metadata=env.metadata,
                    idempotency_key=key,
                    not_before=not_before,
                )
            )
        ids = self._outbox.add(records)
        if self._listeners or self._streams:
            now = self._clock()
            self._emit(
                [
                    Event(
                        kind=EventKind.QUEUED,
                        id=mid,
                        message_id=rec.message_id,
                        route=rec.route or "",
                        recipients=rec.recipients,
                        at=now,
                    )
                    for mid, rec in zip(ids, records, strict=True)
                ]
            )
        self._wake()
        return ids

    async def submit_async(
        self,
        envelopes: Envelope | EmailMessage | Iterable[Envelope | EmailMessage],
        **options: Any,
    ) -> list[MessageId]:
        """:meth:`submit` for asyncio applications (runs in a worker thread)."""
        return await asyncio.to_thread(self.submit, envelopes, **options)

    def _choose(self, env: Envelope, prio: Priority, index: int) -> str:
        if self._rule is None:
            return self._default
        name = self._rule(env, prio)
        if name not in self._routes:
            raise ConfigurationError(
                f"message {index}: the route rule chose unknown route {name!r} "
                f"(known: {', '.join(self._routes)})"
            )
        return name

    # -- events ----------------------------------------------------------------

    def add_listener(self, callback: Callable[[Event], object]) -> None:
        """Call *callback* with every event (in the worker thread that produced it)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[Event], object]) -> None:
        """Stop calling *callback* for events; ValueError if it was not added."""
        self._listeners.remove(callback)

    def events(self, *, maxsize: int = 100_000, timeout: float | None = None) -> EventStream:
        """A new :class:`EventStream` receiving every event from now on (close it when done)."""
        stream = EventStream(maxsize=maxsize, timeout=timeout)
        self._streams.append(stream)
        return stream

    def _emit(self, events: list[Event]) -> None:
        if not events:
            return
        with self._emit_lock:
            if self._waiters:
                for e in events:
                    if e.kind is not EventKind.QUEUED:
                        waiter = self._waiters.pop(e.id, None)
                        if waiter is not None:
                            waiter.event = e
                            waiter.ready.set()
        if self._streams:
            live = [s for s in self._streams if not s.closed]
            self._streams[:] = live
            for stream in live:
                for e in events:
                    stream.put(e)
        for listener in list(self._listeners):
            failed: tuple[BaseException, Event] | None = None
            for e in events:
                try:
                    listener(e)
                except Exception as exc:  # a listener never stops delivery
                    failed = failed or (exc, e)  # (it still gets the batch's other events)
            if failed is not None:
                _log.warning(
                    "pipeline.listener_failed",
                    error=type(failed[0]).__name__,
                    kind=failed[1].kind.value,
                )

    # -- the worker ----------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._kicked = True
            self._cond.notify_all()

    def _lease(self) -> list[Lease]:
        lead = _ROTATION[self._cycle % len(_ROTATION)]
        self._cycle += 1
        n = self._batch
        leases = self._outbox.lease(n, visibility=self._visibility, priority=lead)
        if len(leases) < n:
            leases.extend(self._outbox.lease(n - len(leases), visibility=self._visibility))
        return leases

    def step(self) -> int:
        """Lease one batch and deliver it in the calling thread; return how many messages
        were leased (0 when nothing was ready)."""
        with self._cond:
            self._inflight += 1
        leases: list[Lease] = []
        try:
            leases = self._lease()
            if leases:
                self._process(leases)
            return len(leases)
        finally:
            with self._cond:
                self._inflight -= 1
                # Only after work: idle workers woken by a look that found nothing would
                # look and wake each other again, a busy loop (drain polls on its own).
                if leases:
                    self._cond.notify_all()

    def _process(self, leases: list[Lease]) -> None:
        groups: dict[str, list[Lease]] = {}
        for lease in leases:
            groups.setdefault(lease.route or self._default, []).append(lease)
        pending = list(groups.items())
        for index, (name, group) in enumerate(pending):
            if self._stopping and not self._graceful:
                rest = [lease for _, g in pending[index:] for lease in g]
                self._outbox.settle(
                    [Settlement(id=x.id, token=x.token, action=Settle.RELEASE) for x in rest]
                )
                return
            route = self._routes.get(name)
            if route is None:
                _log.warning("pipeline.unknown_route", route=name, messages=len(group))
                route = self._routes[self._default]
            self._deliver(route, group)

    def _unit(self, key: str) -> str | None:
        """What *key*'s limit counts (``"message"``, ``"request"`` or ``"recipient"``),
        or None when the shaper has no limit for it."""
        hit = self._limit_cache.get(key, _UNSEEN)
        if hit is _UNSEEN:
            limit_for = getattr(self._shaper, "limit_for", None)
            try:
                limit = True if limit_for is None else limit_for(key)
            except ShapingError:
                limit = None
            hit = None if limit is None else str(getattr(limit, "unit", _MESSAGE))
            if len(self._limit_cache) > 100_000:
                self._limit_cache.clear()
            self._limit_cache[key] = hit
        return hit  # type: ignore[return-value]

    def _has_limit(self, key: str) -> bool:
        return self._unit(key) is not None

    def _charges(
        self, keys: Sequence[str], lease: Lease, domains: bool
    ) -> list[tuple[int, tuple[str, ...]]]:
        """What admitting *lease* costs: ``(units, keys)`` pairs. A key counting messages
        is charged 1; one counting recipients, one per recipient (for a domain key, per
        recipient at that domain). Keys counting requests are left to the call
        (:meth:`_charge_call`); a domain key counting requests counts messages (one
        transaction each at the domain)."""
        ones: list[str] = []
        more: dict[int, list[str]] | None = None
        recipients = lease.recipients
        for key in keys:
            unit = self._unit(key)
            if unit is None or unit == _REQUEST:
                continue
            if unit == _RECIPIENT and len(recipients) > 1:
                more = more or {}
                more.setdefault(len(recipients), []).append(key)
            else:
                ones.append(key)
        if domains:
            at: dict[str, int] = {}
            for rcpt in recipients:
                domain = rcpt.rpartition("@")[2].lower()
                at[domain] = at.get(domain, 0) + 1
            for domain, n in at.items():
                key = "domain:" + domain
                unit = self._unit(key)
                if unit is None:
                    continue
                if unit == _RECIPIENT and n > 1:
                    more = more or {}
                    more.setdefault(n, []).append(key)
                else:
                    ones.append(key)
        out = [(1, tuple(ones[:_MAX_KEYS]))] if ones else []
        if more:
            out.extend((n, tuple(ks[:_MAX_KEYS])) for n, ks in sorted(more.items()))
        return out

    def _decide(
        self, charges: list[list[tuple[int, tuple[str, ...]]]]
    ) -> dict[int, tuple[float, int, tuple[str, ...]]]:
        """Decide every item's charges: single units in one ``acquire_many``, larger
        charges (recipients) one by one after them. Returns the refused items:
        index → (wait, units, keys)."""
        refused: dict[int, tuple[float, int, tuple[str, ...]]] = {}
        ones = [(i, ks) for i, items in enumerate(charges) for n, ks in items if n == 1]
        if ones:
            decisions = self._shaper.acquire_many([ks for _, ks in ones])
            for (i, ks), decision in zip(ones, decisions, strict=True):
                if not decision.allowed:
                    refused[i] = (decision.retry_after, 1, ks)
        for i, items in enumerate(charges):
            for n, ks in items:
                if n > 1 and i not in refused:
                    wait = self._acquire_units(ks, n)
                    if wait > 0:
                        refused[i] = (wait, n, ks)
        return refused

    def _acquire_units(self, keys: tuple[str, ...], n: int) -> float:
        """Charge *n* units on *keys*, or none; return the wait (0.0 when admitted).

        A charge larger than a key's burst can never be admitted whole: it is admitted
        on the burst, and the rest is charged after it (``reserve``), so the messages
        after it wait for it (SES, too, lets a message to more recipients than its rate
        through, then counts them all)."""
        limit_for = getattr(self._shaper, "limit_for", None)
        bursts: dict[str, int] = {}
        for key in keys:
            try:
                limit = limit_for(key) if limit_for is not None else None
            except ShapingError:
                limit = None
            bursts[key] = int(getattr(limit, "burst", n) or n)
        first = min(n, *bursts.values())
        decision = self._shaper.acquire(keys, first)
        if not decision.allowed:
            return float(decision.retry_after)
        for key, burst in bursts.items():
            left = n - first
            while left > 0:
                step = min(left, burst)
                self._shaper.reserve(key, step)
                left -= step
        return 0.0

    def _spacing(self, keys: tuple[str, ...]) -> float:
        """The emission interval of the slowest of *keys* (to spread refused messages)."""
        limit_for = getattr(self._shaper, "limit_for", None)
        if limit_for is None:
            return 0.0
        out = 0.0
        for key in keys:
            try:
                limit = limit_for(key)
            except ShapingError:
                continue
            if limit is not None:
                out = max(out, limit.per / limit.count)
        return out

    def _hold_for_destinations(self, route: _Route, group: list[Lease], now: float) -> list[Lease]:
        """Send back (not an attempt) the messages whose every destination is held."""
        held = self._held_domains
        for domain, until in list(held.items()):  # (a copy: other workers change it)
            if until <= now:
                held.pop(domain, None)
        if not held:
            return group
        keep: list[Lease] = []
        back: list[Settlement] = []
        for lease in group:
            untils = [held.get(r.rpartition("@")[2].lower(), 0.0) for r in lease.recipients]
            if min(untils) > now:
                back.append(
                    Settlement(
                        id=lease.id,
                        token=lease.token,
                        action=Settle.RELEASE,
                        not_before=max(untils),
                        reason=lease.last_reason,
                    )
                )
            else:
                keep.append(lease)
        if back:
            self._outbox.settle(back)
            self._metrics.record_refused(route.name, len(back))
        return keep

    def _shape(
        self, route: _Route, group: list[Lease], now: float
    ) -> tuple[list[Lease], list[Lease]]:
        """Decide the shaper for the group's per-message and per-recipient keys (one
        ``acquire_many`` for the single units).

        Returns the admitted messages in two lists: those on a key at its limit
        (another message on it was refused), sent first in a call of their own so the
        peer sees them spaced as admitted; and the rest. Refused messages go back to
        the outbox with a not-before time from the decision (not an attempt). Keys
        counting provider requests are charged per call, in :meth:`_charge_call`.
        """
        if self._shaper is None:
            return [], group
        charges = [self._charges(route.keys, lease, route.domain_keys) for lease in group]
        if not any(charges):
            return [], group
        refused = self._decide(charges)
        if not refused:
            return [], group
        waiting: dict[tuple[str, ...], int] = {}
        waits: dict[int, float] = {}
        for i, (wait, n, ks) in refused.items():
            # Refused messages sharing keys are spread one interval apart, so
            # they do not all come back at the same instant to be refused again.
            k = waiting.get(ks, 0)
            waiting[ks] = k + 1
            waits[i] = wait + k * n * self._spacing(ks)
        self._send_back(route, group, waits, now)
        hot = {key for i in refused for _, ks in charges[i] for key in ks}
        paced: list[Lease] = []
        rest: list[Lease] = []
        for i, lease in enumerate(group):
            if i not in refused:
                keys = [key for _, ks in charges[i] for key in ks]
                (paced if hot.intersection(keys) else rest).append(lease)
        return paced, rest

    def _send_back(
        self, route: _Route, group: list[Lease], waits: Mapping[int, float], now: float
    ) -> None:
        """Return refused messages to the outbox, each not before ``now + waits[i]``
        (not an attempt); ``drain`` waits these out: a shaper's wait is not a retry."""
        # A millisecond more than the decision: at epoch magnitudes a float holds
        # no finer time, and a message back exactly on the boundary is refused again.
        self._held_until = max(self._held_until, now + max(waits.values()) + _MIN_WAIT)
        self._outbox.settle(
            [
                Settlement(
                    id=group[i].id,
                    token=group[i].token,
                    action=Settle.RELEASE,
                    not_before=now + wait + _MIN_WAIT,
                    reason=group[i].last_reason,
                )
                for i, wait in waits.items()
            ]
        )
        self._metrics.record_refused(route.name, len(waits))

    def _charge_call(
        self, route: _Route, transport: Transport, ip: str | None, chunk: list[Lease], now: float
    ) -> list[Lease]:
        """Charge, just before a call, what only the call knows: the chosen pool IP's key
        (``ip:ADDRESS``, per message or recipient), and every key counting provider
        requests, once per request the transport will make (its ``plan_requests``; one
        per call for a transport that cannot say). What is refused goes back to the
        outbox (not an attempt); returns what may go."""
        if self._shaper is None or not chunk:
            return chunk
        per_request = [k for k in route.keys if self._unit(k) == _REQUEST]
        if ip is not None and route.pool is not None:
            key = "ip:" + ip
            if self._unit(key) == _REQUEST:
                per_request.append(key)
            else:
                charges = [self._charges((key,), lease, False) for lease in chunk]
                refused = self._decide(charges) if any(charges) else {}
                if refused:
                    spacing = self._spacing((key,))
                    ip_waits = {
                        i: wait + k * n * spacing
                        for k, (i, (wait, n, _)) in enumerate(refused.items())
                    }
                    self._send_back(route, chunk, ip_waits, now)
                    chunk = [lease for i, lease in enumerate(chunk) if i not in refused]
        if not per_request or not chunk:
            return chunk
        keys = tuple(per_request[:_MAX_KEYS])
        requests = self._plan_requests(transport, chunk)
        if not requests:
            return chunk
        decisions = self._shaper.acquire_many([keys] * len(requests))
        waits: dict[int, float] = {}
        refusals = 0
        spacing = self._spacing(keys)
        for members, decision in zip(requests, decisions, strict=True):
            if not decision.allowed:
                # Refused requests come back one interval apart, each with its messages.
                wait = decision.retry_after + refusals * spacing
                refusals += 1
                for i in members:
                    waits[i] = wait
        if not waits:
            return chunk
        first = min(waits.values())
        route.requests_held = max(route.requests_held, now + first)
        self._send_back(route, chunk, waits, now)
        return [lease for i, lease in enumerate(chunk) if i not in waits]

    @staticmethod
    def _plan_requests(transport: Transport, chunk: list[Lease]) -> list[tuple[int, ...]]:
        """The requests *transport* will make for *chunk*: the indices each carries (a
        message in none is refused by the transport before any request)."""
        plan = getattr(transport, "plan_requests", None)
        if plan is None:
            return [tuple(range(len(chunk)))]
        try:
            return [tuple(r) for r in plan([_envelope(lease, lease.body) for lease in chunk])]
        except Exception as exc:  # a plugin's bug: count a request per message (the safe side)
            _log.warning("pipeline.plan_failed", error=type(exc).__name__)
            return [(i,) for i in range(len(chunk))]

    def _sign(
        self, route: _Route, group: list[Lease], now: float
    ) -> tuple[list[Lease], list[bytes]]:
        bodies = [lease.body for lease in group]
        signer = route.signer
        if signer is None or not route.mime:
            return group, bodies
        try:
            if self._sign_workers is None:
                return group, signer.sign_batch(bodies)
            return group, signer.sign_batch(bodies, workers=self._sign_workers)
        except Exception:  # one bad message: sign one by one to find it
            pass
        kept: list[Lease] = []
        signed: list[bytes] = []
        dead: list[Settlement] = []
        events: list[Event] = []
        for lease, body in zip(group, bodies, strict=True):
            try:
                signed.append(signer.sign(body))
                kept.append(lease)
            except Exception as exc:
                what = str(exc) if isinstance(exc, MailscaleError) else type(exc).__name__
                reason = f"signing failed: {what}"
                dead.append(
                    Settlement(id=lease.id, token=lease.token, action=Settle.DEAD, reason=reason)
                )
                events.append(self._event(EventKind.EXPIRED, lease, now, text=reason))
        self._outbox.settle(dead)
        self._metrics.record_outcomes(route.name, expired=len(dead), settled=len(dead))
        self._emit(events)
        return kept, signed

    def _event(
        self,
        kind: EventKind,
        lease: Lease,
        now: float,
        *,
        recipients: tuple[str, ...] | None = None,
        attempts: int | None = None,
        code: int | str | None = None,
        text: str = "",
        enhanced: str | None = None,
        retry_at: float | None = None,
        provider_id: str | None = None,
    ) -> Event:
        return Event(
            kind=kind,
            id=lease.id,
            message_id=lease.message_id,
            route=lease.route or "",
            recipients=lease.recipients if recipients is None else recipients,
            at=now,
            attempts=lease.attempts if attempts is None else attempts,
            code=code,
            text=text,
            enhanced=enhanced,
            retry_at=retry_at,
            provider_id=provider_id,
        )

    def _deliver(self, route: _Route, group: list[Lease]) -> None:
        now = self._clock()
        schedule = self._schedule
        # Messages past their deadline (waiting for a retry that came too late) expire.
        live: list[Lease] = []
        expired: list[Settlement] = []
        events: list[Event] = []
        for lease in group:
            if lease.attempts and now > schedule.deadline(lease.created_at):
                reason = _expiry_reason(lease.attempts, lease.last_reason)
                expired.append(
                    Settlement(id=lease.id, token=lease.token, action=Settle.DEAD, reason=reason)
                )
                events.append(self._event(EventKind.EXPIRED, lease, now, text=reason))
            else:
                live.append(lease)
        if expired:
            self._outbox.settle(expired)
            self._metrics.record_outcomes(route.name, expired=len(expired), settled=len(expired))
            self._emit(events)
        if not live:
            return
        if self._held_domains:
            live = self._hold_for_destinations(route, live, now)
            if not live:
                return
        if route.down_until > now and self._can_fail_over(route, now):
            # (a message whose last outcome was unknown stays on its route)
            self._outbox.settle(
                [
                    Settlement(id=x.id, token=x.token, action=Settle.RELEASE, route=route.failover)
                    for x in live
                    if not x.last_reason.startswith(_MAYBE)
                ]
            )
            live = [x for x in live if x.last_reason.startswith(_MAYBE)]
            if not live:
                return
        if route.requests_held > now:
            # The route's per-request keys refused a moment ago: wait without charging
            # the messages' other keys again and again.
            self._send_back(
                route, live, dict.fromkeys(range(len(live)), route.requests_held - now), now
            )
            return
        paced, rest = self._shape(route, live, now)
        for admitted in (paced, rest):
            sends: Sequence[tuple[str | None, Transport, list[Lease]]]
            if route.pool is None:
                sends = [(route.source_ip, route.transport, admitted)]
            else:
                sends = self._choose_ips(route, admitted, now)
            for ip, transport, leases in sends:
                for start in range(0, len(leases), route.max_batch):
                    chunk = leases[start : start + route.max_batch]
                    if self._stopping and not self._graceful:
                        # Stopped at once: what no transport has been handed goes back now.
                        self._outbox.settle(
                            [
                                Settlement(id=x.id, token=x.token, action=Settle.RELEASE)
                                for x in chunk
                            ]
                        )
                        continue
                    chunk = self._charge_call(route, transport, ip, chunk, now)
                    if not chunk:
                        continue
                    chunk, bodies = self._sign(route, chunk, now)
                    if chunk:
                        self._send(route, chunk, bodies, transport, ip)

    def _choose_ips(
        self, route: _Route, group: list[Lease], now: float
    ) -> list[tuple[str, Transport, list[Lease]]]:
        """Pick each message's source IP from the route's pool (charging its budgets once,
        for the first recipient's domain) and group the messages by IP. A message the
        pool has no capacity for goes back to the outbox not before the pool's
        ``retry_after`` (not an attempt)."""
        if not group:
            return []
        by_ip: dict[str, list[Lease]] = {}
        back: list[Settlement] = []
        for lease in group:
            domain = lease.recipients[0].rpartition("@")[2].lower()
            try:
                choice: Any = route.pool.choose(domain)
            except ShapingError as exc:  # an empty pool: wait, as for a refusal
                _log.warning("pipeline.ip_pool_failed", route=route.name, error=str(exc))
                choice = None
                wait = _THROTTLE_SECONDS
            else:
                wait = float(getattr(choice, "retry_after", 0.0) or 0.0)
            ip = getattr(choice, "ip", choice)
            if ip is None:
                back.append(
                    Settlement(
                        id=lease.id,
                        token=lease.token,
                        action=Settle.RELEASE,
                        not_before=now + max(0.0, wait) + _MIN_WAIT,
                        reason=lease.last_reason,
                    )
                )
            else:
                by_ip.setdefault(str(ip), []).append(lease)
        if back:
            self._outbox.settle(back)
            self._metrics.record_refused(route.name, len(back))
        return [(ip, route.for_ip(ip), leases) for ip, leases in by_ip.items()]

    def _send(
        self,
        route: _Route,
        chunk: list[Lease],
        bodies: list[bytes],
        transport: Transport,
        ip: str | None = None,
    ) -> None:
        envelopes = [_envelope(lease, body) for lease, body in zip(chunk, bodies, strict=True)]
        started = time.perf_counter()
        error: BaseException | None = None
        results: list[SendResult] = []
        try:
            results = transport.send(envelopes)
            if len(results) != len(envelopes):
                raise TransportError(
                    f"{len(results)} results for {len(envelopes)} messages",
                    provider=getattr(transport, "name", None),
                )
            if not all(isinstance(r, SendResult) for r in results):
                raise TransportError(
                    "a result that is not a SendResult",
                    provider=getattr(transport, "name", None),
                )
        except Exception as exc:  # a whole-call failure, or a plugin's bug: never lost
            error = exc
        elapsed = time.perf_counter() - started
        self._metrics.record_call(
            route.name,
            elapsed,
            failed=error is not None,
            responses=_response_times(results) if error is None else None,
        )
        now = self._clock()
        if ip is not None and self._shaper is not None:
            self._throttle_ip(route, ip, chunk, results, error)
        if error is not None:
            self._call_failed(route, chunk, error, now)
            return
        self._record_results(route, chunk, results, now)

    def _throttle_ip(
        self,
        route: _Route,
        ip: str,
        chunk: list[Lease],
        results: list[SendResult],
        error: BaseException | None,
    ) -> None:
        """A 421 or 4.7.x answer to mail sent from *ip* slows that IP: its key
        ``ip:ADDRESS`` and, on a pool route, the pool's own per-(IP, domain) key for the
        domain that answered (``ipdomain:ADDRESS:DOMAIN``, when the pool limits it).
        The destination domain or the route is throttled too, as for any route."""
        domains: set[str] = set()
        if error is not None:
            if isinstance(error, TransportError) and str(error.status) == "421":
                domains.update(r.rpartition("@")[2].lower() for x in chunk for r in x.recipients)
        else:
            for result in results:
                if result.status is SendStatus.ACCEPTED:
                    continue
                answers = result.recipient_results or (result,)
                for a in answers:
                    if a.status is not SendStatus.DEFERRED:
                        continue
                    code = a.status_code
                    enhanced = a.enhanced_status or ""
                    if code == 421 or str(code) == "421" or enhanced.startswith("4.7."):
                        rcpts = (a.recipient,) if isinstance(a, RecipientResult) else a.recipients
                        domains.update(r.rpartition("@")[2].lower() for r in rcpts)
        if not domains:
            return
        self._throttle(("ip:" + ip,))
        pool_shaper = getattr(route.pool, "shaper", None) if route.pool is not None else None
        if pool_shaper is not None:
            for domain in domains:
                key = f"ipdomain:{ip}:{domain}"
                try:
                    if pool_shaper.limit_for(key) is not None:
                        pool_shaper.throttle(key, _THROTTLE_FACTOR, _THROTTLE_SECONDS)
                except ShapingError:
                    pass

    def _call_failed(
        self, route: _Route, chunk: list[Lease], error: BaseException, now: float
    ) -> None:
        transient = isinstance(error, TransportError) and error.transient
        reason = (
            f"{route.name}: {error}"
            if isinstance(error, MailscaleError)
            else f"{route.name}: {type(error).__name__}"
        )
        _log.warning(
            "pipeline.send_failed",
            route=route.name,
            error=type(error).__name__,
            transient=transient,
            messages=len(chunk),
        )
        if isinstance(error, TransportError) and str(error.status) in ("421", "429"):
            self._throttle(route.keys)  # the whole peer said "too many": slow the route
        settlements: list[Settlement] = []
        events: list[Event] = []
        if transient:
            route.down_until = now + self._cooldown
        stay = chunk
        if transient and self._can_fail_over(route, now):
            # A message whose last outcome was unknown (a copy may exist) is retried on
            # its own route only, never through another transport.
            stay = [x for x in chunk if x.last_reason.startswith(_MAYBE)]
            for lease in chunk:
                if lease.last_reason.startswith(_MAYBE):
                    continue
                settlements.append(
                    Settlement(
                        id=lease.id,
                        token=lease.token,
                        action=Settle.RELEASE,
                        reason=reason,
                        route=route.failover,
                    )
                )
                events.append(
                    self._event(
                        EventKind.FAILED,
                        lease,
                        now,
                        text=f"{reason}; moved to route {route.failover}",
                        retry_at=now,
                    )
                )
        if stay:
            expired = 0
            for lease in stay:
                attempts = lease.attempts + 1
                due = self._schedule.next_attempt(
                    attempts=attempts, created_at=lease.created_at, now=now
                )
                outcomes = tuple(
                    RecipientOutcome(recipient=r, status=OutcomeStatus.FAILED, text=reason)
                    for r in lease.recipients
                )
                if due is None:
                    expired += 1
                maybe = _MAYBE if lease.last_reason.startswith(_MAYBE) else ""
                self._retry_or_expire(
                    lease,
                    now,
                    settlements,
                    events,
                    pending=lease.recipients,
                    due=due,
                    reason=maybe + reason,  # (an unknown outcome stays known as one)
                    why="" if due is not None else _expiry_reason(attempts, reason),
                    outcomes=outcomes,
                    retry_kind=EventKind.FAILED,
                    retry_text=reason,
                )
            self._metrics.record_outcomes(route.name, expired=expired, settled=expired)
        self._outbox.settle(settlements)
        self._emit(events)

    def _can_fail_over(self, route: _Route, now: float) -> bool:
        """True when *route* has a failover route that is not cooling down itself (two
        routes failing over to each other while both are down would otherwise pass
        their messages back and forth without an attempt)."""
        if route.failover is None:
            return False
        return self._routes[route.failover].down_until <= now

    def _retry_or_expire(
        self,
        lease: Lease,
        now: float,
        settlements: list[Settlement],
        events: list[Event],
        *,
        pending: tuple[str, ...],
        due: float | None,
        reason: str,
        why: str,
        outcomes: tuple[RecipientOutcome, ...],
        retry_kind: EventKind,
        retry_text: str,
        first: RecipientOutcome | None = None,
        retry_event: bool = True,
    ) -> None:
        """Settle an attempt that left *pending* recipients: retried at *due* (an event of
        *retry_kind* when *retry_event*), or, when *due* is None, a dead letter for *why*
        (always an ``EXPIRED`` event). *first* is the outcome whose code the events carry."""
        dead = due is None
        settlements.append(
            Settlement(
                id=lease.id,
                token=lease.token,
                action=Settle.DEAD if dead else Settle.RETRY,
                pending=pending,
                not_before=due,
                reason=why if dead else reason,
                outcomes=outcomes,
            )
        )
        if dead or retry_event:
            events.append(
                self._event(
                    EventKind.EXPIRED if dead else retry_kind,
                    lease,
                    now,
                    recipients=pending,
                    attempts=lease.attempts + 1,
                    code=None if first is None else first.code,
                    text=why if dead else retry_text,
                    enhanced=None if first is None else first.enhanced,
                    retry_at=due,
                )
            )

    def _throttle(self, keys: Iterable[str]) -> None:
        shaper = self._shaper
        if shaper is None:
            return
        for key in keys:
            if self._has_limit(key):
                try:
                    shaper.throttle(key, _THROTTLE_FACTOR, _THROTTLE_SECONDS)
                except ShapingError:
                    pass

    def _record_results(
        self, route: _Route, chunk: list[Lease], results: list[SendResult], now: float
    ) -> None:
        schedule = self._schedule
        settlements: list[Settlement] = []
        events: list[Event] = []
        want_events = bool(self._listeners or self._streams or self._waiters)
        accepted_n = deferred_n = rejected_n = sent_n = bounced_n = expired_n = settled_n = 0
        delivery_times: list[float] = []
        rate_headers: Mapping[str, str] | None = None
        throttle: set[str] = set()
        reached: set[str] = set()  # destinations that answered (accepted or rejected)
        unreachable: set[str] = set()  # destinations deferred with no answer, or 421
        for lease, result in zip(chunk, results, strict=True):
            if (
                result.status is SendStatus.ACCEPTED
                and not result.recipient_results
                and (not result.recipients or result.recipients == lease.recipients)
            ):
                # The common case, without per-recipient objects: all accepted.
                outcomes: tuple[RecipientOutcome, ...] = ()
                accepted = lease.recipients
                rejected: list[RecipientOutcome] = []
                deferred: list[RecipientOutcome] = []
            else:
                outcomes = _outcomes(lease.recipients, result)
                accepted = tuple(
                    o.recipient for o in outcomes if o.status is OutcomeStatus.ACCEPTED
                )
                rejected = [o for o in outcomes if o.status is OutcomeStatus.REJECTED]
                deferred = [o for o in outcomes if o.status is OutcomeStatus.DEFERRED]
            accepted_n += len(accepted)
            rejected_n += len(rejected)
            deferred_n += len(deferred)
            if deferred or self._held_domains:
                for rcpt in accepted:
                    reached.add(rcpt.rpartition("@")[2].lower())
                for o in rejected:
                    reached.add(o.recipient.rpartition("@")[2].lower())
                for o in deferred:
                    if o.code is None or o.code == 421:
                        unreachable.add(o.recipient.rpartition("@")[2].lower())
                    else:
                        reached.add(o.recipient.rpartition("@")[2].lower())
            if result.rate_limit:
                rate_headers = result.rate_limit
            if self._shaper is not None:
                if result.status_code == 429 or str(result.status_code) == "429":
                    throttle.update(route.keys)
                for o in deferred:
                    if o.code == 421 or (o.enhanced or "").startswith("4.7."):
                        if route.domain_keys:
                            throttle.add("domain:" + o.recipient.rpartition("@")[2].lower())
                        else:
                            throttle.update(route.keys)
            if accepted:
                if want_events:
                    events.append(
                        self._event(
                            EventKind.SENT,
                            lease,
                            now,
                            recipients=accepted,
                            attempts=lease.attempts + 1,
                            code=result.status_code,
                            text=result.status_text,
                            provider_id=result.message_id,
                        )
                    )
            if rejected:
                bounced_n += 1
                if want_events:
                    first = rejected[0]
                    events.append(
                        self._event(
                            EventKind.BOUNCED,
                            lease,
                            now,
                            recipients=tuple(o.recipient for o in rejected),
                            attempts=lease.attempts + 1,
                            code=first.code,
                            text=first.text,
                            enhanced=first.enhanced,
                        )
                    )
            if not deferred:
                settled_n += 1
                if accepted:
                    # A message counts as sent (and gives a delivery time) once, when it
                    # is done: recipients deferred and accepted on a retry do not count
                    # it again.
                    sent_n += 1
                    delivery_times.append(max(0.0, now - lease.created_at))
                settlements.append(
                    Settlement(
                        id=lease.id, token=lease.token, action=Settle.DONE, outcomes=outcomes
                    )
                )
                continue
            attempts = lease.attempts + 1
            first = deferred[0]
            reason = f"{first.code} {first.text}".strip() if first.code else first.text
            reason = reason or "deferred"
            pending = tuple(o.recipient for o in deferred)
            due = schedule.next_attempt(
                attempts=attempts,
                created_at=lease.created_at,
                now=now,
                retry_after=result.retry_after,
            )
            why = ""
            if result.possibly_delivered:
                # The answer after the whole message was lost: retried once, later, on
                # the same route with the same Message-ID; a second time it is given up
                # (a copy may well exist) rather than sent again and again.
                if lease.last_reason.startswith(_MAYBE):
                    due = None
                    why = f"not retried: the outcome was unknown twice ({reason})"
                reason = _MAYBE + reason
            if due is None:
                expired_n += 1
                settled_n += 1
                why = why or _expiry_reason(attempts, reason)
            self._retry_or_expire(
                lease,
                now,
                settlements,
                events,
                pending=pending,
                due=due,
                reason=reason,
                why=why,
                outcomes=outcomes,
                retry_kind=EventKind.DEFERRED,
                retry_text=first.text,
                first=first,
                retry_event=want_events,
            )
        self._outbox.settle(settlements)
        if self._dest_backoff > 0 and (unreachable or self._held_domains):
            for domain in reached:
                self._held_domains.pop(domain, None)
            until = now + self._dest_backoff
            for domain in unreachable - reached:
                self._held_domains[domain] = until
        if throttle:
            self._throttle(throttle)
        if rate_headers is not None and self._shaper is not None:
            for key in route.keys:
                if self._has_limit(key):
                    try:
                        self._shaper.observe_headers(key, rate_headers)
                    except ShapingError as exc:
                        _log.warning(
                            "pipeline.rate_headers_unreadable", route=route.name, error=str(exc)
                        )
        self._metrics.record_outcomes(
            route.name,
            accepted=accepted_n,
            deferred=deferred_n,
            rejected=rejected_n,
            sent=sent_n,
            bounced=bounced_n,
            expired=expired_n,
            settled=settled_n,
            delivery_times=delivery_times,
        )
        self._emit(events)

    # -- running -------------------------------------------------------------------

    def _idle(self) -> bool:
        """Nothing in flight, nothing ready, nothing held back by the shaper."""
        if self._inflight:
            return False
        now = self._clock()
        if self._held_until > now:
            return False
        due = self._outbox.next_due()
        return due is None or due > now

    def _pause(self) -> None:
        """Wait (in the calling thread) until the next message may be ready."""
        due = self._outbox.next_due()
        wait = self._poll if due is None else max(_MIN_WAIT, due - self._clock())
        self._sleep(min(self._poll, wait))

    def _worker(self) -> None:
        while not self._stopping:
            due = None
            try:
                leased = self.step()
                if not leased and not self._stopping:
                    due = self._outbox.next_due()
            except Exception as exc:  # the store failed: log, wait, try again
                _log.error("pipeline.worker_error", error=type(exc).__name__, detail=str(exc))
                leased = 0
            if leased:
                continue
            wait = self._poll
            if due is not None:
                wait = min(wait, max(0.001, due - self._clock()))
            with self._cond:
                if not self._kicked and not self._stopping:
                    self._cond.wait(wait)
                self._kicked = False

    def start(self) -> None:
        """Start the worker threads (returns at once)."""
        if self._closed:
            raise ConfigurationError("the sender is closed")
        if self._threads:
            return
        self._stopping = False
        self._graceful = True
        self._threads = [
            threading.Thread(target=self._worker, name=f"mailscale-sender-{i}", daemon=True)
            for i in range(self._workers)
        ]
        for t in self._threads:
            t.start()

    @property
    def running(self) -> bool:
        """True while worker threads started by :meth:`start` are running."""
        return bool(self._threads)

    def run(self) -> None:
        """Deliver until :meth:`stop` is called (from another thread or a signal handler)."""
        self.start()
        try:
            for t in list(self._threads):
                while t.is_alive():
                    t.join(0.5)
        except KeyboardInterrupt:
            self.stop()
            raise

    async def run_async(self) -> None:
        """Deliver until stopped or cancelled (asyncio); cancelling stops gracefully."""
        try:
            await asyncio.to_thread(self.run)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.stop)
            raise

    def stop(self, graceful: bool = True, timeout: float | None = None) -> None:
        """Stop the workers. Graceful: in-flight batches finish and are recorded;
        otherwise batches not yet handed to a transport are released to the outbox."""
        with self._cond:
            self._stopping = True
            self._graceful = graceful
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def drain(self, timeout: float | None = None) -> bool:
        """Deliver until nothing is ready: the outbox is empty or every message waits on
        a later retry (waits the shaper imposes are waited out). Without running
        workers, delivers in the calling thread.

        Returns:
            True when drained, False when *timeout* (seconds) passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._threads:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                if not self.step():
                    if self._idle():
                        return True
                    self._pause()
        while True:
            with self._cond:
                if self._idle():
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.05 if left is None else min(0.05, left))

    def send(
        self, envelope: Envelope | EmailMessage, *, timeout: float | None = None, **options: Any
    ) -> Event:
        """Submit one message and wait for its first outcome (sent, deferred, bounced,
        expired or failed).

        Raises:
            DeliveryTimeout: no outcome within *timeout* seconds (the message stays queued).
        """
        waiter = _Waiter()
        with self._emit_lock:
            (mid,) = self.submit(envelope, **options)
            self._waiters[mid] = waiter
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if self._threads:
                if not waiter.ready.wait(timeout):
                    raise DeliveryTimeout(f"no outcome for message {mid} within {timeout} s")
            else:
                while not waiter.ready.is_set():
                    if deadline is not None and time.monotonic() >= deadline:
                        raise DeliveryTimeout(f"no outcome for message {mid} within {timeout} s")
                    if not self.step():
                        if self._outbox.next_due() is None:
                            raise DeliveryTimeout(f"message {mid} is no longer in the outbox")
                        self._pause()
        finally:
            with self._emit_lock:
                self._waiters.pop(mid, None)
        assert waiter.event is not None
        return waiter.event

    async def send_async(self, envelope: Envelope | EmailMessage, **options: Any) -> Event:
        """:meth:`send` for asyncio applications."""
        return await asyncio.to_thread(self.send, envelope, **options)

    # -- KPIs --------------------------------------------------------------------

    def metrics(self) -> MetricsSnapshot:
        """Counts, rates and timings so far, overall and per route, with the queue depth."""
        stats = self._outbox.stats()
        # The outbox names the default route "" when a message was stored without one.
        by_route = {name or self._default: n for name, n in stats.by_route.items()}
        return self._metrics.snapshot(
            queue_depth=stats.depth,
            by_state=stats.by_state,
            queue_by_route=by_route,
            # A third-party store written before the field existed may not have it.
            outbox_disk_bytes=getattr(stats, "disk_bytes", None),
        )

    def kpis(self, route: str | None = None) -> dict[str, float]:
        """The planning KPIs in ``mailscale.planning.evaluate_kpis``'s keys, overall or
        for one route."""
        return self.metrics().kpis(route)

    def health(self, targets: Any = None, *, route: str | None = None) -> Any:
        """A ``HealthReport`` of :meth:`kpis` against the planning guide's targets."""
        from mailscale.planning import evaluate_kpis

        return evaluate_kpis(self.kpis(route), targets=targets)

    # -- closing -----------------------------------------------------------------

    def _close_transports(self) -> None:
        for r in getattr(self, "_routes", {}).values():
            for transport in r.transports():
                try:
                    transport.close()
                except Exception as exc:
                    _log.warning("pipeline.close_failed", route=r.name, error=type(exc).__name__)

    def close(self) -> None:
        """Stop the workers, close the transports built from URLs and an outbox built here."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        for stream in self._streams:
            stream.close()
        self._close_transports()
        if self._owns_outbox:
            self._outbox.close()

    def __enter__(self) -> Sender:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _envelope(lease: Lease, body: bytes) -> Envelope:
    """The envelope of a leased message with *body* (signed or not)."""
    return _stored_envelope(
        sender=lease.sender,
        recipients=lease.recipients,
        message=body,
        tags=lease.tags,
        metadata=lease.metadata,
        idempotency_key=lease.idempotency_key,
    )


def _response_times(results: Sequence[SendResult]) -> list[float]:
    """The provider's response times in a call's results: each result's own latency,
    and once per request for results sharing one (``SendResult.exchange``). Empty
    when the transport times nothing (the whole call is then the sample)."""
    out: list[float] = []
    seen: set[int] = set()
    for r in results:
        latency = r.latency
        if latency > 0:
            exchange = r.exchange
            if exchange is None:
                out.append(latency)
            elif exchange not in seen:
                seen.add(exchange)
                out.append(latency)
    return out


_ENVELOPE_FIELDS = attrs.fields(Envelope)
_FACTORY: type = attrs.Factory  # type: ignore[assignment]


def _stored_envelope(**values: Any) -> Envelope:
    """An Envelope of values validated when the message was submitted, built without
    validating them again (on every attempt that would cost more than the rest of the
    pipeline's own work per message). Fields not given take their defaults."""
    env = object.__new__(Envelope)
    for field in _ENVELOPE_FIELDS:
        if field.name in values:
            value = values[field.name]
        else:
            default: Any = field.default
            value = default.factory() if isinstance(default, _FACTORY) else default  # type: ignore[attr-defined]
        object.__setattr__(env, field.name, value)
    return env


def _expiry_reason(attempts: int, last: str) -> str:
    plural = "" if attempts == 1 else "s"
    return (
        f"expired after {attempts} attempt{plural}: {last}"
        if last
        else (f"expired after {attempts} attempt{plural}")
    )


_STATUS = {
    SendStatus.ACCEPTED: OutcomeStatus.ACCEPTED,
    SendStatus.DEFERRED: OutcomeStatus.DEFERRED,
    SendStatus.REJECTED: OutcomeStatus.REJECTED,
}


def _outcomes(recipients: Sequence[str], result: SendResult) -> tuple[RecipientOutcome, ...]:
    """One outcome per leased recipient. A recipient the result does not mention (in
    its per-recipient detail, or in its recipients when it names them) is deferred,
    never assumed accepted."""
    if result.recipient_results:
        by = {r.recipient: r for r in result.recipient_results}
        out = []
        for rcpt in recipients:
            r = by.get(rcpt)
            if r is None:
                out.append(
                    RecipientOutcome(
                        recipient=rcpt,
                        status=OutcomeStatus.DEFERRED,
                        text="no result for this recipient",
                    )
                )
            else:
                out.append(
                    _outcome(rcpt, r.status, r.status_code, r.status_text, r.enhanced_status)
                )
        return tuple(out)
    covered = set(result.recipients) if result.recipients else None
    return tuple(
        _outcome(
            rcpt, result.status, result.status_code, result.status_text, result.enhanced_status
        )
        if covered is None or rcpt in covered
        else RecipientOutcome(
            recipient=rcpt, status=OutcomeStatus.DEFERRED, text="no result for this recipient"
        )
        for rcpt in recipients
    )


def _outcome(
    rcpt: str, status: object, code: int | str | None, text: str, enhanced: str | None
) -> RecipientOutcome:
    """A recipient's outcome; a status the pipeline does not know is deferred with that
    reason (never taken for accepted, never a crash that leaves the batch unsettled)."""
    try:
        known = _STATUS.get(status)  # type: ignore[call-overload]
    except TypeError:  # unhashable
        known = None
    if known is None:
        return RecipientOutcome(
            recipient=rcpt,
            status=OutcomeStatus.DEFERRED,
            code=code,
            text=f"unrecognised status {status!r}" + (f": {text}" if text else ""),
            enhanced=enhanced,
        )
    return RecipientOutcome(recipient=rcpt, status=known, code=code, text=text, enhanced=enhanced)
