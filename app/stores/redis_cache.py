"""The shared cache for several instances: entries in Redis, as the same text the local cache stores.

Keys live under ``pyea:`` beside whatever else the Redis holds; the cache key itself starts with
``CACHE_KEY_GROUP`` (default: the adapter name), so two adapters or two deployments never collide. Redis
evicts by TTL (and by its own ``maxmemory-policy``), not by ``CACHE_MAX_ITEMS``.
"""

from __future__ import annotations

import contextlib

from app.core.entries import CacheEntry
from app.stores.redis_client import Shared

PREFIX = "pyea:cache:"
MARKER_PREFIX = "pyea:inflight:"
PING_KEY = "pyea:ping"

# An error never replaces an unexpired success: checked and written in one atomic step, so a failed refresh in
# one instance cannot wipe the value another instance just stored.
SET_UNLESS_ERROR_OVER_SUCCESS = """
if ARGV[3] == '1' then
  local current = redis.call('GET', KEYS[1])
  if current and string.sub(current, 1, 4) == '200|' then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class RedisCache:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._set = shared.script(SET_UNLESS_ERROR_OVER_SUCCESS)

    def get(self, key: str) -> CacheEntry | None:
        raw = self.shared.run(lambda r: r.get(PREFIX + key))
        return None if raw is None else CacheEntry.decode(raw)

    def set(self, key: str, entry: CacheEntry, ttl_ms: int) -> bool:
        is_error = "0" if entry.is_success else "1"
        stored = self.shared.run(lambda r: self._set(keys=[PREFIX + key],
                                                     args=[entry.encode(), max(1, int(ttl_ms)), is_error], client=r))
        return bool(stored)

    def batch(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # each write is one round trip already; nothing to share

    def touch(self, key: str, ttl_ms: int) -> None:
        self.shared.run(lambda r: r.pexpire(PREFIX + key, max(1, int(ttl_ms))))

    def add_marker(self, key: str, ttl_ms: int) -> bool:
        return bool(self.shared.run(lambda r: r.set(MARKER_PREFIX + key, "1", nx=True, px=max(1, int(ttl_ms)))))

    def has_marker(self, key: str) -> bool:
        return bool(self.shared.run(lambda r: r.exists(MARKER_PREFIX + key)))

    def delete_marker(self, key: str) -> None:
        self.shared.run(lambda r: r.delete(MARKER_PREFIX + key))

    def ping(self) -> None:
        self.shared.run(lambda r: r.set(PING_KEY, "ok", ex=60))
        if self.shared.run(lambda r: r.get(PING_KEY)) != "ok":
            raise RuntimeError("Redis did not return the value just written")

    def close(self) -> None:
        pass  # the connection pool belongs to the host, which closes it
