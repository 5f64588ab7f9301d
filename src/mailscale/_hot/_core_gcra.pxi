# GCRA rate-limit table, compiled. Twin: mailscale/_hot/_core_gcra_py.py (the reference).
# Per-key state lives in one C array of slots (open addressing on hash(key),
# linear probing), parameters in C arrays indexed by id: no Python object per
# key and none per admitted request. A throttled key points at a throttle entry
# (factor, start, end) that scales its rule's live parameters at decision time.

from libc.stdint cimport int64_t, int32_t, INT64_MIN
from libc.math cimport floor, ceil, isfinite
from libc.stdlib cimport malloc, calloc, realloc, free
from heapq import heappush as _heappush, heappop as _heappop
from cpython.object cimport PyObject_Hash
from cpython.unicode cimport PyUnicode_CheckExact
from cpython.long cimport PyLong_CheckExact
from cpython.list cimport PyList_CheckExact
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_GET_SIZE, PyTuple_GET_ITEM

from mailscale._hot._decision import ALLOWED as _ALLOWED, Decision as _Decision
from mailscale._hot._decision import MAX_KEYS_PER_CALL as _MAX_KEYS_PER_CALL
from mailscale.errors import ShapingError as _ShapingError

# The decision type (mailscale/_hot/_decision.py) is shared with the twin, so
# results compare equal; the gateway exports it, not this module.

cdef int64_t _G_MAX_NOW = (<int64_t>1) << 61
cdef int64_t _G_MAX_AHEAD = (<int64_t>1) << 60
cdef int64_t _G_MAX_PARAM = (<int64_t>1) << 55
cdef Py_ssize_t _G_MIN_CAP = 256
cdef int _G_MAXK = 32
cdef int64_t _G_NEVER = INT64_MIN  # end of a throttle that never was


cdef struct _GSlot:
    int64_t h
    int64_t tat
    int32_t pid      # -1: empty
    int32_t thr      # throttle entry, -1: none (-2: marked for eviction during a rebuild)


cdef inline int64_t _g_to_ns(object t) except? -1:
    cdef double x
    try:
        x = float(t)
    except (TypeError, ValueError):
        raise _ShapingError(f"clock returned a non-number: {type(t).__name__}") from None
    cdef double d = x * 1e9
    if not isfinite(x) or not (-<double>_G_MAX_NOW < d < <double>_G_MAX_NOW):
        raise _ShapingError(f"clock returned an unusable time: {t!r}")
    return <int64_t>floor(d + 0.5)


cdef class GCRATable:
    """Per-key GCRA state with shared, reconfigurable parameters (compiled)."""

    cdef _GSlot* _slots
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _used
    cdef Py_ssize_t _gen
    cdef object _resolver
    cdef object _clock
    cdef int64_t _sweep_ns
    cdef int64_t _next_sweep
    cdef int64_t* _interval
    cdef int64_t* _tolerance
    cdef int64_t* _burst
    cdef char* _alive
    cdef int64_t* _refs     # keys pointing at each parameter id
    cdef list _free         # retired ids no key points at (a heap)
    cdef double* _thr_factor
    cdef int64_t* _thr_start
    cdef int64_t* _thr_end
    cdef Py_ssize_t _nparams
    cdef Py_ssize_t _pcap
    cdef Py_ssize_t _nthr
    cdef Py_ssize_t _tcap
    cdef list _thr_free

    def __cinit__(self, *args, **kwargs):
        self._slots = NULL
        self._interval = NULL
        self._tolerance = NULL
        self._burst = NULL
        self._alive = NULL
        self._refs = NULL
        self._thr_factor = NULL
        self._thr_start = NULL
        self._thr_end = NULL

    def __init__(self, resolver, clock, sweep_interval=60.0):
        cdef double si
        cdef Py_ssize_t i
        self._resolver = resolver
        self._clock = clock
        si = float(sweep_interval)
        if not (isfinite(si) and 0.0 < si <= 1e6):
            raise _ShapingError(
                f"sweep_interval must be a positive number of seconds, got {sweep_interval!r}"
            )
        self._sweep_ns = <int64_t>floor(si * 1e9 + 0.5)
        self._next_sweep = -((<int64_t>1) << 62)
        self._thr_free = []
        self._free = []
        self._nparams = 0
        self._pcap = 0
        self._nthr = 0
        self._tcap = 0
        free(self._slots)
        self._slots = <_GSlot*>malloc(_G_MIN_CAP * sizeof(_GSlot))
        if self._slots == NULL:
            raise MemoryError()
        for i in range(_G_MIN_CAP):
            self._slots[i].pid = -1
        self._cap = _G_MIN_CAP
        self._used = 0
        self._gen = 0

    def __dealloc__(self):
        free(self._slots)
        free(self._interval)
        free(self._tolerance)
        free(self._burst)
        free(self._alive)
        free(self._refs)
        free(self._thr_factor)
        free(self._thr_start)
        free(self._thr_end)

    # -- parameters ---------------------------------------------------------

    cdef int _grow_params(self) except -1:
        cdef Py_ssize_t cap = self._pcap * 2 if self._pcap else 16
        cdef void* p
        p = realloc(self._interval, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._interval = <int64_t*>p
        p = realloc(self._tolerance, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._tolerance = <int64_t*>p
        p = realloc(self._burst, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._burst = <int64_t*>p
        p = realloc(self._alive, cap * sizeof(char))
        if p == NULL:
            raise MemoryError()
        self._alive = <char*>p
        p = realloc(self._refs, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._refs = <int64_t*>p
        self._pcap = cap
        return 0

    cdef int _grow_throttles(self) except -1:
        cdef Py_ssize_t cap = self._tcap * 2 if self._tcap else 16
        cdef void* p
        p = realloc(self._thr_factor, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self._thr_factor = <double*>p
        p = realloc(self._thr_start, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._thr_start = <int64_t*>p
        p = realloc(self._thr_end, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._thr_end = <int64_t*>p
        self._tcap = cap
        return 0

    @staticmethod
    def _check_param(interval_ns, tolerance_ns, burst):
        if not (type(interval_ns) is int and type(tolerance_ns) is int and type(burst) is int):
            raise _ShapingError("interval, tolerance and burst must be ints")
        if not (0 <= interval_ns <= _G_MAX_PARAM and 0 <= tolerance_ns <= _G_MAX_PARAM):
            raise _ShapingError("interval and tolerance must be between 0 and 2**55 ns")
        if not 1 <= burst <= 1_000_000_000:
            raise _ShapingError("burst must be between 1 and 10**9")
        if interval_ns * burst > tolerance_ns:
            raise _ShapingError("tolerance must cover burst emission intervals")

    def add_param(self, interval_ns, tolerance_ns, burst):
        """Register parameters (emission interval, tolerance, burst); return their id."""
        GCRATable._check_param(interval_ns, tolerance_ns, burst)
        cdef Py_ssize_t pid
        if self._free:
            pid = _heappop(self._free)
        else:
            if self._nparams == self._pcap:
                self._grow_params()
            pid = self._nparams
            self._nparams += 1
            self._refs[pid] = 0
        self._interval[pid] = interval_ns
        self._tolerance[pid] = tolerance_ns
        self._burst[pid] = burst
        self._alive[pid] = 1
        return pid

    cdef Py_ssize_t _live_pid(self, object pid) except -1:
        if not PyLong_CheckExact(pid) or not (0 <= pid < self._nparams) or not self._alive[<Py_ssize_t>pid]:
            raise _ShapingError(f"unknown parameter id {pid!r}")
        return <Py_ssize_t>pid

    def set_param(self, pid, interval_ns, tolerance_ns, burst):
        """Change parameters in place: every key using them follows at once."""
        cdef Py_ssize_t p = self._live_pid(pid)
        GCRATable._check_param(interval_ns, tolerance_ns, burst)
        self._interval[p] = interval_ns
        self._tolerance[p] = tolerance_ns
        self._burst[p] = burst

    cdef int _ref(self, Py_ssize_t i, Py_ssize_t p) except -1:
        """Point slot ``i`` (already holding a parameter id) at ``p``, keeping the counts."""
        cdef Py_ssize_t old = self._slots[i].pid
        self._slots[i].pid = <int32_t>p
        self._refs[p] += 1
        return self._unref(old)

    cdef int _unref(self, Py_ssize_t p) except -1:
        self._refs[p] -= 1
        if self._refs[p] == 0 and not self._alive[p]:
            _heappush(self._free, p)
        return 0

    cdef inline void _release_thr(self, Py_ssize_t i):
        cdef int32_t t = self._slots[i].thr
        if t >= 0:
            self._slots[i].thr = -1
            _heappush(self._thr_free, t)

    cdef inline bint _throttled(self, Py_ssize_t i, int64_t now) noexcept:
        cdef int32_t t = self._slots[i].thr
        return t >= 0 and self._thr_end[t] > now

    def free_param(self, pid):
        """Retire parameters: keys using them are resolved again on next use.

        A retired id is reused only once no key points at it any more, so a key
        still pointing at one can always tell.
        """
        cdef Py_ssize_t p = self._live_pid(pid)
        self._alive[p] = 0
        if self._refs[p] == 0:
            _heappush(self._free, p)

    def param(self, pid):
        """Return ``(interval_ns, tolerance_ns, burst)`` of a parameter id."""
        cdef Py_ssize_t p = self._live_pid(pid)
        return (self._interval[p], self._tolerance[p], self._burst[p])

    cdef inline int64_t _interval_at(self, int64_t iv, int32_t t, int64_t now) noexcept:
        cdef int64_t end, start
        cdef double f, frac, m
        if t < 0:
            return iv
        end = self._thr_end[t]
        if now >= end:
            return iv
        start = self._thr_start[t]
        f = self._thr_factor[t]
        frac = <double>(now - start) / <double>(end - start)
        if frac < 0.0:
            frac = 0.0
        m = f + (1.0 - f) * frac
        return <int64_t>ceil(<double>iv / m)

    # -- the slot table -----------------------------------------------------

    cdef inline Py_ssize_t _find(self, int64_t h) noexcept:
        cdef Py_ssize_t mask = self._cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(<unsigned long long>h & <unsigned long long>mask)
        while True:
            if self._slots[i].pid < 0:
                return -1
            if self._slots[i].h == h:
                return i
            i = (i + 1) & mask

    cdef int _rebuild(self, int64_t now) except -1:
        """Evict rested slots (TAT before now, not throttled) and resize; bump the generation."""
        cdef Py_ssize_t i, j, mask, survivors = 0, cap, evicted
        cdef _GSlot* old = self._slots
        cdef _GSlot* new
        for i in range(self._cap):
            if old[i].pid < 0:
                continue
            if old[i].tat < now and not self._throttled(i, now):
                self._release_thr(i)
                old[i].thr = -2
                self._unref(old[i].pid)
            else:
                survivors += 1
        cap = _G_MIN_CAP
        while cap < survivors * 2 + 2:
            cap *= 2
        new = <_GSlot*>malloc(cap * sizeof(_GSlot))
        if new == NULL:
            raise MemoryError()
        for i in range(cap):
            new[i].pid = -1
        mask = cap - 1
        for i in range(self._cap):
            if old[i].pid < 0 or old[i].thr == -2:
                continue
            j = <Py_ssize_t>(<unsigned long long>old[i].h & <unsigned long long>mask)
            while new[j].pid >= 0:
                j = (j + 1) & mask
            new[j] = old[i]
        free(old)
        self._slots = new
        self._cap = cap
        evicted = self._used - survivors
        self._used = survivors
        self._gen += 1
        return <int>evicted

    cdef Py_ssize_t _insert(self, int64_t h, int64_t now, int32_t pid) except -1:
        cdef Py_ssize_t mask, i
        if (self._used + 1) * 8 > self._cap * 5:
            self._rebuild(now)
        mask = self._cap - 1
        i = <Py_ssize_t>(<unsigned long long>h & <unsigned long long>mask)
        while self._slots[i].pid >= 0:
            i = (i + 1) & mask
        self._slots[i].h = h
        self._slots[i].tat = now
        self._slots[i].pid = pid
        self._slots[i].thr = -1
        self._refs[pid] += 1
        self._used += 1
        return i

    cdef Py_ssize_t _slot(self, object key, int64_t now) except -1:
        """Index of key's slot, inserting and resolving it when needed."""
        cdef int64_t h
        cdef Py_ssize_t i, p
        cdef Py_ssize_t gen, old
        if not PyUnicode_CheckExact(key):
            raise _ShapingError(f"keys must be str, got {type(key).__name__}")
        h = <int64_t>PyObject_Hash(key)
        i = self._find(h)
        if i < 0:
            p = self._live_pid(self._resolver(key))
            # The resolver is Python code: another thread may have added the key meanwhile.
            i = self._find(h)
            if i >= 0:
                return i
            return self._insert(h, now, <int32_t>p)
        cdef _GSlot* sl = &self._slots[i]
        if sl.thr >= 0 and now >= self._thr_end[sl.thr]:
            self._release_thr(i)
        if not self._alive[sl.pid]:
            gen = self._gen
            p = self._live_pid(self._resolver(key))
            if gen != self._gen:
                i = self._find(h)
                if i < 0:
                    return self._insert(h, now, <int32_t>p)
            self._ref(i, p)
        return i

    def now_ns(self):
        """The injected clock, in integer nanoseconds."""
        return _g_to_ns(self._clock())

    def bind(self, key, pid):
        """Make ``key`` use parameter id ``pid`` (its TAT and throttle are kept)."""
        cdef int64_t now = _g_to_ns(self._clock())
        cdef Py_ssize_t p = self._live_pid(pid)
        cdef Py_ssize_t i = self._slot(key, now)
        self._ref(i, p)

    def key_param(self, key):
        """The parameter id limiting ``key`` (resolving it when new)."""
        cdef int64_t now = _g_to_ns(self._clock())
        return self._slots[self._slot(key, now)].pid

    def forget(self, key):
        """Drop a key's state; return whether it was live (not yet drained, or throttled)."""
        cdef Py_ssize_t i, j, k, mask
        cdef int32_t p
        cdef bint live
        if not PyUnicode_CheckExact(key):
            raise _ShapingError(f"keys must be str, got {type(key).__name__}")
        cdef int64_t now = _g_to_ns(self._clock())
        i = self._find(<int64_t>PyObject_Hash(key))
        if i < 0:
            return False
        live = self._slots[i].tat >= now or self._throttled(i, now)
        self._release_thr(i)
        self._unref(self._slots[i].pid)
        # Backward-shift deletion keeps linear-probing chains intact.
        mask = self._cap - 1
        j = i
        while True:
            self._slots[i].pid = -1
            while True:
                j = (j + 1) & mask
                if self._slots[j].pid < 0:
                    self._used -= 1
                    self._gen += 1
                    return live
                k = <Py_ssize_t>(<unsigned long long>self._slots[j].h & <unsigned long long>mask)
                if (i <= j and (i < k <= j)) or (i > j and (i < k or k <= j)):
                    continue
                break
            self._slots[i] = self._slots[j]
            i = j

    def tat(self, key):
        """The key's theoretical arrival time in ns, or None when it holds no state."""
        if not PyUnicode_CheckExact(key):
            raise _ShapingError(f"keys must be str, got {type(key).__name__}")
        cdef Py_ssize_t i = self._find(<int64_t>PyObject_Hash(key))
        return None if i < 0 else self._slots[i].tat

    def throttle(self, key, factor, duration_ns):
        """Lower ``key``'s rate to ``factor`` now, recovering linearly over ``duration_ns``."""
        cdef double f = float(factor)
        if not (isfinite(f) and 0.01 <= f <= 1.0):
            raise _ShapingError(f"throttle factor must be between 0.01 and 1, got {factor!r}")
        if type(duration_ns) is not int or not 0 < duration_ns <= _G_MAX_AHEAD:
            raise _ShapingError("throttle duration must be positive and below 2**60 ns")
        cdef int64_t now = _g_to_ns(self._clock())
        cdef Py_ssize_t i = self._slot(key, now)
        cdef Py_ssize_t t = self._slots[i].thr
        if t < 0:
            if self._thr_free:
                t = _heappop(self._thr_free)
            else:
                if self._nthr == self._tcap:
                    self._grow_throttles()
                t = self._nthr
                self._nthr += 1
            self._slots[i].thr = <int32_t>t
        self._thr_factor[t] = f
        self._thr_start[t] = now
        self._thr_end[t] = now + <int64_t>duration_ns

    def block_until(self, key, until_ns):
        """Admit nothing on ``key`` before ``until_ns`` (server said Retry-After)."""
        if type(until_ns) is not int:
            raise _ShapingError("until_ns must be an int")
        cdef int64_t now = _g_to_ns(self._clock())
        if until_ns - now > _G_MAX_AHEAD:
            raise _ShapingError("cannot block a key for more than 2**60 ns")
        # A time far in the past blocks nothing, as on the twin; bounded so that
        # it fits an int64 (tat never lies 2**62 ns behind the clock).
        if until_ns < now - (1 << 62):
            until_ns = now - (1 << 62)
        cdef int64_t until = until_ns
        cdef Py_ssize_t i = self._slot(key, now)
        cdef Py_ssize_t p = self._slots[i].pid
        cdef int64_t target = until + self._tolerance[p] - self._interval[p]
        if target > self._slots[i].tat:
            self._slots[i].tat = target

    def __len__(self):
        return self._used

    def sweep(self):
        """Evict rested keys (TAT in the past, not throttled); return how many."""
        cdef int64_t now = _g_to_ns(self._clock())
        self._next_sweep = now + self._sweep_ns
        return self._rebuild(now)

    # -- decisions ----------------------------------------------------------

    cdef inline int64_t _tick(self) except? -1:
        cdef int64_t now = _g_to_ns(self._clock())
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_ns
            self._rebuild(now)
        return now

    cdef int64_t _check_n(self, object n) except -1:
        if not PyLong_CheckExact(n):
            raise _ShapingError(f"n must be an int, got {type(n).__name__}")
        if n < 1:
            raise _ShapingError(f"n must be at least 1, got {n}")
        if n > 1_000_000_000:
            raise _ShapingError(f"n={n} exceeds the burst of a key's limit")
        return <int64_t>n

    cdef int _collect(self, object keys, int64_t n, int64_t now, Py_ssize_t* out) except -1:
        """Fill ``out`` with the distinct slot indices of keys; return how many."""
        cdef Py_ssize_t m, a, b, i
        cdef Py_ssize_t gen
        cdef int k
        cdef bint tup
        cdef object key
        if PyUnicode_CheckExact(keys):
            out[0] = self._slot(keys, now)
            if n > self._burst[self._slots[out[0]].pid]:
                self._burst_error(keys, out[0], n)
            return 1
        if not (PyTuple_CheckExact(keys) or PyList_CheckExact(keys) or isinstance(keys, (tuple, list))):
            raise _ShapingError(
                f"keys must be a str or a tuple/list of str, got {type(keys).__name__}"
            )
        m = PyTuple_GET_SIZE(keys) if PyTuple_CheckExact(keys) else len(keys)
        if m == 0:
            raise _ShapingError("keys must name at least one key")
        if m > _G_MAXK:
            raise _ShapingError(f"at most {_MAX_KEYS_PER_CALL} keys per request, got {m}")
        tup = PyTuple_CheckExact(keys)
        while True:
            gen = self._gen
            k = 0
            for a in range(m):
                if tup:
                    key = <object>PyTuple_GET_ITEM(keys, a)
                else:
                    key = keys[a]
                i = self._slot(key, now)
                if n > self._burst[self._slots[i].pid]:
                    self._burst_error(key, i, n)
                for b in range(k):
                    if out[b] == i:
                        break
                else:
                    out[k] = i
                    k += 1
            if gen == self._gen:
                return k

    cdef int _burst_error(self, object key, Py_ssize_t i, int64_t n) except -1:
        raise _ShapingError(
            f"n={n} exceeds the burst ({self._burst[self._slots[i].pid]}) of key {key!r}"
        )

    cdef int64_t _decide(self, Py_ssize_t* idx, int k, int64_t n, int64_t now, bint force) except -1:
        """Charge all slots or none; return ns to wait (0 when admitted)."""
        cdef int64_t worst = 0, tat, new, wait, iv, base
        cdef int64_t news[32]
        cdef int a
        cdef Py_ssize_t p
        cdef _GSlot* sl
        for a in range(k):
            sl = &self._slots[idx[a]]
            p = sl.pid
            tat = sl.tat
            if tat < now:
                tat = now
            base = self._interval[p]
            iv = base if sl.thr < 0 else self._interval_at(base, sl.thr, now)
            new = tat + n * iv
            # Admit when tat + (n - 1) * iv <= now + tolerance - base interval (see the twin).
            wait = new - iv + base - self._tolerance[p] - now
            if wait > worst:
                worst = wait
            news[a] = new
        if force:
            for a in range(k):
                if news[a] - now > _G_MAX_AHEAD:
                    raise _ShapingError("reservation lies more than 2**60 ns ahead")
        elif worst > 0:
            return worst
        for a in range(k):
            self._slots[idx[a]].tat = news[a]
        return worst

    def acquire(self, keys, n=1):
        """Charge every key's limit by ``n``, or none of them; say when to retry."""
        cdef Py_ssize_t idx[32]
        cdef int64_t now = self._tick()
        cdef int64_t nn = self._check_n(n)
        cdef int k = self._collect(keys, nn, now, idx)
        cdef int64_t wait = self._decide(idx, k, nn, now, False)
        if wait == 0:
            return _ALLOWED
        return _Decision(False, <double>wait / 1e9)

    def reserve(self, keys, n=1):
        """Charge every key by ``n`` unconditionally; return the clock time the send may go."""
        cdef Py_ssize_t idx[32]
        cdef int64_t now = self._tick()
        cdef int64_t nn = self._check_n(n)
        cdef int k = self._collect(keys, nn, now, idx)
        cdef int64_t wait = self._decide(idx, k, nn, now, True)
        return <double>(now + wait) / 1e9

    def acquire_many(self, batch, n=1):
        """Decide a batch of requests (each a key or a tuple of keys) in order, at one instant.

        The whole batch is validated before anything is charged.
        """
        cdef int64_t now = self._tick()
        cdef int64_t nn = self._check_n(n)
        cdef Py_ssize_t count, total, j, off, gen
        cdef object item
        cdef Py_ssize_t* idx
        cdef int* ks
        cdef int64_t* waits
        cdef int64_t wait, last_wait
        cdef object last
        cdef list out
        cdef tuple seq
        if not isinstance(batch, (list, tuple)):
            raise _ShapingError(f"batch must be a list or tuple, got {type(batch).__name__}")
        # A snapshot: items stay alive and in place whatever Python code runs meanwhile.
        seq = batch if PyTuple_CheckExact(batch) else tuple(batch)
        count = PyTuple_GET_SIZE(seq)
        # Room for every key of every item (items over the per-request cap raise in _collect).
        total = 0
        for j in range(count):
            item = <object>PyTuple_GET_ITEM(seq, j)
            if PyUnicode_CheckExact(item):
                total += 1
            elif PyTuple_CheckExact(item):
                total += min(PyTuple_GET_SIZE(item), _G_MAXK)
            else:
                total += _G_MAXK
        idx = <Py_ssize_t*>malloc((total + 1) * sizeof(Py_ssize_t))
        ks = <int*>malloc((count + 1) * sizeof(int))
        waits = <int64_t*>malloc((count + 1) * sizeof(int64_t))
        if idx == NULL or ks == NULL or waits == NULL:
            free(idx)
            free(ks)
            free(waits)
            raise MemoryError()
        try:
            while True:
                gen = self._gen
                off = 0
                for j in range(count):
                    ks[j] = self._collect(<object>PyTuple_GET_ITEM(seq, j), nn, now, idx + off)
                    off += ks[j]
                if gen == self._gen:
                    break
            # Decide every request before creating any Python object: object
            # creation may run Python code (and let another thread touch the table).
            off = 0
            for j in range(count):
                waits[j] = self._decide(idx + off, ks[j], nn, now, False)
                off += ks[j]
            out = []
            last_wait = 0
            last = _ALLOWED
            for j in range(count):
                wait = waits[j]
                if wait == 0:
                    out.append(_ALLOWED)
                else:
                    # Refusals at one instant often share their wait: share the (immutable) object.
                    if wait != last_wait:
                        last_wait = wait
                        last = _Decision(False, <double>wait / 1e9)
                    out.append(last)
            return out
        finally:
            free(idx)
            free(ks)
            free(waits)
