"""Logging without side effects.

mailscale emits structlog events with dotted names (``transport.send_failed``).
It never configures structlog or the stdlib ``logging`` module. When the
application has configured structlog, events go through that configuration;
otherwise they go to the stdlib logger ``mailscale`` (silent unless the
application attached a handler), never to stdout.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ["get_logger"]

# The library's own logger gets a NullHandler (the stdlib's advice for libraries):
# without a handler anywhere, warnings would reach stderr through
# logging.lastResort. The application's handlers still receive every record.
logging.getLogger("mailscale").addHandler(logging.NullHandler())

_STDLIB_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,
    structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
]


class _Logger:
    """A structlog-style logger that picks its backend at call time."""

    __slots__ = ("_context", "_name")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = context or {}

    def bind(self, **kw: Any) -> _Logger:
        return _Logger(self._name, {**self._context, **kw})

    def _target(self) -> Any:
        if structlog.is_configured():
            return structlog.get_logger(self._name).bind(**self._context)
        return structlog.wrap_logger(
            logging.getLogger(self._name),
            processors=_STDLIB_PROCESSORS,
            wrapper_class=structlog.stdlib.BoundLogger,
        ).bind(**self._context)

    def debug(self, event: str, **kw: Any) -> None:
        self._target().debug(event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._target().info(event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._target().warning(event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._target().error(event, **kw)


def get_logger(name: str = "mailscale", **context: Any) -> _Logger:
    """Return mailscale's logger for *name* (a dotted ``mailscale.*`` name)."""
    return _Logger(name, context)
