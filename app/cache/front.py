"""A small per-process layer in front of the shared cache, for the feeds a node asks for most.

A cache hit otherwise costs a SQLite (or, later, Redis) read every time. Entries live here for at most
``CACHE_FRONT_TTL`` (sub-second), so a value refreshed by another worker is seen at most that much later.
"""

from __future__ import annotations

import threading
import time

from app.cache import Cache, CacheEntry


class FrontCache:
    def __init__(self, backend: Cache, ttl_ms: int, max_items: int = 1024) -> None:
        self.backend = backend
        self.ttl_s = ttl_ms / 1000
        self.max_items = max_items
        self._entries: dict[str, tuple[CacheEntry, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        found = self._entries.get(key)
        now = time.monotonic()
        if found is not None and found[1] > now:
            return found[0]
        entry = self.backend.get(key)
        if entry is not None:
            self._remember(key, entry, now + self.ttl_s)
        return entry

    def set(self, key: str, entry: CacheEntry, ttl_ms: int) -> bool:
        stored = self.backend.set(key, entry, ttl_ms)
        if stored:
            self._remember(key, entry, time.monotonic() + min(self.ttl_s, ttl_ms / 1000))
        return stored

    def touch(self, key: str, ttl_ms: int) -> None:
        self.backend.touch(key, ttl_ms)

    def add_marker(self, key: str, ttl_ms: int) -> bool:
        return self.backend.add_marker(key, ttl_ms)

    def has_marker(self, key: str) -> bool:
        return self.backend.has_marker(key)

    def delete_marker(self, key: str) -> None:
        self.backend.delete_marker(key)

    def ping(self) -> None:
        self.backend.ping()

    def close(self) -> None:
        self.backend.close()

    def _remember(self, key: str, entry: CacheEntry, expires: float) -> None:
        with self._lock:
            self._entries.pop(key, None)  # re-insert at the end: eviction below drops the oldest first
            self._entries[key] = (entry, expires)
            while len(self._entries) > self.max_items:
                del self._entries[next(iter(self._entries))]
