"""The meeting point of readers (HTTP requests) and writers (foreground fetches, later the background warmer).

Entries are stored as text, never as live objects, so a later request can never mutate what another one was
served, and so the same bytes work in diskcache today and in Redis later.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from app.settings import Problem, Settings

if TYPE_CHECKING:
    from app.shared import Shared


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

    def batch(self) -> AbstractContextManager:
        """Writes made inside may be committed together (a refresh cycle's batch)."""

    def touch(self, key: str, ttl_ms: int) -> None: ...

    def add_marker(self, key: str, ttl_ms: int) -> bool:
        """Atomically claim the in-flight marker for ``key``; False if another process holds it."""

    def has_marker(self, key: str) -> bool: ...

    def delete_marker(self, key: str) -> None: ...

    def ping(self) -> None:
        """Raise if the backend cannot store and read back a value."""

    def close(self) -> None: ...


def make_cache(settings: Settings, shared: Shared | None = None) -> tuple[Cache | None, list[Problem]]:
    """The local diskcache, or Redis when ``shared`` is given; either behind the per-process front layer,
    which with Redis is always there: it is also what answers while Redis is down."""
    from app.cache.front import FrontCache

    if shared is not None:
        from app.cache.redis import RedisCache

        return FrontCache(RedisCache(shared), settings.CACHE_FRONT_TTL, settings.CACHE_MAX_AGE), []
    from app.cache.local import LocalCache, open_problem

    problem = open_problem(settings.CACHE_DIR)
    if problem:
        return None, [problem]
    cache: Cache = LocalCache(settings.CACHE_DIR, settings.CACHE_MAX_ITEMS)
    if settings.CACHE_FRONT_TTL:
        cache = FrontCache(cache, settings.CACHE_FRONT_TTL, settings.CACHE_MAX_AGE)
    return cache, []
