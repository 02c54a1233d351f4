"""The embedded cache: diskcache (SQLite) in ``CACHE_DIR``.

Every gunicorn worker on the VM opens the same directory, so a value fetched by one worker is a hit in all of
them, and it survives restarts. Eviction is by write time, not read time: diskcache's LRU policy turns every
read into a disk write, which would serialise the workers' hot path on SQLite's write lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator

import diskcache

from app.core.entries import CacheEntry
from app.core.setting_specs import Problem

log = logging.getLogger("pyea.cache")

MARKER_PREFIX = "inflight:"
PING_KEY = "pyea:ping"
# Seconds a write waits for SQLite's lock; a request must not hang behind a stuck writer.
LOCK_TIMEOUT_S = 2.0


#: SQLite's page cache per connection (diskcache opens one per thread and store) and no memory-mapped reads:
#: diskcache's defaults (32 MiB cache, 64 MiB map) let each worker's memory creep up for minutes as pages are
#: touched. Hot entries are served from the front layer anyway; the kernel's page cache keeps the file warm.
SQLITE_MEMORY = {"sqlite_cache_size": 512, "sqlite_mmap_size": 0}


def open_store(directory: str, timeout_s: float, **settings: object) -> diskcache.Cache:
    """A diskcache store with pyea's memory settings."""
    return diskcache.Cache(directory, timeout=timeout_s, **SQLITE_MEMORY, **settings)


#: The stores kept in CACHE_DIR: the cache itself, then the subscriptions, rate-limit windows, lease and the
#: outcomes of foreground batches.
STORES = ("", "pyea-subscriptions", "pyea-ratelimit", "pyea-leases", "pyea-batches/outcomes")


def directory_problem(directory: str) -> Problem | None:
    """Why pyea cannot keep files in ``directory`` (with Redis too: the lock files that coalesce one machine's
    workers live there), said as a setting problem rather than a traceback when a worker boots."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        return Problem("CACHE_DIR", directory, f"a directory pyea can create ({exc.strerror})")
    if not os.access(directory, os.W_OK | os.X_OK):
        return Problem("CACHE_DIR", directory, "a directory pyea can write to")
    return None


def open_problem(directory: str) -> Problem | None:
    """Why ``directory`` cannot hold pyea's stores: not creatable, not writable, or holding a file that is not a
    cache database (a disk error, or another tool's)."""
    problem = directory_problem(directory)
    if problem is not None:
        return problem
    for store in STORES:
        path = os.path.join(directory, store)
        try:
            open_store(path, LOCK_TIMEOUT_S).close()
        except sqlite3.DatabaseError as exc:
            return Problem("CACHE_DIR", directory, f"a directory of readable cache databases: "
                           f"{os.path.join(path, 'cache.db')} is unusable ({exc}); move it away and restart")
        except OSError as exc:
            return Problem("CACHE_DIR", directory, f"a directory pyea can write to ({path}: {exc.strerror})")
    return None


class LocalCache:
    def __init__(self, directory: str, max_items: int) -> None:
        self.directory = directory
        self.max_items = max_items
        self._cache = open_store(directory, LOCK_TIMEOUT_S,
                                      eviction_policy="least-recently-stored")

    def get(self, key: str) -> CacheEntry | None:
        try:
            raw = self._cache.get(key)
        except diskcache.Timeout:
            log.warning("cache read timed out; treating as a miss")
            return None
        return None if raw is None else CacheEntry.decode(raw)

    def set(self, key: str, entry: CacheEntry, ttl_ms: int) -> bool:
        try:
            if entry.is_success:
                self._cache.set(key, entry.encode(), expire=ttl_ms / 1000)
            else:
                with self._cache.transact():
                    current = self._cache.get(key)
                    if current is not None and CacheEntry.decode(current).is_success:
                        return False
                    self._cache.set(key, entry.encode(), expire=ttl_ms / 1000)
            self._evict_over_limit()
        except diskcache.Timeout:
            log.warning("cache write timed out; value not stored")
            return False
        return True

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Writes inside share one SQLite transaction: a refresh cycle stores thousands of values, and a commit
        each made it the leader's largest cost. If the store is busy, each write takes its own turn instead."""
        with contextlib.ExitStack() as stack:
            with contextlib.suppress(diskcache.Timeout):
                stack.enter_context(self._cache.transact())
            yield

    def touch(self, key: str, ttl_ms: int) -> None:
        try:
            self._cache.touch(key, expire=ttl_ms / 1000)
        except diskcache.Timeout:
            log.warning("cache touch timed out")

    def add_marker(self, key: str, ttl_ms: int) -> bool:
        try:
            return self._cache.add(MARKER_PREFIX + key, os.getpid(), expire=ttl_ms / 1000)
        except diskcache.Timeout:
            return True  # cannot coordinate: fetch ourselves rather than wait on nobody

    def has_marker(self, key: str) -> bool:
        return (MARKER_PREFIX + key) in self._cache

    def delete_marker(self, key: str) -> None:
        self._cache.delete(MARKER_PREFIX + key, retry=True)

    def ping(self) -> None:
        self._cache.set(PING_KEY, "ok", expire=60)
        if self._cache.get(PING_KEY) != "ok":
            raise RuntimeError("cache did not return the value just written")

    def close(self) -> None:
        self._cache.close()

    def __len__(self) -> int:
        return len(self._cache)

    def _evict_over_limit(self) -> None:
        if len(self._cache) <= self.max_items:
            return
        self._cache.expire()
        excess = len(self._cache) - self.max_items
        if excess <= 0:
            return
        # diskcache culls only by size in bytes; counting items needs its store-time index directly.
        rows = self._cache._sql("SELECT key FROM Cache ORDER BY store_time LIMIT ?", (excess,)).fetchall()
        for (key,) in rows:
            self._cache.delete(key)
