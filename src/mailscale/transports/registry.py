"""Transport URLs to transport instances: built-in schemes, composites and plugins.

Built-in schemes map to ``"module:Class"`` paths imported on first use.
Third-party packages register more schemes in the entry-point group
``mailscale.transports`` (``example+log = "pkg.module:Transport"``). Plugins are
discovered lazily, on the first lookup the built-ins cannot answer; a plugin
that fails to import or does not satisfy the contract is recorded as broken
(name, distribution, error), logged as a ``transport.plugin_broken`` warning
event and skipped. A plugin whose name clashes with a built-in is ignored,
with a ``transport.plugin_shadowed`` warning event.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from mailscale._log import get_logger
from mailscale.errors import ConfigurationError
from mailscale.transports.base import Transport, TransportURL, redact_url

__all__ = [
    "ENTRY_POINT_GROUP",
    "TransportInfo",
    "available_transports",
    "get_transport_class",
    "reset_plugins",
    "transport_from_url",
    "transport_tls",
]

ENTRY_POINT_GROUP = "mailscale.transports"

#: Built-in schemes and the class that implements each, imported lazily.
BUILTIN_TRANSPORTS: dict[str, str] = {
    "smtp": "mailscale.transports.smtp:SMTPTransport",
    "smtps": "mailscale.transports.smtp:SMTPTransport",
    "mx": "mailscale.transports.mx:MXTransport",
    "sendgrid": "mailscale.transports.sendgrid:SendGridTransport",
    "mailgun": "mailscale.transports.mailgun:MailgunTransport",
    "postmark": "mailscale.transports.postmark:PostmarkTransport",
    "ses": "mailscale.transports.ses:SESTransport",
    "memory": "mailscale.transports.dev:MemoryTransport",
    "null": "mailscale.transports.dev:NullTransport",
    "file": "mailscale.transports.dev:FileTransport",
}

#: Built-ins that need an optional extra, and the import that signals it is missing.
_EXTRAS: dict[str, tuple[str, str]] = {"ses": ("boto3", "mailscale[ses]")}

#: Schemes provided by known third-party packages, named in "unknown scheme" errors.
KNOWN_PLUGINS: dict[str, str] = {"example+log": "mailscale-example-plugin"}

COMPOSITES = ("failover", "roundrobin")

_log = get_logger("mailscale.transports")


@attrs.frozen(kw_only=True)
class TransportInfo:
    """One transport the registry knows about.

    Attributes:
        name: the URL scheme (or entry-point name).
        kind: ``"builtin"``, ``"plugin"``, ``"broken"`` (a plugin that failed) or
            ``"shadowed"`` (a plugin whose name a built-in already uses).
        target: the ``module:Class`` path.
        distribution: the package that provides a plugin (None for built-ins).
        error: why a plugin is broken or shadowed, or a built-in unusable here.
    """

    name: str
    kind: str
    target: str
    distribution: str | None = None
    error: str | None = None


@attrs.define
class _Plugins:
    """Entry points found in ``mailscale.transports``, loaded on demand."""

    discovered: bool = False
    entry_points: dict[str, importlib.metadata.EntryPoint] = attrs.field(factory=dict)
    loaded: dict[str, type] = attrs.field(factory=dict)
    infos: dict[str, TransportInfo] = attrs.field(factory=dict)
    lock: threading.RLock = attrs.field(factory=threading.RLock)


_plugins = _Plugins()


def reset_plugins() -> None:
    """Forget discovered plugins so the next lookup discovers them again."""
    global _plugins
    _plugins = _Plugins()


def _distribution(ep: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else str(dist.metadata["Name"] or dist.name)


def _discover() -> _Plugins:
    state = _plugins
    with state.lock:
        if state.discovered:
            return state
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = _distribution(ep)
            if ep.name in BUILTIN_TRANSPORTS or ep.name in COMPOSITES:
                info = TransportInfo(
                    name=ep.name,
                    kind="shadowed",
                    target=ep.value,
                    distribution=dist,
                    error=f"the built-in {ep.name!r} transport takes precedence",
                )
                state.infos[ep.name] = info
                _log.warning(
                    "transport.plugin_shadowed",
                    plugin=ep.name,
                    distribution=dist,
                    target=ep.value,
                )
                continue
            if ep.name in state.entry_points:
                other = _distribution(state.entry_points[ep.name])
                _log.warning(
                    "transport.plugin_duplicate",
                    plugin=ep.name,
                    distribution=dist,
                    kept=other,
                )
                continue
            state.entry_points[ep.name] = ep
        state.discovered = True
        return state


def check_transport_class(cls: object, scheme: str | None = None) -> None:
    """Raise ``TypeError`` unless *cls* satisfies the transport contract.

    A transport is a class with a callable ``send``, ``close`` and
    ``from_url``, a coroutine ``send_async``, a ``schemes`` tuple of strings
    (that includes *scheme*), a non-empty ``name``, ``payload`` ``"mime"`` or
    ``"json"``, an integer ``max_batch`` of at least 1 and ``rate_preset`` a
    string or None.
    """
    if not isinstance(cls, type):
        raise TypeError(f"expected a transport class, got {type(cls).__name__}")
    for method in ("send", "close", "from_url"):
        if not callable(getattr(cls, method, None)):
            raise TypeError(f"{cls.__qualname__} has no {method}() method")
    schemes = getattr(cls, "schemes", None)
    if not isinstance(schemes, tuple) or not all(isinstance(s, str) for s in schemes):
        raise TypeError(f"{cls.__qualname__}.schemes must be a tuple of strings")
    if scheme is not None and scheme not in schemes:
        raise TypeError(f"{cls.__qualname__}.schemes {schemes!r} does not include {scheme!r}")
    if not callable(getattr(cls, "send_async", None)):
        raise TypeError(f"{cls.__qualname__} has no send_async() method")
    if not inspect.iscoroutinefunction(cls.send_async):  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__qualname__}.send_async must be a coroutine function")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__}.name must be a non-empty string")
    payload = getattr(cls, "payload", None)
    if payload not in ("mime", "json"):
        raise TypeError(f"{cls.__qualname__}.payload must be 'mime' or 'json', got {payload!r}")
    max_batch = getattr(cls, "max_batch", None)
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
        raise TypeError(
            f"{cls.__qualname__}.max_batch must be an integer of at least 1, got {max_batch!r}"
        )
    preset = getattr(cls, "rate_preset", None)
    if preset is not None and not isinstance(preset, str):
        raise TypeError(f"{cls.__qualname__}.rate_preset must be a string or None")


def _load_plugin(state: _Plugins, name: str) -> type | None:
    with state.lock:
        if name in state.loaded:
            return state.loaded[name]
        ep = state.entry_points.get(name)
        if ep is None:
            return None
        dist = _distribution(ep)
        try:
            cls: type = ep.load()
            check_transport_class(cls, name)
        except Exception as exc:  # a plugin must never break discovery
            error = f"{type(exc).__name__}: {exc}"
            state.infos[name] = TransportInfo(
                name=name, kind="broken", target=ep.value, distribution=dist, error=error
            )
            del state.entry_points[name]
            _log.warning(
                "transport.plugin_broken",
                plugin=name,
                distribution=dist,
                target=ep.value,
                error=error,
            )
            return None
        state.loaded[name] = cls
        state.infos[name] = TransportInfo(
            name=name, kind="plugin", target=ep.value, distribution=dist
        )
        return cls


def _import_builtin(scheme: str, url: str) -> type:
    module_name, _, attr = BUILTIN_TRANSPORTS[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get(scheme)
        if extra is not None and exc.name is not None and exc.name.split(".")[0] == extra[0]:
            raise ConfigurationError(
                f"transport URL {redact_url(url)!r}: the {scheme!r} transport needs "
                f"{extra[0]}: pip install '{extra[1]}'"
            ) from None
        if exc.name == module_name:
            raise ConfigurationError(
                f"transport URL {redact_url(url)!r}: the {scheme!r} transport is not "
                "available in this installation"
            ) from None
        raise
    cls: type = getattr(module, attr)
    return cls


def get_transport_class(scheme: str) -> type:
    """The transport class for *scheme* (built-in first, then plugins).

    Raises:
        ConfigurationError: unknown scheme, naming the package that provides it
            when it is a known third-party scheme.
    """
    scheme = scheme.lower()
    if scheme in BUILTIN_TRANSPORTS:
        return _import_builtin(scheme, f"{scheme}://")
    cls = _load_plugin(_discover(), scheme)
    if cls is None:
        raise ConfigurationError(_unknown_scheme(scheme, f"{scheme}://"))
    return cls


def _unknown_scheme(scheme: str, url: str) -> str:
    state = _discover()
    info = state.infos.get(scheme)
    if info is not None and info.kind == "broken":
        return (
            f"transport URL {redact_url(url)!r}: the plugin {scheme!r} from "
            f"{info.distribution or 'an unknown package'} is broken ({info.error})"
        )
    hint = ""
    if scheme in KNOWN_PLUGINS:
        hint = f"; it is provided by the package {KNOWN_PLUGINS[scheme]!r} (pip install it)"
    known = sorted({*BUILTIN_TRANSPORTS, *state.entry_points, *state.loaded})
    return (
        f"transport URL {redact_url(url)!r}: unknown scheme {scheme!r}{hint} "
        f"(known: {', '.join(known)}, and failover(...), roundrobin(...))"
    )


def _builtin_problem(scheme: str) -> str | None:
    """Why a built-in cannot be used here (a missing optional extra), without importing it."""
    module_name = BUILTIN_TRANSPORTS[scheme].partition(":")[0]
    if importlib.util.find_spec(module_name) is None:
        return "not available in this installation"
    extra = _EXTRAS.get(scheme)
    if extra is not None and importlib.util.find_spec(extra[0]) is None:
        return f"needs {extra[0]}: pip install '{extra[1]}'"
    return None


def available_transports() -> list[TransportInfo]:
    """Every transport the registry knows: built-ins, plugins (loaded now), broken and shadowed.

    Loads every plugin, so broken ones are found and reported.
    """
    infos = [
        TransportInfo(name=scheme, kind="builtin", target=target, error=_builtin_problem(scheme))
        for scheme, target in BUILTIN_TRANSPORTS.items()
    ]
    state = _discover()
    for name in list(state.entry_points):
        _load_plugin(state, name)
    with state.lock:
        infos.extend(sorted(state.infos.values(), key=lambda i: i.name))
    return infos


# --- URL expressions ----------------------------------------------------------

_COMPOSITE_START = re.compile(r"\s*(failover|roundrobin)\s*\(", re.IGNORECASE)
_SEPARATORS = " \t\r\n,"


def transport_from_url(
    url: str,
    *,
    options_for: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> Transport:
    """Build a transport from a URL or a composite expression.

    ``smtp://user:pass@host:587``, ``memory://``,
    ``failover(smtp://a roundrobin(sendgrid://KEY@default postmark://TOKEN@default))``.

    Args:
        url: one transport URL or a ``failover(...)`` / ``roundrobin(...)`` expression.
        options_for: keyword settings per scheme, given to every transport of
            that scheme, alone or inside composites
            (``{"sendgrid": {"base_url": ..., "timeout": 5}}``); for settings a
            URL cannot hold (an ``ssl.SSLContext``, a boto3 client).
        **options: keyword settings for the transport's ``from_url``; for a
            composite, settings of the composite itself (``cooldown=``).
            They win over *options_for*.

    Raises:
        ConfigurationError: malformed URL, unknown scheme, missing credential,
            unknown option; the message shows the URL redacted.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"transport URL must be a string, got {type(url).__name__}")
    per_scheme = {k.lower(): dict(v) for k, v in (options_for or {}).items()}
    if not _COMPOSITE_START.match(url):
        # A single URL: taken whole, so "(" or "," in a credential needs no escaping.
        return _build_url(url.strip(), per_scheme, options)
    node, end = _parse_expr(url, 0)
    if url[end:].strip(_SEPARATORS):
        raise ConfigurationError(
            f"transport URL {redact_url(url)!r}: unexpected text after the first transport "
            "(use failover(...) or roundrobin(...) to combine several)"
        )
    _check_members(node, url)
    return _build(node, url, per_scheme, options)


def _check_members(node: _Node, whole: str) -> None:
    """Raise when a member is not ``scheme://...``: a credential with a space in it
    would otherwise be split into two members, and the first one's error shows part of it."""
    kind, value = node
    if kind != "url":
        for child in value:
            _check_members(child, whole)
    elif "://" not in value:
        raise ConfigurationError(
            f"transport URL {redact_url(whole)!r}: a member is not of the form scheme://... "
            "(percent-encode spaces, commas and parentheses in credentials)"
        )


_Node = tuple[str, Any]  # ("url", text) or (composite kind, [children])


def _parse_expr(text: str, pos: int) -> tuple[_Node, int]:
    while pos < len(text) and text[pos] in _SEPARATORS:
        pos += 1
    match = _COMPOSITE_START.match(text, pos)
    if match:
        kind = match.group(1).lower()
        pos = match.end()
        children: list[_Node] = []
        while True:
            while pos < len(text) and text[pos] in _SEPARATORS:
                pos += 1
            if pos >= len(text):
                raise ConfigurationError(
                    f"transport URL {redact_url(text)!r}: {kind}( is missing its closing ')'"
                )
            if text[pos] == ")":
                pos += 1
                break
            child, pos = _parse_expr(text, pos)
            children.append(child)
        if not children:
            raise ConfigurationError(
                f"transport URL {redact_url(text)!r}: {kind}() needs at least one transport"
            )
        return (kind, children), pos
    start = pos
    while pos < len(text) and text[pos] not in _SEPARATORS and text[pos] not in "()":
        pos += 1
    if pos == start:
        raise ConfigurationError(f"transport URL {redact_url(text)!r}: expected a transport URL")
    return ("url", text[start:pos]), pos


def _build(
    node: _Node, whole: str, per_scheme: Mapping[str, dict[str, Any]], options: dict[str, Any]
) -> Transport:
    kind, value = node
    if kind == "url":
        return _build_url(value, per_scheme, options)
    from mailscale.transports.composite import FailoverTransport, RoundRobinTransport

    members: list[Transport] = []
    try:
        for child in value:
            members.append(_build(child, whole, per_scheme, {}))
    except BaseException:
        for member in members:
            member.close()
        raise
    factory: Callable[..., Transport] = (
        FailoverTransport if kind == "failover" else RoundRobinTransport
    )
    try:
        return factory(members, **options)
    except TypeError as exc:
        for member in members:
            member.close()
        raise ConfigurationError(f"transport URL {redact_url(whole)!r}: {exc}") from None


def _class_for_url(scheme: str, text: str) -> type:
    if scheme in BUILTIN_TRANSPORTS:
        return _import_builtin(scheme, text)
    plugin = _load_plugin(_discover(), scheme)
    if plugin is None:
        raise ConfigurationError(_unknown_scheme(scheme, text))
    return plugin


def _build_url(
    text: str, per_scheme: Mapping[str, dict[str, Any]], options: dict[str, Any]
) -> Transport:
    parsed = TransportURL.parse(text)
    scheme = parsed.scheme
    options = {**per_scheme.get(scheme, {}), **options}
    cls = _class_for_url(scheme, text)
    try:
        transport: Transport = cls.from_url(parsed, **options)  # type: ignore[attr-defined]
    except TypeError as exc:
        raise parsed.error(f"invalid settings for {scheme!r}: {exc}") from None
    return transport


# --- TLS of a URL ---------------------------------------------------------------

#: TLS modes from the weakest to the strongest.
TLS_MODES = ("none", "opportunistic", "required")


def transport_tls(url: str) -> str | None:
    """How the transport *url* builds would protect its connections, without building it.

    ``"required"`` (every connection uses TLS: ``smtp://`` by default, ``smtps://``,
    HTTPS providers), ``"opportunistic"`` (TLS when the server offers it: ``mx://``
    by default, ``?tls=opportunistic``), ``"none"`` (``?tls=none``, a plain
    ``http://`` ``base_url`` or ``endpoint_url``), or None when no member sends
    over a network (``memory://``) or its class does not say (a plugin without
    ``tls_of``). A composite is as strong as its weakest networked member.

    Raises:
        ConfigurationError: a malformed URL, an unknown scheme or a bad ``tls`` option.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"transport URL must be a string, got {type(url).__name__}")
    if _COMPOSITE_START.match(url):
        node, _ = _parse_expr(url, 0)
        leaves = list(_leaves(node))
    else:
        leaves = [url.strip()]
    modes: list[str] = []
    for text in leaves:
        parsed = TransportURL.parse(text)
        tls_of = getattr(_class_for_url(parsed.scheme, text), "tls_of", None)
        mode = tls_of(parsed) if callable(tls_of) else None
        if mode in TLS_MODES:
            modes.append(mode)
    return min(modes, key=TLS_MODES.index) if modes else None


def _leaves(node: _Node) -> Iterator[str]:
    kind, value = node
    if kind == "url":
        yield value
        return
    for child in value:
        yield from _leaves(child)
