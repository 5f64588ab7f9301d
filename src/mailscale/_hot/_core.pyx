# cython: language_level=3
"""Compiled hot path of mailscale (``mailscale._hot._core``).

The pure-Python twin ``mailscale._hot._core_py`` defines the behaviour; this
module returns identical results for every input, only faster. Callers import
neither: ``mailscale._hot`` selects one and exports its names. Each area's
code lives in an include file, mirrored by the twin module of the same name:

- ``_core_dkim.pxi`` (``_core_dkim_py.py``): DKIM canonicalization and hashing
  (RFC 6376 section 3.4); its SIMD scans are C in ``_core_dkim_scan.h``.
- ``_core_dkim_plan.pxi`` (``_core_dkim_plan_py.py``): split headers and the
  per-message DKIM signing path.
- ``_core_gcra.pxi`` (``_core_gcra_py.py``): the GCRA rate-limit table behind
  ``mailscale.shaping``; its ``Decision`` is ``_decision.py``, shared by both.

Names with a leading underscore are kept identical to the twin for the tests
and benchmarks that compare the two; the library does not call them.
"""

include "_core_dkim.pxi"
include "_core_dkim_plan.pxi"
include "_core_gcra.pxi"
