"""Outbound rate limiting shared by every worker process on a VM, so the provider never sees more than its quota.

Gunicorn runs several processes with several threads each; a per-process limiter would let each of them spend
the whole quota. The only thing they all share is the disk, so the state lives in a diskcache (SQLite) directory
and every check-and-record is one ``BEGIN IMMEDIATE`` transaction: two processes can never both see the last
free slot.

Why a ring of timestamps rather than a token bucket or counters: the quota must hold in *any* interval of a
window's length, not just aligned ones. A bucket that starts full allows twice the limit across its first
refill, and fixed-window counters allow twice the limit across a window boundary. A sliding log is exact, and
it only ever needs the last ``N`` call times: a new call fits iff the ``N``-th most recent recorded call is at
least ``W`` seconds old (plus a small margin, ``MARGIN_S``, for the provider's view). So each window keeps ``N``
slots used as a ring, plus one metadata row; a check reads that row and one slot, a grant writes one slot and
the row. Per-call cost is O(1) whatever the limit (6900/h is as cheap as 10/s); storage is ``N`` small rows per
window (~7000 rows for 6900/h), ``N`` being the highest limit the directory has seen.

Background calls (cache warming, refreshes) must not starve requests a node is waiting on, so they may only use
a window while it keeps a reserve for foreground calls: they fit iff the ``(N - reserve)``-th most recent call
is older than ``W``, read from the same ring. The reserve is ``max(1, ceil(N / 10))`` of the window's ``N``
(the floored limit), except that a window allowing a single call has no reserve at all, otherwise background
work could never run under it.

Time is ``time.time()``: every process on the machine reads the same wall clock, and its readings stay
meaningful across restarts and reboots, which the directory outlives (a monotonic clock restarts at boot). A
backward clock step is detected (the newest recorded call is in the future) and absorbed by shifting the ring so
that call is "now", which keeps the spacing between recorded calls, and so the guarantee. A forward step makes
past calls look older and can let one extra window's worth through once; nothing on one VM can detect that.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import diskcache

from app.core.credits import month_of
from app.core.provider_limits import RateLimit
from app.observe.logs import LogThrottle
from app.stores.local_cache import open_store

log = logging.getLogger("pyea.ratelimit")

# Seconds a check waits for SQLite's write lock. Kept short: a caller that cannot learn whether it may call
# is better told "not now" (and retries) than held behind a stuck writer.
LOCK_TIMEOUT_S = 0.5
# The wait reported when the lock could not be taken: long enough not to hammer SQLite, short enough to retry soon.
BUSY_WAIT_S = 0.05
# ``acquire`` re-checks at least this often, so a slot freed early (a limit raised, a clock step) is noticed.
MAX_SLEEP_S = 0.25
# Extra age the N-th most recent call must have before another is allowed. Grants pack calls exactly one window
# apart, and the provider sees each call a variable delay after its grant (scheduling, connection set-up,
# network), so without slack a later call that travels faster lands inside the earlier call's window.
MARGIN_S = 0.05
# At most one "store busy" warning per this many seconds: under contention it would otherwise flood the log.
BUSY_LOG_EVERY_S = 60.0

_UNITS = {1: "second", 60: "minute", 3600: "hour"}


@dataclass(frozen=True)
class Window:
    """One enforced window: at most ``allowed`` calls in any ``seconds``-long interval, ``background`` of them
    from background work."""

    seconds: int
    configured: float
    allowed: int
    background: int


def windows(limit: RateLimit) -> list[Window]:
    """The windows ``limit`` enforces, shortest first; a fractional limit rounds down, but never to zero, so a
    quota below one call per window still lets calls through rather than blocking forever."""
    result = []
    for seconds, value in ((1, limit.per_second), (60, limit.per_minute), (3600, limit.per_hour)):
        if value is None or (seconds != 60 and value <= 0):
            continue
        allowed = max(1, math.floor(value))
        reserve = 0 if allowed == 1 else max(1, -(-allowed // 10))  # integer ceil: 0.1 * 30 is 3.0000000000000004
        result.append(Window(seconds, float(value), allowed, allowed - reserve))
    return result


def describe(limit: RateLimit, wait_s: float) -> str:
    """The message for a 429, so an operator can tell which quota was hit and where it was configured.

    Only the wait is known here, so the binding window is inferred: a window can make a caller wait at most its
    own length (plus the margin), hence the shortest enforced window that long. A longer window that happens to
    free up as soon can be misnamed; the retry time is right either way.
    """
    enforced = windows(limit)
    window = next((w for w in enforced if w.seconds + MARGIN_S >= wait_s), enforced[-1])
    calls = "call" if window.configured == 1 else "calls"
    retry = math.ceil(wait_s * 10) / 10  # rounded up, so retrying when told to succeeds
    retry_text = f"{retry:.1f} s" if retry < 10 else f"{math.ceil(wait_s)} s"
    return (f"provider rate limit reached ({window.configured:g} {calls} per {_UNITS[window.seconds]}, "
            f"{limit.source}); retry in {retry_text}")


@dataclass
class _Ring:
    """A window's stored state: slots ``0..size-1`` hold call times (minus ``offset``), oldest at
    ``(next - filled) % size``; ``newest`` is the latest call time, kept to detect a clock stepping back."""

    size: int
    next: int
    filled: int
    newest: float
    offset: float

    def position(self, k: int) -> int:
        """The slot of the ``k``-th most recent call (``k`` = 1 is the latest)."""
        return (self.next - k) % self.size


class RateLimiter:
    """The provider's quota, enforced across every process that opens ``directory``.

    ``name`` (the provider) prefixes the keys, so one directory can hold several providers' limiters.
    ``margin_s`` is added to every window's length (see ``MARGIN_S``); 0 gives the exact limit on grant times.
    """

    def __init__(self, directory: str, limit: RateLimit, name: str, *, margin_s: float = MARGIN_S) -> None:
        self._setup(limit, name, margin_s)
        # Nothing here may ever be evicted or expire: a lost call time would let the quota be overdrawn.
        self._store = open_store(directory, LOCK_TIMEOUT_S, eviction_policy="none", cull_limit=0)

    def _setup(self, limit: RateLimit, name: str, margin_s: float) -> None:
        self.limit = limit
        self.name = name
        self.windows = windows(limit)
        self.margin_s = margin_s
        self._counter_lock = threading.Lock()
        self._turn = threading.Lock()
        self.granted = 0
        self.refused = 0
        self.waited_s = 0.0
        self._busy_warnings = LogThrottle(BUSY_LOG_EVERY_S)

    def try_acquire(self, background: bool = False) -> float:
        """Record one call and return 0.0 if it is allowed now; else record nothing and return the seconds until
        one would be allowed (a lower bound: other callers may take that slot first; a short retry hint,
        ``BUSY_WAIT_S``, when the store was too busy to answer)."""
        # Threads of one process queue on a plain lock before contending for SQLite's: a thread waiting on the
        # lock wakes as soon as it is free, while SQLite's busy handler polls with growing sleeps (up to 100 ms)
        # and lets a lucky newcomer in first, which left some callers waiting half a second under contention.
        if not self._turn.acquire(timeout=LOCK_TIMEOUT_S):
            self._log_busy()
            wait = BUSY_WAIT_S
        else:
            try:
                wait = self._check_and_record(background)
            except diskcache.Timeout:
                self._log_busy()
                wait = BUSY_WAIT_S
            finally:
                self._turn.release()
        return self._counted(wait)

    def _counted(self, wait: float) -> float:
        with self._counter_lock:
            if wait <= 0:
                self.granted += 1
            else:
                self.refused += 1
        return 0.0 if wait <= 0 else wait

    def wait_for_slot(self, timeout_s: float, background: bool = False) -> float:
        """Wait up to ``timeout_s`` for permission: 0.0 when a call was recorded, else the seconds until a slot
        would free up (more than was left of the timeout).

        Gives up at once when the reported wait exceeds what is left of the timeout: calls are only ever added,
        so the slot cannot free up sooner, and holding a thread until the deadline would only delay the 429.
        Sleeps never reach past the deadline; only a check in progress can (normally well under a millisecond, at
        most about ``2 * LOCK_TIMEOUT_S`` when the store is jammed).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            wait = self.try_acquire(background)
            if wait <= 0:
                return 0.0
            remaining = deadline - time.monotonic()
            if wait > remaining:
                return wait
            pause = min(wait, MAX_SLEEP_S)
            time.sleep(pause)
            with self._counter_lock:
                self.waited_s += pause

    def usage(self) -> dict[str, int]:
        """Calls recorded in each enforced window right now, for /status and metrics; -1 when the store was too
        busy to read (a guess would be worse than saying so)."""
        try:
            with self._store.transact():
                now = self._now()
                return {f"{w.seconds}s": self._count(w, self._load(w, now), now) for w in self.windows}
        except diskcache.Timeout:
            return {f"{w.seconds}s": -1 for w in self.windows}

    def close(self) -> None:
        self._store.close()

    def _check_and_record(self, background: bool) -> float:
        with self._store.transact():
            # Read the clock only once the lock is held: a time taken before waiting for it could be older than a
            # call another process recorded meanwhile, and would expire before the real call does.
            now = self._now()
            rings = [self._load(window, now) for window in self.windows]
            wait = max(self._wait(window, ring, now, background)
                       for window, ring in zip(self.windows, rings, strict=True))
            if wait <= 0:
                for window, ring in zip(self.windows, rings, strict=True):
                    self._record(window, ring, now)
                self._store.incr(self._month_key(now))
        return wait

    def _month_key(self, now: float) -> str:
        return f"credits:{self.name}:{month_of(int(now * 1000))[0]}"

    def month_used(self) -> int:
        """Calls granted this calendar month (UTC) by every process sharing the store, across restarts; -1 when
        the store was too busy to read."""
        try:
            return int(self._store.get(self._month_key(self._now()), 0))
        except diskcache.Timeout:
            return -1

    def _log_busy(self) -> None:
        if self._busy_warnings.ready():
            log.warning("rate limit store busy for %s s; treating calls as not allowed yet", LOCK_TIMEOUT_S)

    def _now(self) -> float:
        """The shared clock; a method so tests can observe or control the exact time a call is recorded at."""
        return time.time()

    def _key(self, window: Window, slot: int | None = None) -> str:
        base = f"ratelimit:{self.name}:{window.seconds}s"
        return base if slot is None else f"{base}:{slot}"

    def _stamp(self, window: Window, ring: _Ring, slot: int) -> float:
        return self._store.get(self._key(window, slot)) + ring.offset

    def _load(self, window: Window, now: float) -> _Ring:
        """The window's ring, repaired first if the limit grew since it was written or the clock stepped back."""
        stored = self._store.get(self._key(window))
        ring = _Ring(*stored) if stored is not None else _Ring(window.allowed, 0, 0, float("-inf"), 0.0)
        if ring.size < window.allowed:
            ring = self._grow(window, ring)
        if ring.newest > now:
            log.warning("clock stepped back %.3f s; shifting %s's calls in the %s s window", ring.newest - now,
                        self.name, window.seconds)
            ring.offset -= ring.newest - now
            ring.newest = now
            self._save(window, ring)
        return ring

    def _grow(self, window: Window, ring: _Ring) -> _Ring:
        """Re-lay the ring for a raised limit (a new tier after a restart), keeping every recorded call so the new
        limit is enforced against real history rather than from an empty log.

        A ring never shrinks: a lowered limit just looks less far back in it. Shrinking would forget calls, and a
        rolling restart that runs old and new limits side by side would then overdraw the higher one.
        """
        stamps = [self._store.get(self._key(window, ring.position(k))) for k in range(ring.filled, 0, -1)]
        for slot, stamp in enumerate(stamps):
            self._store.set(self._key(window, slot), stamp)
        grown = _Ring(window.allowed, ring.filled % window.allowed, ring.filled, ring.newest, ring.offset)
        self._save(window, grown)
        return grown

    def _wait(self, window: Window, ring: _Ring, now: float, background: bool) -> float:
        """Seconds until this window has room for the caller; <= 0 when it has room now."""
        allowance = window.background if background else window.allowed
        if ring.filled < allowance:
            return 0.0
        return self._stamp(window, ring, ring.position(allowance)) + window.seconds + self.margin_s - now

    def _record(self, window: Window, ring: _Ring, now: float) -> None:
        self._store.set(self._key(window, ring.next), now - ring.offset)
        ring.next = (ring.next + 1) % ring.size
        ring.filled = min(ring.filled + 1, ring.size)
        ring.newest = now
        self._save(window, ring)

    def _save(self, window: Window, ring: _Ring) -> None:
        self._store.set(self._key(window), (ring.size, ring.next, ring.filled, ring.newest, ring.offset))

    def _count(self, window: Window, ring: _Ring, now: float) -> int:
        """Calls within the last ``window.seconds``, by binary search: the ring is in time order, and a linear
        scan of 6900 rows would hold the write lock for no reason."""
        low, high = 0, ring.filled  # the largest k whose k-th most recent call is still inside the window
        while low < high:
            mid = (low + high + 1) // 2
            if self._stamp(window, ring, ring.position(mid)) > now - window.seconds:
                low = mid
            else:
                high = mid - 1
        return low
