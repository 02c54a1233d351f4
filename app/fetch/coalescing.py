"""Making identical work happen once: across the threads of a process, the processes of a machine, and
instances sharing a cache.

200 concurrent cold requests for one feed must cost one provider call. Threads of one worker share the
leader's outcome directly (``SingleFlight``). The workers of one machine queue on a file lock per key
(``MachineLocks``), always: the next holder finds the value in the cache the moment the first releases it, with
no polling delay, and a leader that dies releases it with its process. Other instances (``REQUEST_COALESCING_*``)
see the leader's in-flight marker in the shared cache and wait for its value with the v2 back-off, then fetch
themselves only if none arrives.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

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


class MachineLocks:
    """Exclusive ``flock`` locks shared by every process using one ``CACHE_DIR``, one lock file per stripe of
    keys: the files stay few whatever the number of feeds, and two cold feeds that share a stripe only wait for
    each other's fetch."""

    STRIPES = 1024

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        stripe = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % self.STRIPES
        # A descriptor of its own per holder: flock excludes open files, so threads of one process exclude
        # each other too, and closing it can never release a lock another thread still holds.
        fd = os.open(os.path.join(self.directory, f"{stripe:04d}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


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
