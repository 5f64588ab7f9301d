"""The value a rate-limit table answers with, shared by the compiled core and its twin.

Both GCRA tables (``_core_gcra.pxi`` and ``_core_gcra_py.py``) construct this
class, so that their results compare equal, and ``mailscale.shaping`` returns it
as ``mailscale.shaping.Decision``. Plain Python with no imports from the hot path.
"""

from __future__ import annotations

import attrs

__all__ = ["ALLOWED", "MAX_KEYS_PER_CALL", "Decision"]

#: Most keys one ``acquire``/``reserve`` call may charge together.
MAX_KEYS_PER_CALL = 32


@attrs.frozen
class Decision:
    """The answer to ``acquire``: admitted or not, and how long to wait if not.

    Attributes:
        allowed: True when every limit was charged.
        retry_after: seconds until the same request would be admitted (0.0 when allowed).
    """

    allowed: bool
    retry_after: float

    def __bool__(self) -> bool:
        return self.allowed


#: The one admitted decision, shared (decisions are immutable).
ALLOWED = Decision(True, 0.0)
