"""Pure-Python twin of ``mailscale._hot._core``: the reference behaviour.

It exposes the same names, signatures, results and exceptions as the compiled
module, gathered from the twin modules named after the compiled parts they
mirror (``_core_dkim.pxi`` and ``_core_dkim_py.py``, and so on). The gateway
``mailscale._hot`` picks one of the two. Names with a leading underscore are
not called by the library: tests and benchmarks compare them between the two.
"""

from __future__ import annotations

from mailscale._hot._core_dkim_plan_py import (
    Header,
    SignPlan,
    _fold_tag_list,
    split_header,
    verify_step,
)
from mailscale._hot._core_dkim_py import (
    _b64_value,
    _BodyHasher,
    _canon_body_relaxed,
    _canon_body_simple,
    _canon_header_relaxed,
    _header_hash_input,
    _parse_tag_list,
    _split_message,
    _strip_b_value,
    body_hash,
    normalize_line_endings,
    parse_signature,
)
from mailscale._hot._core_gcra_py import GCRATable

# The library's names, then the private ones kept identical for the tests that
# compare the two implementations.
__all__ = [
    "GCRATable",
    "Header",
    "SignPlan",
    "body_hash",
    "normalize_line_endings",
    "parse_signature",
    "split_header",
    "verify_step",
    "_BodyHasher",
    "_b64_value",
    "_canon_body_relaxed",
    "_canon_body_simple",
    "_canon_header_relaxed",
    "_fold_tag_list",
    "_header_hash_input",
    "_parse_tag_list",
    "_split_message",
    "_strip_b_value",
]
