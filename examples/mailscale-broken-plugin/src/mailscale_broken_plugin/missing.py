"""A plugin whose main module cannot be imported (a missing dependency)."""

from __future__ import annotations

import mailscale_broken_plugin_missing_dependency  # noqa: F401  (deliberately absent)


class BrokenTransport:  # pragma: no cover - never importable
    schemes = ("broken",)
