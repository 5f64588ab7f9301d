"""Choose the hot-path implementation: the Cython ``_core`` or its pure-Python twin.

``MAILSCALE_NO_EXTENSIONS`` set (to anything but an empty string), or an
interpreter other than CPython, selects the twin. Otherwise the compiled
module is used, falling back to the twin with one debug event when it cannot
be imported. ``USING_EXTENSIONS`` tells which one is in use.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from mailscale._log import get_logger

__all__ = ["NO_EXTENSIONS", "USING_EXTENSIONS", "core", "core_py"]

from mailscale import _core_py as core_py

NO_EXTENSIONS: bool = bool(os.environ.get("MAILSCALE_NO_EXTENSIONS")) or (
    sys.implementation.name != "cpython"
)

core: ModuleType = core_py
USING_EXTENSIONS = False

if not NO_EXTENSIONS:
    try:
        from mailscale import _core as _compiled  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:  # pragma: no cover - exercised by the guard test
        get_logger("mailscale.core").debug("core.extension_unavailable", error=str(exc))
    else:
        core = _compiled
        USING_EXTENSIONS = True
