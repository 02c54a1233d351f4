"""Making identical work happen once: across the threads of a process, the processes of a machine, and
instances sharing a cache.

200 concurrent cold requests for one feed must cost one provider call. Threads of one worker share the
leader's outcome directly (``SingleFlight``). The workers of one machine find the feed in the batch that fetches
it and wait for that batch (``app/fetch/batching.py``), always. Other instances (``REQUEST_COALESCING_*``) see
the leader's in-flight marker in the shared cache and wait for its value with the v2 back-off, then fetch
themselves only if none arrives.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

from app.fetch.batching import waiting

if TYPE_CHECKING:
    from app.core.entries import Cache, CacheEntry
    from app.core.settings import Settings

T = TypeVar("T")


class SingleFlight:
    """Runs ``fn`` once per key at a time; callers that arrive meanwhile get the same result or exception."""

    def __init__(self, on_wait: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future] = {}
        self._on_wait = on_wait

    def run(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if leader:
                future = self._calls[key] = Future()
        if not leader:
            if self._on_wait is not None:
                self._on_wait()
            with waiting():  # the leader may need a turn to finish: never hold one while waiting for it
                return future.result()
        try:
            result = fn()
        except BaseException as exc:
            self._finish(key)
            future.set_exception(exc)
            raise
        self._finish(key)
        future.set_result(result)
        return result

    def _finish(self, key: str) -> None:
        # Forget the call before publishing its outcome: a caller arriving later starts a fresh call
        # instead of receiving an outcome from before it asked.
        with self._lock:
            del self._calls[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


def wait_for_other_process(cache: Cache, key: str, settings: Settings) -> CacheEntry | None:
    """Poll the cache while another process holds the in-flight marker for ``key``.

    Returns the entry it wrote, or None when the marker vanished without a value or the retries ran out.
    """
    delay = settings.REQUEST_COALESCING_INTERVAL
    for attempt in range(settings.REQUEST_COALESCING_MAX_RETRIES):
        extra = random.uniform(0, settings.REQUEST_COALESCING_ENTROPY_MAX) if attempt == 0 else 0
        time.sleep((delay + extra) / 1000)
        entry = cache.get(key)
        if entry is not None:
            return entry
        if not cache.has_marker(key):
            return None
        delay = min(settings.REQUEST_COALESCING_INTERVAL_MAX,
                    delay * settings.REQUEST_COALESCING_INTERVAL_COEFFICIENT)
    return None
