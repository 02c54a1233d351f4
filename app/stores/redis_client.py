"""The Redis connection every shared piece uses (cache, subscriptions, rate limits, markers, the lease).

One connection pool per process. Every command goes through ``run``, which turns any Redis failure into
``SharedStoreUnavailable``, a 503 in the node's error shape, so an outage can never surface as a 500. After a
failure the breaker stays open for a moment: while Redis is down, requests fail (or fall back) at once instead
of each waiting ``CACHE_REDIS_TIMEOUT``, and one probe per moment finds out when it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.core.errors import SharedStoreUnavailable
from app.core.settings import Settings
from app.observe.logs import LogThrottle

log = logging.getLogger("pyea.shared")

T = TypeVar("T")
#: Seconds the breaker stays open after a failure.
BREAKER_OPEN_S = 1.0
#: At most one "Redis unavailable" warning per this many seconds.
WARN_EVERY_S = 10.0


def connect(settings: Settings) -> redis.Redis:
    timeout = settings.CACHE_REDIS_TIMEOUT / 1000
    # No retries inside redis-py: its default backs off for seconds, far past CACHE_REDIS_TIMEOUT, while the
    # breaker here already decides when to try again.
    connection = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "decode_responses": True,
                  "health_check_interval": 30, "retry": Retry(NoBackoff(), 0),
                  "password": settings.CACHE_REDIS_PASSWORD or None}
    # Threads beyond the pool's size wait (up to the same timeout) for a free connection instead of failing.
    pool = {"max_connections": max(settings.EA_THREADS + 8, 16), "timeout": timeout}
    if settings.CACHE_REDIS_URL:
        connection.pop("password")  # the URL's own, if any
        blocking = redis.BlockingConnectionPool.from_url(settings.CACHE_REDIS_URL, **pool, **connection)
    elif settings.CACHE_REDIS_PATH:
        blocking = redis.BlockingConnectionPool(connection_class=redis.UnixDomainSocketConnection,
                                                path=settings.CACHE_REDIS_PATH, **pool, **connection)
    else:
        blocking = redis.BlockingConnectionPool(host=settings.CACHE_REDIS_HOST, port=settings.CACHE_REDIS_PORT,
                                                **pool, **connection)
    return redis.Redis(connection_pool=blocking, retry=Retry(NoBackoff(), 0))


def describe_target(settings: Settings) -> str:
    """Where Redis is, for messages: never the URL itself, which can carry a password."""
    if settings.CACHE_REDIS_URL:
        return "CACHE_REDIS_URL"
    if settings.CACHE_REDIS_PATH:
        return settings.CACHE_REDIS_PATH
    return f"{settings.CACHE_REDIS_HOST}:{settings.CACHE_REDIS_PORT}"


class Shared:
    """A Redis client behind a breaker, and the key namespace of this deployment."""

    def __init__(self, client: redis.Redis, where: str, open_s: float = BREAKER_OPEN_S) -> None:
        self.client = client
        self.where = where
        self.open_s = open_s
        self._open_until = 0.0
        self._warnings = LogThrottle(WARN_EVERY_S)
        self._lock = threading.Lock()

    def run(self, command: Callable[[redis.Redis], T]) -> T:
        if time.monotonic() < self._open_until:
            raise SharedStoreUnavailable(f"the shared cache (Redis at {self.where}) is not answering")
        try:
            return command(self.client)
        except redis.RedisError as exc:
            self._trip(exc)
            raise SharedStoreUnavailable(f"the shared cache (Redis at {self.where}) is not answering "
                                         f"({type(exc).__name__})") from None

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    def script(self, source: str) -> Callable[..., object]:
        """A Lua script run atomically by Redis (sent by hash; re-sent after a Redis restart)."""
        return self.client.register_script(source)

    def close(self) -> None:
        self.client.close()

    def _trip(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._open_until = now + self.open_s
        if self._warnings.ready():
            log.warning("Redis at %s is not answering (%s: %s); serving from this process's memory until it is "
                        "back", self.where, type(exc).__name__, str(exc)[:200])
