"""Rate shaping: exact limits over API keys, sending IPs and destination domains.

``Shaper`` decides in process (compiled GCRA table), ``RedisShaper`` shares the
same semantics across processes and servers through Redis. ``presets`` holds
the providers' published limits, ``WarmupSchedule`` and ``IPPool`` cap and
spread new sending IPs.
"""

from __future__ import annotations

from mailscale.shaping import presets
from mailscale.shaping._limit import Limit, Unit
from mailscale.shaping._redis import RedisShaper
from mailscale.shaping._shaper import Decision, Shaper, parse_rate_headers
from mailscale.shaping._warmup import DEFAULT_RAMP, IPPool, PoolChoice, WarmupSchedule

__all__ = [
    "DEFAULT_RAMP",
    "Decision",
    "IPPool",
    "Limit",
    "PoolChoice",
    "RedisShaper",
    "Shaper",
    "Unit",
    "WarmupSchedule",
    "parse_rate_headers",
    "presets",
]
