"""The feeds the background keeps fresh: every valid request (re)subscribes its normalised parameters.

Stored in their own diskcache directory beside the cache, so they survive restarts and are never evicted by
``CACHE_MAX_ITEMS``. A hot feed is asked for many times a second; rewriting its expiry each time would put a
SQLite write on every cache hit, so each process refreshes a subscription at most once per tenth of its TTL
(capped at a minute) — an expiry accurate to that much is all an idle-feed timeout needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import diskcache

from app.core.errors import SharedStoreUnavailable
from app.stores.local_cache import open_store

if TYPE_CHECKING:
    from app.stores.redis_client import Shared

log = logging.getLogger("pyea.subscriptions")

LOCK_TIMEOUT_S = 2.0
MAX_REFRESH_GAP_S = 60.0
#: Per-process memory of recent refreshes; cleared when larger (it only saves writes).
MEMO_LIMIT = 20_000
#: Outcomes of recent group commits kept for the writers whose subscriptions they carried.
GENERATIONS_KEPT = 1024
#: Seconds between writes of the refreshes requests leave for later, all in one transaction.
REFRESH_FLUSH_S = 1.0


@dataclass(frozen=True)
class Subscription:
    key: str
    endpoint: str
    params: Mapping[str, Any]


class SubscriptionStore:
    """Subscriptions in a diskcache directory: shared by the workers of one VM."""

    def __init__(self, directory: str, ttl_ms: int) -> None:
        self._init_memo(ttl_ms)
        self._store = open_store(directory, LOCK_TIMEOUT_S)

    def _init_memo(self, ttl_ms: int) -> None:
        self.ttl_s = ttl_ms / 1000
        self.refresh_gap_s = min(self.ttl_s / 10, MAX_REFRESH_GAP_S)
        self._refreshed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._deferred: dict[str, str] = {}
        self._together: dict[str, str] = {}  # misses' subscriptions waiting for the current group commit
        self._generation = 0
        self._written: dict[int, bool] = {}
        self._committing = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closing = threading.Event()

    def subscribe(self, key: str, endpoint: str, params: Mapping[str, Any], force: bool = False,
                  announce: bool = False) -> None:
        """Register or extend ``key``; ``force`` writes even if this process refreshed it moments ago (used on a
        cache miss, so a feed the background dropped is re-subscribed by the next request that needs it);
        ``announce`` asks the leader to fetch it now (a miss this process will not fetch itself)."""
        now = time.monotonic()
        last = self._refreshed.get(key)
        if not force and last is not None and now - last < self.refresh_gap_s:
            return
        value = json.dumps({"endpoint": endpoint, "params": dict(params)}, separators=(",", ":"))
        if not force:
            # A cache hit: the feed is being kept fresh already, so its extension can wait a second and share
            # one transaction with the others. Written inline, thousands of feeds coming due together had every
            # request thread queueing on SQLite's write lock, whose busy handler sleeps up to 100 ms.
            self._defer(key, value, now)
            return
        written = self._write(key, value, announce) if announce else self._write_together(key, value)
        if not written:
            log.warning("subscription store busy; %s not refreshed this time", endpoint)
            return
        with self._lock:
            if len(self._refreshed) > MEMO_LIMIT:
                self._refreshed.clear()
            self._refreshed[key] = now

    def _write(self, key: str, value: str, announce: bool) -> bool:
        try:
            self._store.set(key, value, expire=self.ttl_s)
        except diskcache.Timeout:
            return False
        return True

    def _write_together(self, key: str, value: str) -> bool:
        """Write one miss's subscription before the request goes on (a kill -9 a moment later must not lose
        it), in one transaction with every other written meanwhile (group commit): a burst of new feeds then
        costs a few transactions, not one per feed queueing on the write lock."""
        with self._lock:
            self._together[key] = value
            generation = self._generation
        with self._committing:
            with self._lock:
                if self._generation > generation:  # an earlier writer took it with its own, and has finished
                    return self._written.get(generation, False)
                items, self._together = self._together, {}
                self._generation += 1
            written = self._write_many(items)
            with self._lock:
                self._written[generation] = written  # the other writers of this generation read it here
                if len(self._written) > GENERATIONS_KEPT:
                    del self._written[min(self._written)]
            return written

    def _write_many(self, items: dict[str, str]) -> bool:
        try:
            with self._store.transact(retry=True):
                for key, value in items.items():
                    self._store.set(key, value, expire=self.ttl_s)
        except diskcache.Timeout:
            return False
        return True

    def _defer(self, key: str, value: str, now: float) -> None:
        with self._lock:
            self._deferred[key] = value
            if len(self._refreshed) > MEMO_LIMIT:
                self._refreshed.clear()
            self._refreshed[key] = now
            if self._flusher is None and not self._closing.is_set():
                self._flusher = threading.Thread(target=self._flush_periodically, name="pyea-subscriptions",
                                                 daemon=True)
                self._flusher.start()

    def _flush_periodically(self) -> None:
        while not self._closing.wait(REFRESH_FLUSH_S):
            self.flush()

    def flush(self) -> None:
        """Write the deferred refreshes; if the store is busy, forget them so the next request retries."""
        with self._lock:
            items, self._deferred = self._deferred, {}
        if items and not self._write_many(items):
            log.warning("subscription store busy; %d feeds not refreshed this time", len(items))
            for key in items:
                self._forget(key)

    def _stop_flushing(self) -> None:
        self._closing.set()
        if self._flusher is not None:
            self._flusher.join(5)
        self.flush()

    def live(self, prefix: str) -> list[Subscription]:
        """Unexpired subscriptions whose key starts with ``prefix`` (``group:endpoint:``)."""
        found = []
        for key in self._store.iterkeys():
            if not key.startswith(prefix):
                continue
            raw = self._store.get(key)
            if raw is not None:
                found.append(_decode(key, raw))
        return found

    def take_new(self, prefix: str, limit: int) -> list[Subscription]:
        """Feeds under ``prefix`` that a request found missing and did not fetch itself, for the leader to fetch
        now rather than at its next cycle. Only readers (EA_MODE=reader, which needs Redis) leave feeds for
        others to fetch; locally every request that misses fetches the feed itself."""
        return []

    def drop(self, key: str) -> None:
        self._store.delete(key, retry=True)
        self._forget(key)

    def expire(self) -> int:
        """Delete expired subscriptions from disk (reads already ignore them)."""
        return self._store.expire(retry=True)

    def close(self) -> None:
        self._stop_flushing()
        self._store.close()

    def _forget(self, key: str) -> None:
        with self._lock:
            self._refreshed.pop(key, None)


class RedisSubscriptionStore(SubscriptionStore):
    """Subscriptions in Redis, shared by every instance: a sorted set of keys scored by expiry time, their
    parameters in a hash, and the set of feeds a reader asked for and found missing."""

    EXPIRY = "pyea:subs"
    PARAMS = "pyea:subs:params"
    NEW = "pyea:subs:new:"  # + "group:endpoint:"

    def __init__(self, shared: Shared, ttl_ms: int) -> None:  # no diskcache: nothing of it is local
        self._init_memo(ttl_ms)
        self.shared = shared

    def _write(self, key: str, value: str, announce: bool) -> bool:
        def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.zadd(self.EXPIRY, {key: (time.time() + self.ttl_s) * 1000})
            pipe.hset(self.PARAMS, key, value)
            if announce:
                pipe.sadd(self._new_set(key), key)
            pipe.execute()

        with contextlib.suppress(SharedStoreUnavailable):  # the store warns of the outage itself, once
            self.shared.run(write)
        return True

    def _write_many(self, items: dict[str, str]) -> bool:
        def write(r: Any) -> None:
            expiry = (time.time() + self.ttl_s) * 1000
            r.pipeline(transaction=False).zadd(self.EXPIRY, dict.fromkeys(items, expiry)).hset(
                self.PARAMS, mapping=items).execute()

        with contextlib.suppress(SharedStoreUnavailable):  # as for one write: the outage is warned of once
            self.shared.run(write)
        return True

    def live(self, prefix: str) -> list[Subscription]:
        keys = [k for k in self.shared.run(lambda r: r.zrangebyscore(self.EXPIRY, time.time() * 1000, "+inf"))
                if k.startswith(prefix)]
        return self._load(keys)

    def take_new(self, prefix: str, limit: int) -> list[Subscription]:
        keys = self.shared.run(lambda r: r.spop(self.NEW + prefix, limit)) or []
        return self._load(keys)

    def drop(self, key: str) -> None:
        self.shared.run(lambda r: r.pipeline(transaction=False).zrem(self.EXPIRY, key).hdel(self.PARAMS, key)
                        .srem(self._new_set(key), key).execute())
        self._forget(key)

    def expire(self) -> int:
        def expire(r: Any) -> int:
            keys = r.zrangebyscore(self.EXPIRY, "-inf", time.time() * 1000)
            if keys:
                r.pipeline(transaction=False).zrem(self.EXPIRY, *keys).hdel(self.PARAMS, *keys).execute()
            return len(keys)

        return self.shared.run(expire)

    def close(self) -> None:
        self._stop_flushing()  # the connection pool belongs to the host

    def _new_set(self, key: str) -> str:
        """The announced-feeds set of ``key``'s ``group:endpoint:``, the prefix ``take_new`` is asked for."""
        return self.NEW + key.rsplit(":", 1)[0] + ":"

    def _load(self, keys: list[str]) -> list[Subscription]:
        if not keys:
            return []
        values = self.shared.run(lambda r: r.hmget(self.PARAMS, keys))
        return [_decode(key, raw) for key, raw in zip(keys, values, strict=True) if raw is not None]


def _decode(key: str, raw: str) -> Subscription:
    value = json.loads(raw)
    return Subscription(key, value["endpoint"], value["params"])
