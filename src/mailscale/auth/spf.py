"""SPF (RFC 7208): parsing, record-wide analysis and ``check_host_async``.

:func:`parse_spf` checks the syntax of every term (``_spf_record``). The
record-wide analysis (``_spf_lint``) walks include and redirect recursively,
counting the DNS-querying terms (limit 10) and void lookups (limit 2) and
finding loops. :func:`check_host_async` (``_spf_eval``) evaluates the record for
one IP address, macros included, and returns an :class:`SPFResult`: ``pass``,
``fail``, ``softfail``, ``neutral``, ``none``, ``permerror`` or ``temperror`` (a
``str`` enum, so each member equals its string).
"""

from __future__ import annotations

from mailscale._deprecation import deprecated_aliases
from mailscale.auth._model import SPFResult
from mailscale.auth._spf_eval import check_host_async, expand_macros, fetch_spf_async
from mailscale.auth._spf_lint import analyze_spf_async
from mailscale.auth._spf_record import (
    ESP_INCLUDES,
    MAX_LOOKUPS,
    MAX_MX_PTR_NAMES,
    MAX_VOID_LOOKUPS,
    SPFRecord,
    SPFTerm,
    is_spf,
    parse_spf,
)

__all__ = [
    "ESP_INCLUDES",
    "MAX_LOOKUPS",
    "MAX_MX_PTR_NAMES",
    "MAX_VOID_LOOKUPS",
    "SPFRecord",
    "SPFResult",
    "SPFTerm",
    "analyze_spf_async",
    "check_host_async",
    "expand_macros",
    "fetch_spf_async",
    "is_spf",
    "parse_spf",
]

__getattr__ = deprecated_aliases(
    __name__,
    {
        "check_host": "check_host_async",
        "analyze_spf": "analyze_spf_async",
        "fetch_spf": "fetch_spf_async",
    },
)
