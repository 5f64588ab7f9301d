# cython: language_level=3
"""Compiled hot path of mailscale.

The pure-Python twin ``mailscale._core_py`` defines the behaviour; this module
returns identical results for every input, only faster. Each area's code lives
in an include file so that it reads on its own:

- ``_core_dkim.pxi``: DKIM canonicalization and hashing (RFC 6376 section 3.4).
- ``_core_dkim_plan.pxi``: split headers and the per-message DKIM signing path.
- ``_core_gcra.pxi``: the GCRA rate-limit table behind ``mailscale.shaping``.
"""

include "_core_dkim.pxi"
include "_core_dkim_plan.pxi"
include "_core_gcra.pxi"
