"""Pure-Python twin of ``mailscale._core``: the reference behaviour.

It exposes the same names, signatures, results and exceptions as the compiled
module. ``mailscale._impl`` picks one of the two.
"""

from __future__ import annotations

from mailscale._dkim_py import canon_body_relaxed, canon_body_simple, normalize_line_endings
from mailscale._gcra_py import ALLOWED, MAX_KEYS_PER_CALL, Decision, GCRATable

__all__ = [
    "ALLOWED",
    "MAX_KEYS_PER_CALL",
    "Decision",
    "GCRATable",
    "canon_body_relaxed",
    "canon_body_simple",
    "normalize_line_endings",
]
