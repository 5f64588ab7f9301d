"""Pure-Python twin of ``mailscale._core``: the reference behaviour.

It exposes the same names, signatures, results and exceptions as the compiled
module. ``mailscale._impl`` picks one of the two.
"""

from __future__ import annotations

from mailscale._dkim_plan_py import Header, SignPlan, fold_tag_list, split_header
from mailscale._dkim_py import (
    BodyHasher,
    b64_value,
    body_hash,
    canon_body_relaxed,
    canon_body_simple,
    canon_header_relaxed,
    header_hash_input,
    normalize_line_endings,
    parse_signature,
    parse_tag_list,
    split_message,
    strip_b_value,
)
from mailscale._gcra_py import ALLOWED, MAX_KEYS_PER_CALL, Decision, GCRATable

__all__ = [
    "ALLOWED",
    "MAX_KEYS_PER_CALL",
    "BodyHasher",
    "Decision",
    "GCRATable",
    "Header",
    "SignPlan",
    "b64_value",
    "body_hash",
    "canon_body_relaxed",
    "canon_body_simple",
    "canon_header_relaxed",
    "fold_tag_list",
    "header_hash_input",
    "normalize_line_endings",
    "parse_signature",
    "parse_tag_list",
    "split_header",
    "split_message",
    "strip_b_value",
]
