"""A small per-process layer in front of the shared cache, for the feeds a node asks for most.

A cache hit otherwise costs a SQLite or Redis read every time. Entries answer from here for at most
``CACHE_FRONT_TTL`` (sub-second), so a value refreshed by another worker is seen at most that much later.

When the shared store is unreachable (Redis down), the same entries are the fallback: a success younger than
``max_age_ms`` (``CACHE_MAX_AGE``, the longest any entry may live) still answers, so hot feeds keep being served
through an outage; anything else is the store's 503.
"""

from __future__ import annotations

import contextlib
import threading
import time

from app.cache import Cache, CacheEntry
from app.errors import SharedStoreUnavailable


class FrontCache:
    def __init__(self, backend: Cache, ttl_ms: int, max_age_ms: int, max_items: int = 1024) -> None:
        self.backend = backend
        self.ttl_s = ttl_ms / 1000
        self.max_age_ms = max_age_ms
        self.max_items = max_items
        self._entries: dict[str, tuple[CacheEntry, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        found = self._entries.get(key)
        now = time.monotonic()
        if found is not None and found[1] > now:
            return found[0]
        try:
            entry = self.backend.get(key)
        except SharedStoreUnavailable:
            if found is not None and self._still_valid(found[0]):
                return found[0]
            raise
        if entry is not None:
            self._remember(key, entry, now + self.ttl_s)
        return entry

    def set(self, key: str, entry: CacheEntry, ttl_ms: int) -> bool:
        try:
            stored: bool | None = self.backend.set(key, entry, ttl_ms)
        except SharedStoreUnavailable:
            stored = None  # kept here at least, so this process can serve what it fetched
        if stored is not False:
            self._remember(key, entry, time.monotonic() + min(self.ttl_s, ttl_ms / 1000))
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
        self.backend.close()

    def _still_valid(self, entry: CacheEntry) -> bool:
        return entry.is_success and time.time() * 1000 - entry.received_ms < self.max_age_ms

    def _remember(self, key: str, entry: CacheEntry, expires: float) -> None:
        with self._lock:
            self._entries.pop(key, None)  # re-insert at the end: eviction below drops the oldest first
            self._entries[key] = (entry, expires)
            while len(self._entries) > self.max_items:
                del self._entries[next(iter(self._entries))]
