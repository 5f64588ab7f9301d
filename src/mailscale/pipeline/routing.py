"""Named routes and the rule that picks one per message.

A :class:`Route` is a transport with its own shaper keys, optional source IP
(or pool of IPs) and signer: self-hosted direct-to-MX for volume, an ESP for transactional mail,
a second ESP to fail over to. A rule picks the route of each message when it
is submitted (stored with the message, so every retry takes the same route
unless it fails over): a :class:`RouteRule` (by stream: a tag or the priority
name; by destination domain; a default), or any callable
``(envelope, priority) -> route name``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from mailscale.errors import ConfigurationError
from mailscale.message import Envelope
from mailscale.pipeline.outbox import Priority
from mailscale.transports.base import Transport

__all__ = ["DEFAULT_ROUTE", "Route", "RouteRule", "RuleFunction"]

#: The name of the route a Sender built from a single transport has.
DEFAULT_ROUTE = "default"

RuleFunction = Callable[[Envelope, Priority], str]


def _frozen(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class Route:
    """One way out: a transport and what shapes and signs its traffic.

    Attributes:
        transport: a Transport, or a URL for ``transport_from_url``.
        shaper_keys: the shaper keys every message of the route is charged on
            (API key, account); default ``("route:NAME",)``.
        source_ip: the sending IP, charged as ``ip:ADDRESS`` when set.
        ip_pool: a pool of sending IPs (``mailscale.shaping.IPPool``, or any object
            whose ``choose(domain)`` returns an address or a ``PoolChoice``). The
            Sender picks each message's IP at delivery time, for its first
            recipient's domain, and sends it through a transport built from the
            route's URL bound to that IP; needs *transport* as a URL (without
            ``?source=``), excludes *source_ip*.
        options: keyword settings for ``transport_from_url`` when *transport* is a
            URL (settings a URL cannot hold: a DNS resolver, an SSL context).
        signer: a DKIM signer for this route (default: the Sender's); only raw-MIME
            routes are signed.
        failover: a route to move messages to when this one fails transiently
            (connection refused, time-out); never on a deferral or a rejection.
        domain_keys: charge each destination domain as ``domain:NAME`` (default True).
    """

    transport: Transport | str
    shaper_keys: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )
    source_ip: str | None = None
    ip_pool: Any = None
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    signer: Any = None
    failover: str | None = None
    domain_keys: bool = True


@attrs.frozen(kw_only=True)
class RouteRule:
    """Pick a route by stream, then by destination domain, else the default.

    Attributes:
        streams: stream name → route; a message's streams are its tags and its
            priority's name (``"transactional"``, ``"normal"``, ``"bulk"``);
            the first tag found wins, then the priority.
        domains: destination domain → route, matched on the first recipient's
            domain (and its parent domains: ``"example.com"`` matches
            ``"mail.example.com"``).
        default: the route for everything else.
    """

    default: str
    streams: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    domains: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)

    def routes(self) -> set[str]:
        """Every route name the rule can return."""
        return {self.default, *self.streams.values(), *self.domains.values()}

    def __call__(self, envelope: Envelope, priority: Priority) -> str:
        streams = self.streams
        if streams:
            for tag in envelope.tags:
                hit = streams.get(tag)
                if hit is not None:
                    return hit
            hit = streams.get(priority.name.lower())
            if hit is not None:
                return hit
        if self.domains:
            domain = envelope.recipients[0].rpartition("@")[2].lower().rstrip(".")
            while domain:
                hit = self.domains.get(domain)
                if hit is not None:
                    return hit
                domain = domain.partition(".")[2]
        return self.default


def check_rule(rule: object, routes: Mapping[str, Route]) -> None:
    """Raise ConfigurationError when a RouteRule names a route that does not exist."""
    if isinstance(rule, RouteRule):
        unknown = sorted(rule.routes() - set(routes))
        if unknown:
            raise ConfigurationError(
                f"route rule names unknown route(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(routes))})"
            )
    elif rule is not None and not callable(rule):
        raise ConfigurationError(
            f"rule must be a RouteRule or a callable, got {type(rule).__name__}"
        )
