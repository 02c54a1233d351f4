"""The feeds the background keeps fresh: every valid request (re)subscribes its normalised parameters.

Stored in their own diskcache directory beside the cache, so they survive restarts and are never evicted by
``CACHE_MAX_ITEMS``. A hot feed is asked for many times a second; rewriting its expiry each time would put a
SQLite write on every cache hit, so each process refreshes a subscription at most once per tenth of its TTL
(capped at a minute) — an expiry accurate to that much is all an idle-feed timeout needs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import diskcache

log = logging.getLogger("pyea.subscriptions")

LOCK_TIMEOUT_S = 2.0
MAX_REFRESH_GAP_S = 60.0
#: Per-process memory of recent refreshes; cleared when larger (it only saves writes).
MEMO_LIMIT = 100_000


@dataclass(frozen=True)
class Subscription:
    key: str
    endpoint: str
    params: Mapping[str, Any]


class SubscriptionStore:
    def __init__(self, directory: str, ttl_ms: int) -> None:
        self.ttl_s = ttl_ms / 1000
        self.refresh_gap_s = min(self.ttl_s / 10, MAX_REFRESH_GAP_S)
        self._store = diskcache.Cache(directory, timeout=LOCK_TIMEOUT_S)
        self._refreshed: dict[str, float] = {}
        self._lock = threading.Lock()

    def subscribe(self, key: str, endpoint: str, params: Mapping[str, Any], force: bool = False) -> None:
        """Register or extend ``key``; ``force`` writes even if this process refreshed it moments ago (used on a
        cache miss, so a feed the background dropped is re-subscribed by the next request that needs it)."""
        now = time.monotonic()
        last = self._refreshed.get(key)
        if not force and last is not None and now - last < self.refresh_gap_s:
            return
        value = json.dumps({"endpoint": endpoint, "params": dict(params)}, separators=(",", ":"))
        try:
            self._store.set(key, value, expire=self.ttl_s)
        except diskcache.Timeout:
            log.warning("subscription store busy; %s not refreshed this time", endpoint)
            return
        with self._lock:
            if len(self._refreshed) > MEMO_LIMIT:
                self._refreshed.clear()
            self._refreshed[key] = now

    def live(self, prefix: str) -> list[Subscription]:
        """Unexpired subscriptions whose key starts with ``prefix`` (``group:endpoint:``)."""
        found = []
        for key in self._store.iterkeys():
            if not key.startswith(prefix):
                continue
            raw = self._store.get(key)
            if raw is not None:
                value = json.loads(raw)
                found.append(Subscription(key, value["endpoint"], value["params"]))
        return found

    def drop(self, key: str) -> None:
        self._store.delete(key, retry=True)
        with self._lock:
            self._refreshed.pop(key, None)

    def expire(self) -> int:
        """Delete expired subscriptions from disk (reads already ignore them)."""
        return self._store.expire(retry=True)

    def close(self) -> None:
        self._store.close()
