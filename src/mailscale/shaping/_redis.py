"""``RedisShaper``: the Shaper's semantics shared by many processes through Redis.

One Lua script decides a whole batch of requests atomically, every request
all-or-nothing across its keys, on Redis's own clock (``TIME``), so client
clock skew cannot break a limit. All keys of one shaper carry the same hash
tag (``{tag}``), so a call stays in one Redis Cluster slot. Each key holds one
integer (its theoretical arrival time in microseconds) and expires exactly when
it has drained: an idle key costs nothing and a killed client leaves no state
behind that a fresh key would not have. A throttled key holds
``tat:factor:start:end`` instead, and lives until both have passed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mailscale._hot import ALLOWED, MAX_KEYS_PER_CALL, Decision
from mailscale._log import get_logger
from mailscale.errors import ShaperUnavailable, ShapingError
from mailscale.shaping._limit import MAX_PER, Limit, RuleTable, default_burst
from mailscale.shaping._shaper import Shaper, parse_rate_headers
from mailscale.shaping._waiting import WaitingBase
from mailscale.shaping._waiting import seconds as check_seconds

__all__ = ["BLOCK_LUA", "GCRA_LUA", "THROTTLE_LUA", "RedisShaper"]

_log = get_logger("mailscale.shaping")

# Reading and writing one key's value: "tat" (µs), or "tat:factor:start:end" while a
# throttle (factor rising linearly to 1 from start to end, µs) is running.
_VALUE_LUA = """
local function parse(key, raw)
  local tat = tonumber(raw or '0')
  if tat then return tat, nil end
  local a, f, s, e = string.match(raw, '^(%-?%d+):([%d%.eE%-]+):(%-?%d+):(%-?%d+)$')
  if a then return tonumber(a), {tonumber(f), tonumber(s), tonumber(e), f} end
  return nil, nil
end
local function interval(iv, th, now)
  if th == nil or now >= th[3] then return iv end
  local frac = (now - th[2]) / (th[3] - th[2])
  if frac < 0 then frac = 0 end
  return math.ceil(iv / (th[1] + (1 - th[1]) * frac))
end
local function store(key, tat, th, now)
  local last = tat
  local value = string.format('%.0f', tat)
  if th ~= nil and th[3] > now then
    if th[3] > last then last = th[3] end
    value = value .. ':' .. th[4] .. string.format(':%.0f:%.0f', th[2], th[3])
  end
  redis.call('SET', key, value, 'PX', math.floor((last - now) / 1000) + 1)
end
local function bad(key)
  return redis.error_reply('key ' .. key .. ' does not hold a shaping state')
end
"""

# KEYS: the distinct Redis keys of the batch.
# ARGV: mode (0 acquire, 1 reserve), n, number of requests m, number of keys k,
#   then k pairs (interval µs, tolerance µs), one per key, then per request:
#   its number of keys c and c indices into KEYS.
# Returns one wait per request in µs (0 = admitted and charged), then Redis's time in µs.
GCRA_LUA = (
    _VALUE_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local force = ARGV[1] == '1'
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local k = tonumber(ARGV[4])
local ivs, tols, tats, thrs, dirty = {}, {}, {}, {}, {}
-- MGET in slices: unpack() of more than a few thousand values overflows Lua's C stack.
for s = 1, k, 1000 do
  local e = math.min(s + 999, k)
  local part = redis.call('MGET', unpack(KEYS, s, e))
  for i = 1, e - s + 1 do
    local tat, th = parse(KEYS[s + i - 1], part[i])
    if tat == nil then return bad(KEYS[s + i - 1]) end
    tats[s + i - 1] = tat
    thrs[s + i - 1] = th
  end
end
for ki = 1, k do
  ivs[ki] = tonumber(ARGV[3 + 2 * ki])
  tols[ki] = tonumber(ARGV[4 + 2 * ki])
end
local p = 5 + 2 * k
local out = {}
for i = 1, m do
  local c = tonumber(ARGV[p])
  p = p + 1
  local worst = 0
  local idx = {}
  local news = {}
  for j = 1, c do
    local ki = tonumber(ARGV[p])
    p = p + 1
    local tat = tats[ki]
    if tat < now then tat = now end
    local iv = interval(ivs[ki], thrs[ki], now)
    local new = tat + n * iv
    -- As in process: admit when tat + (n - 1) * iv <= now + tolerance - base interval.
    local wait = new - iv + ivs[ki] - tols[ki] - now
    if wait > worst then worst = wait end
    idx[j] = ki
    news[j] = new
  end
  if force or worst <= 0 then
    for j = 1, c do
      tats[idx[j]] = news[j]
      dirty[idx[j]] = true
    end
  end
  if worst < 0 then worst = 0 end
  out[i] = worst
end
for ki, _ in pairs(dirty) do
  store(KEYS[ki], tats[ki], thrs[ki], now)
end
out[m + 1] = now
return out
"""
)

# KEYS[1]: one key. ARGV: block length (µs), tolerance (µs), interval (µs).
# Moves the key's TAT so that nothing is admitted for the block length.
BLOCK_LUA = (
    _VALUE_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local target = now + tonumber(ARGV[1]) + tonumber(ARGV[2]) - tonumber(ARGV[3])
local tat, th = parse(KEYS[1], redis.call('GET', KEYS[1]))
if tat == nil then return bad(KEYS[1]) end
if target > tat then store(KEYS[1], target, th, now) end
return 0
"""
)

# KEYS[1]: one key. ARGV: factor (text), duration (µs).
# Starts (or restarts) the key's throttle now, keeping its TAT.
THROTTLE_LUA = (
    _VALUE_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = parse(KEYS[1], redis.call('GET', KEYS[1]))
if tat == nil then return bad(KEYS[1]) end
if tat < now then tat = now end
store(KEYS[1], tat, {tonumber(ARGV[1]), now, now + tonumber(ARGV[2]), ARGV[1]}, now)
return 0
"""
)

_US = 1000  # ns per µs
# Redis replies meaning "not now" (failover, cluster resharding, a busy or loading
# server) rather than "this script or its data is wrong".
_TRANSIENT_REPLIES = ("BUSY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY")


def _redis_failure(exc: Exception) -> Exception:
    """The typed error for a failed Redis call: unavailable, or the script was rejected."""
    import redis

    if isinstance(exc, redis.ResponseError) and not str(exc).startswith(_TRANSIENT_REPLIES):
        if not isinstance(exc, (redis.exceptions.ReadOnlyError, redis.exceptions.ClusterDownError)):
            return ShapingError(f"Redis rejected the shaping script: {exc}")
    return ShaperUnavailable(f"Redis shaper unavailable: {type(exc).__name__}: {exc}")


# The cache of each key's limit parameters: keys kept, bytes accounted (the key's
# characters, 4 per non-ASCII one, plus 160 per entry), and the longest key kept.
_CACHE_MAX = 100_000
_CACHE_MAX_BYTES = 16 << 20
_CACHE_MAX_KEY = 1024


class RedisShaper(WaitingBase):
    """Rate limits shared by every process and server that uses the same Redis.

    Same key patterns as ``Shaper`` (exact keys, ``prefix*`` rules, ``*``).
    Every client must be configured with the same limits. If Redis cannot be
    reached (or answers that it cannot serve now: loading, busy, read-only,
    cluster down) the call raises ``ShaperUnavailable`` and nothing is admitted,
    unless ``fallback`` is given: then that (in-process) shaper decides until
    Redis answers again; give it a share of each limit (e.g. count divided by
    the number of servers) so that the sum stays within the provider's limit.

    Args:
        client: a ``redis.Redis`` (or ``redis.RedisCluster``) client.
        limits: pattern → ``Limit``.
        strict: reject keys that match no pattern.
        namespace: prefix of every Redis key.
        hash_tag: the Cluster hash tag shared by all keys of this shaper.
        batch_size: requests per script call; a batch of any size costs one round trip.
        fallback: an in-process shaper to use while Redis is unreachable.
        clock: local monotonic clock, used only to turn waits into times.
        sleep: blocking sleep used by ``wait``.
    """

    def __init__(
        self,
        client: Any,
        limits: Mapping[str, Limit] | None = None,
        *,
        strict: bool = True,
        namespace: str = "mailscale:gcra",
        hash_tag: str = "shaper",
        batch_size: int = 200,
        fallback: Shaper | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if type(namespace) is not str or type(hash_tag) is not str:
            raise ShapingError("namespace and hash_tag must be str")
        if not hash_tag or any(c in hash_tag for c in "{}"):
            raise ShapingError(f"hash_tag must be non-empty and free of braces, got {hash_tag!r}")
        if type(batch_size) is not int or not 1 <= batch_size <= 10_000:
            raise ShapingError(f"batch_size must be an int in [1, 10000], got {batch_size!r}")
        if fallback is not None and not isinstance(fallback, Shaper):
            raise ShapingError("fallback must be a Shaper")
        self._client = client
        self._script = client.register_script(GCRA_LUA)
        self._block = client.register_script(BLOCK_LUA)
        self._throttle = client.register_script(THROTTLE_LUA)
        self._strict = bool(strict)
        self._base = f"{namespace}:{{{hash_tag}}}:"
        self._batch = batch_size
        self._fallback = fallback
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rules: RuleTable[Limit] = RuleTable()
        self._cache: dict[str, tuple[int, int, int] | None] = {}
        self._cache_bytes = 0
        self._down = False
        #: Redis's clock (epoch seconds) when the last batch was decided.
        self.last_server_time = 0.0
        for pattern, limit in (limits or {}).items():
            self.set_limit(pattern, limit)

    # -- rules --------------------------------------------------------------

    def set_limit(self, pattern: str, limit: Limit) -> None:
        """Add or reconfigure the limit of an exact key or a ``prefix*`` rule (this client)."""
        pattern = RuleTable.check_pattern(pattern)
        if not isinstance(limit, Limit):
            raise ShapingError(f"expected a Limit, got {type(limit).__name__}")
        self._rules.set(pattern, limit)
        self._cache.clear()
        self._cache_bytes = 0

    def drop_limit(self, pattern: str) -> None:
        """Remove a pattern from this client's configuration."""
        pattern = RuleTable.check_pattern(pattern)
        if self._rules.pop(pattern) is None:
            raise ShapingError(f"no limit is configured for pattern {pattern!r}")
        self._cache.clear()
        self._cache_bytes = 0

    def limit_for(self, key: str) -> Limit | None:
        """The limit that applies to ``key``, or None when it is unlimited."""
        if type(key) is not str:
            raise ShapingError(f"keys must be str, got {type(key).__name__}")
        return self._rules.lookup(key)

    def _params(self, key: Any) -> tuple[int, int, int] | None:
        hit = self._cache.get(key, False) if type(key) is str else False
        if hit is not False:
            return hit  # type: ignore[return-value]
        limit = self.limit_for(key)
        if limit is None:
            if self._strict:
                raise ShapingError(f"no limit configured for key {key!r} (strict mode)")
            params = None
        else:
            iv, tol = limit.scaled_units(_US)
            params = (iv, tol, limit.burst)
        size = 160 + (len(key) if key.isascii() else 4 * len(key))
        if len(key) <= _CACHE_MAX_KEY:
            if len(self._cache) >= _CACHE_MAX or self._cache_bytes + size > _CACHE_MAX_BYTES:
                self._cache.clear()
                self._cache_bytes = 0
            if key not in self._cache:
                self._cache_bytes += size
            self._cache[key] = params
        return params

    def redis_key(self, key: str) -> str:
        """The Redis key holding ``key``'s state."""
        return self._base + key

    # -- encoding -----------------------------------------------------------

    def _encode(self, chunk: Sequence[Any], n: int, force: bool) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one script call (see ``GCRA_LUA``)."""
        base = self._base
        keys_out: list[str] = []
        params: list[int] = []
        requests: list[int] = []
        index: dict[str, int] = {}
        burst_of: dict[int, tuple[str, int]] = {}
        for keys in chunk:
            if type(keys) is str:
                names: Iterable[Any] = (keys,)
            elif isinstance(keys, (tuple, list)):
                if not keys:
                    raise ShapingError("keys must name at least one key")
                if len(keys) > MAX_KEYS_PER_CALL:
                    raise ShapingError(
                        f"at most {MAX_KEYS_PER_CALL} keys per request, got {len(keys)}"
                    )
                names = dict.fromkeys(keys)
            else:
                raise ShapingError(
                    f"keys must be a str or a tuple/list of str, got {type(keys).__name__}"
                )
            mark = len(requests)
            requests.append(0)
            for key in names:
                i = index.get(key) if type(key) is str else None
                if i is None:
                    if type(key) is not str:
                        raise ShapingError(f"keys must be str, got {type(key).__name__}")
                    p = self._params(key)
                    if p is None:
                        continue
                    keys_out.append(base + key)
                    params += (p[0], p[1])
                    i = index[key] = len(keys_out)
                    burst_of[i] = (key, p[2])
                burst_key, burst = burst_of[i]
                if n > burst:
                    raise ShapingError(f"n={n} exceeds the burst ({burst}) of key {burst_key!r}")
                requests.append(i)
            requests[mark] = len(requests) - mark - 1
        args = ["1" if force else "0", n, len(chunk), len(keys_out), *params, *requests]
        return keys_out, args

    @staticmethod
    def _check_n(n: Any) -> int:
        if type(n) is not int:
            raise ShapingError(f"n must be an int, got {type(n).__name__}")
        if n < 1:
            raise ShapingError(f"n must be at least 1, got {n}")
        return n

    def _run(self, batch: Sequence[Any], n: int, force: bool) -> list[int]:
        """Waits in µs, one per request, from as few round trips as possible."""
        calls = []
        for start in range(0, len(batch), self._batch):
            calls.append(self._encode(batch[start : start + self._batch], n, force))
        if not calls:
            return []
        import redis

        try:
            if len(calls) == 1:
                results = [self._script(keys=calls[0][0], args=calls[0][1])]
            else:
                pipe = self._client.pipeline(transaction=False)
                for keys, args in calls:
                    self._script(keys=keys, args=args, client=pipe)
                results = pipe.execute()
        except redis.RedisError as exc:
            error = _redis_failure(exc)
            if isinstance(error, ShapingError):
                raise error from exc
            if not self._down:
                _log.warning(
                    "shaping.redis_unavailable",
                    error=type(exc).__name__,
                    fallback=self._fallback is not None,
                )
            self._down = True
            raise error from exc
        if self._down:
            _log.info("shaping.redis_available")
            self._down = False
        self.last_server_time = int(results[-1][-1]) / 1e6
        return [int(w) for r in results for w in r[:-1]]

    # -- decisions ----------------------------------------------------------

    def acquire(self, keys: str | Sequence[str], n: int = 1) -> Decision:
        """Charge every key by ``n`` or none of them, atomically across all clients."""
        n = self._check_n(n)
        try:
            wait = self._run([keys], n, False)[0]
        except ShaperUnavailable:
            if self._fallback is None:
                raise
            return self._fallback.acquire(keys, n)
        return ALLOWED if wait == 0 else Decision(False, wait / 1e6)

    def acquire_many(self, batch: Sequence[str | Sequence[str]], n: int = 1) -> list[Decision]:
        """Decide a batch in order (one round trip; ``batch_size`` requests per script call)."""
        n = self._check_n(n)
        if not isinstance(batch, (list, tuple)):
            raise ShapingError(f"batch must be a list or tuple, got {type(batch).__name__}")
        try:
            waits = self._run(batch, n, False)
        except ShaperUnavailable:
            if self._fallback is None:
                raise
            return self._fallback.acquire_many(list(batch), n)
        return [ALLOWED if w == 0 else Decision(False, w / 1e6) for w in waits]

    def reserve(self, keys: str | Sequence[str], n: int = 1) -> float:
        """Charge unconditionally; return the local clock time at which the send may go."""
        n = self._check_n(n)
        try:
            wait = self._run([keys], n, True)[0]
        except ShaperUnavailable:
            if self._fallback is None:
                raise
            return self._fallback.reserve(keys, n)
        return self._clock() + wait / 1e6

    async def _acquire_off_loop(self, keys: Any, n: int) -> Any:
        """``acquire`` in a worker thread: the Redis call blocks."""
        return await asyncio.to_thread(self.acquire, keys, n)

    # -- backoff --------------------------------------------------------------

    def block_for(self, key: str, seconds: float) -> None:
        """Admit nothing on ``key`` for ``seconds``, for every client (a server's Retry-After)."""
        s = check_seconds(seconds, "block duration")
        if s > MAX_PER:
            raise ShapingError(f"block duration must be at most 366 days, got {seconds!r}")
        params = self._params(key)
        if params is None:
            return
        iv, tol, _burst = params
        import redis

        try:
            self._block(keys=[self._base + key], args=[math.ceil(s * 1e6), tol, iv])
        except redis.RedisError as exc:
            raise _redis_failure(exc) from exc

    def throttle(self, key: str, factor: float, duration: float) -> None:
        """Cut ``key``'s rate to ``factor`` (0.01 to 1) on every client, recovering gradually.

        As ``Shaper.throttle``: the burst is not raised, so the window guarantee
        holds. The throttle lives in Redis next to the key's state.
        """
        number = isinstance(factor, (int, float)) and not isinstance(factor, bool)
        f = float(factor) if number else -1.0
        if not (math.isfinite(f) and 0.01 <= f <= 1.0):
            raise ShapingError(f"throttle factor must be between 0.01 and 1, got {factor!r}")
        d = check_seconds(duration, "throttle duration")
        if not 0 < d <= MAX_PER:
            raise ShapingError(f"throttle duration must be in (0, 366 days], got {duration!r}")
        if self._params(key) is None:
            return
        import redis

        try:
            self._throttle(keys=[self._base + key], args=[repr(f), max(1, math.ceil(d * 1e6))])
        except redis.RedisError as exc:
            raise _redis_failure(exc) from exc

    def observe_headers(
        self, key: str, headers: Mapping[str, str] | Iterable[tuple[str, str]]
    ) -> None:
        """Learn from a provider's rate-limit headers, as ``Shaper.observe_headers`` does.

        Blocks (``Retry-After``, ``X-RateLimit-Remaining: 0`` with a reset) are
        shared by every client; a learned ``X-RateLimit-Limit`` changes this
        client's configuration only.
        """
        info = parse_rate_headers(headers, wall_clock=self._wall_clock)
        if "limit" in info:
            current = self.limit_for(key)
            count = int(info["limit"])
            if current is not None and count != current.count:
                burst = min(current.burst, default_burst(count, current.per))
                self.set_limit(key, Limit(count, current.per, burst=burst, unit=current.unit))
        block = info.get("retry_after", 0.0)
        if info.get("remaining") == 0 and "reset" in info:
            block = max(block, info["reset"])
        if block > 0:
            self.block_for(key, min(block, MAX_PER))

    def forget(self, key: str) -> bool:
        """Delete a key's shared state; return whether it had any."""
        if type(key) is not str:
            raise ShapingError(f"keys must be str, got {type(key).__name__}")
        import redis

        try:
            return bool(self._client.delete(self._base + key))
        except redis.RedisError as exc:
            raise _redis_failure(exc) from exc
