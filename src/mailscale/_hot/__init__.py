"""The hot path of mailscale, and the one gateway the rest of the library calls it through.

Layout (each compiled part has a twin module of the same name):

- ``_core.pyx`` with ``_core_dkim.pxi``, ``_core_dkim_plan.pxi`` and
  ``_core_gcra.pxi`` build the extension ``mailscale._hot._core``; the SIMD C
  of the DKIM scans is ``_core_dkim_scan.h``; ``_core.pyi`` describes it.
- ``_core_py.py`` gathers the pure-Python twin: ``_core_dkim_py.py``,
  ``_core_dkim_plan_py.py``, ``_core_gcra_py.py``. The twin defines the
  behaviour; the compiled module returns identical results, only faster.
- ``_decision.py``: ``Decision``, the value the GCRA tables of both answer with.

This module selects the implementation and exports its names: signing and
shaping import them from here, never from ``_core`` or a twin module. Type
checkers see the twin (the ``TYPE_CHECKING`` branch), which the stub
``_core.pyi`` keeps in step with the compiled module.

``MAILSCALE_NO_EXTENSIONS`` set (to anything but an empty string), or an
interpreter other than CPython, selects the twin. Otherwise the compiled
module is used, falling back to the twin with one debug event when it cannot
be imported. ``USING_EXTENSIONS`` tells which one is in use; ``core`` is the
selected module and ``core_py`` the twin (for tests that compare the two).
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from mailscale._hot import _core_py as core_py
from mailscale._hot._core_dkim_py import parse_tags
from mailscale._hot._decision import ALLOWED, MAX_KEYS_PER_CALL, Decision
from mailscale._log import get_logger

__all__ = [
    "ALLOWED",
    "MAX_KEYS_PER_CALL",
    "NO_EXTENSIONS",
    "USING_EXTENSIONS",
    "Decision",
    "GCRATable",
    "Header",
    "SignPlan",
    "body_hash",
    "core",
    "core_py",
    "normalize_line_endings",
    "parse_signature",
    "parse_tags",
    "split_header",
    "verify_step",
]

NO_EXTENSIONS: bool = bool(os.environ.get("MAILSCALE_NO_EXTENSIONS")) or (
    sys.implementation.name != "cpython"
)

core: ModuleType = core_py
USING_EXTENSIONS = False

if not NO_EXTENSIONS:
    try:
        from mailscale._hot import _core as _compiled
    except ImportError as exc:  # pragma: no cover - exercised by the guard test
        get_logger("mailscale.core").debug("core.extension_unavailable", error=str(exc))
    else:
        core = _compiled
        USING_EXTENSIONS = True

if TYPE_CHECKING:
    from mailscale._hot._core_py import (
        GCRATable,
        Header,
        SignPlan,
        body_hash,
        normalize_line_endings,
        parse_signature,
        split_header,
        verify_step,
    )
else:
    GCRATable = core.GCRATable
    Header = core.Header
    SignPlan = core.SignPlan
    body_hash = core.body_hash
    normalize_line_endings = core.normalize_line_endings
    parse_signature = core.parse_signature
    split_header = core.split_header
    verify_step = core.verify_step
