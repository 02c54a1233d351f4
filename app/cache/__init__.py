"""The meeting point of readers (HTTP requests) and writers (foreground fetches, later the background warmer).

Entries are stored as text, never as live objects, so a later request can never mutate what another one was
served, and so the same bytes work in diskcache today and in Redis later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.settings import Problem, Settings


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A response body (JSON object text without ``jobRunID`` and ``meta``) and when its data arrived."""

    status_code: int
    received_ms: int
    body: str

    @property
    def is_success(self) -> bool:
        return self.status_code == 200

    def encode(self) -> str:
        return f"{self.status_code}|{self.received_ms}|{self.body}"

    @classmethod
    def decode(cls, raw: str) -> CacheEntry:
        status, received, body = raw.split("|", 2)
        return cls(int(status), int(received), body)


class Cache(Protocol):
    def get(self, key: str) -> CacheEntry | None: ...

    def set(self, key: str, entry: CacheEntry, ttl_ms: int) -> bool:
        """Store, except that an error never replaces an unexpired success; returns whether it stored."""

    def touch(self, key: str, ttl_ms: int) -> None: ...

    def add_marker(self, key: str, ttl_ms: int) -> bool:
        """Atomically claim the in-flight marker for ``key``; False if another process holds it."""

    def has_marker(self, key: str) -> bool: ...

    def delete_marker(self, key: str) -> None: ...

    def ping(self) -> None:
        """Raise if the backend cannot store and read back a value."""

    def close(self) -> None: ...


def make_cache(settings: Settings) -> tuple[Cache | None, list[Problem]]:
    if settings.CACHE_TYPE == "redis":
        return None, [Problem("CACHE_TYPE", "redis", "local: the Redis backend is not available in this "
                                                      "version")]
    from app.cache.front import FrontCache
    from app.cache.local import LocalCache, open_problem

    problem = open_problem(settings.CACHE_DIR)
    if problem:
        return None, [problem]
    cache: Cache = LocalCache(settings.CACHE_DIR, settings.CACHE_MAX_ITEMS)
    if settings.CACHE_FRONT_TTL:
        cache = FrontCache(cache, settings.CACHE_FRONT_TTL)
    return cache, []
