"""A small per-process layer in front of the shared cache, for the feeds a node asks for most.

A cache hit otherwise costs a SQLite or Redis read every time. Entries answer from here for ``CACHE_FRONT_TTL``
(sub-second). A successful entry past that is answered once more while one thread of this process reads the
shared cache for it, for at most another ``CACHE_FRONT_TTL``: request threads then never wait on SQLite or Redis
for the feeds they serve most, and do not each open a SQLite connection of their own (about 140 KiB each) just
to re-read them. A value refreshed by another worker is seen at most twice ``CACHE_FRONT_TTL`` later, and so is
the expiry of an entry read from the shared cache (one this process stored is never answered past its expiry).

When the shared store is unreachable (Redis down), the same entries are the fallback: a success younger than
``max_age_ms`` (``CACHE_MAX_AGE``, the longest any entry may live) still answers, so hot feeds keep being served
through an outage; anything else is the store's 503.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from app.core.entries import Cache, CacheEntry
from app.core.errors import SharedStoreUnavailable

log = logging.getLogger("pyea.cache")


class FrontCache:
    def __init__(self, backend: Cache, ttl_ms: int, max_age_ms: int, max_items: int = 1024) -> None:
        self.backend = backend
        self.ttl_s = ttl_ms / 1000
        self.max_age_ms = max_age_ms
        self.max_items = max_items
        # key -> (entry, fresh until, answered while being re-read until), in time.monotonic() seconds
        self._entries: dict[str, tuple[CacheEntry, float, float]] = {}
        self._lock = threading.Lock()
        self._due: set[str] = set()
        self._wake = threading.Condition()
        self._closed = False
        self._rereader: threading.Thread | None = None

    def get(self, key: str) -> CacheEntry | None:
        found = self._entries.get(key)
        now = time.monotonic()
        if found is not None:
            entry, fresh_until, usable_until = found
            if fresh_until > now:
                return entry
            if usable_until > now and entry.is_success:
                self._reread_soon(key)
                return entry
        try:
            entry = self.backend.get(key)
        except SharedStoreUnavailable:
            if found is not None and self._still_valid(found[0]):
                return found[0]
            raise
        if entry is not None:
            self._remember(key, entry, now, self.ttl_s, 2 * self.ttl_s)
        return entry

    def set(self, key: str, entry: CacheEntry, ttl_ms: int) -> bool:
        try:
            stored: bool | None = self.backend.set(key, entry, ttl_ms)
        except SharedStoreUnavailable:
            stored = None  # kept here at least, so this process can serve what it fetched
        if stored is not False:
            # Never answered past its own expiry (a short maxAge), which this process knows here.
            lifetime_s = ttl_ms / 1000
            self._remember(key, entry, time.monotonic(), min(self.ttl_s, lifetime_s), min(2 * self.ttl_s, lifetime_s))
        return bool(stored)

    def batch(self) -> contextlib.AbstractContextManager:
        return self.backend.batch()

    def touch(self, key: str, ttl_ms: int) -> None:
        with contextlib.suppress(SharedStoreUnavailable):  # only an expiry extension: the value is still there
            self.backend.touch(key, ttl_ms)

    def add_marker(self, key: str, ttl_ms: int) -> bool:
        try:
            return self.backend.add_marker(key, ttl_ms)
        except SharedStoreUnavailable:
            return True  # cannot coordinate: fetch ourselves rather than wait on nobody

    def has_marker(self, key: str) -> bool:
        try:
            return self.backend.has_marker(key)
        except SharedStoreUnavailable:
            return False

    def delete_marker(self, key: str) -> None:
        with contextlib.suppress(SharedStoreUnavailable):  # it expires by itself
            self.backend.delete_marker(key)

    def ping(self) -> None:
        self.backend.ping()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._rereader is not None:
            self._rereader.join(5)
        self.backend.close()

    def _still_valid(self, entry: CacheEntry) -> bool:
        return entry.is_success and time.time() * 1000 - entry.received_ms < self.max_age_ms

    def _remember(self, key: str, entry: CacheEntry, now: float, fresh_s: float, usable_s: float) -> None:
        with self._lock:
            self._put(key, entry, now, fresh_s, usable_s)

    def _put(self, key: str, entry: CacheEntry, now: float, fresh_s: float, usable_s: float) -> None:
        """With ``_lock`` held."""
        self._entries.pop(key, None)  # re-insert at the end: eviction below drops the oldest first
        self._entries[key] = (entry, now + fresh_s, now + usable_s)
        while len(self._entries) > self.max_items:
            del self._entries[next(iter(self._entries))]

    def _reread_soon(self, key: str) -> None:
        with self._wake:
            if key in self._due or self._closed:
                return
            self._due.add(key)
            if self._rereader is None:
                self._rereader = threading.Thread(target=self._reread_due, name="pyea-front-cache", daemon=True)
                self._rereader.start()
            self._wake.notify()

    def _reread_due(self) -> None:
        while True:
            with self._wake:
                while not self._due and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                due, self._due = self._due, set()
            for key in due:
                self._reread(key)

    def _reread(self, key: str) -> None:
        try:
            entry = self.backend.get(key)
        except SharedStoreUnavailable:
            return  # once its time is up, the request path decides what the old entry is still good for
        except Exception:  # this thread must outlive any one failed read
            log.exception("re-reading a cache entry failed")
            return
        with self._lock:
            current = self._entries.get(key)
            if entry is None:
                self._entries.pop(key, None)  # gone from the shared cache: the next request misses
            elif current is None or current[0].received_ms <= entry.received_ms:  # not if this process has
                self._put(key, entry, time.monotonic(), self.ttl_s, 2 * self.ttl_s)  # stored a newer one since
