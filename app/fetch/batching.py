"""Foreground batching: the cold misses of one endpoint, from every thread and worker of a machine, fetched in
as few provider calls as the transport's ``max_batch_size`` allows.

A burst of never-seen feeds (a node starting its jobs) would otherwise cost one provider call per feed, or, on a
small tier, a call for the first few and a 429 for the rest. Here the first cold miss of an endpoint opens a
batch and owns it; every cold miss of that endpoint arriving while the batch is open joins it, from any thread of
any worker sharing ``CACHE_DIR``. The owner closes the batch once no feed has joined for
``FOREGROUND_BATCH_WINDOW_MS`` (at the latest ``MAX_WINDOWS`` windows after it opened), at once when it is
full, or after ``ALONE_S`` when its first feed is still alone and the only request its worker has; then it
fetches its feeds in one call to the transport. Every feed's outcome, an error of its own included, goes to its
requester, so one bad feed never fails the others. A feed already in a batch (open, or closed and
in flight) is not fetched again: its requester waits for that batch's outcome.

The provider's quota is asked for when the batch closes. When it has no slot yet, the batch stays open (more
feeds join the call that will be made rather than queueing calls of their own) until the slot frees up, as long
as that is within ``RATE_LIMIT_WAIT_MS``; past it, every feed of the batch is answered 429 with the time to
retry.

Why files: the workers of a machine share nothing but ``CACHE_DIR``. An endpoint's open batch and its feeds in
flight are a small JSON document changed under an exclusive ``flock`` (one short critical section per join). The
owner holds a slot lock file from opening the batch until its outcomes are published, so a joiner waits by
blocking on that lock, without polling, and is woken as surely by the owner's death as by its success (the
kernel releases a dead process's locks); it then finds the outcome in a small diskcache store, or, when the
owner died, fetches again.

While a request thread waits (for the batch, for the quota, for the provider), it gives its turn to a queued
request (``Turn``): gthread's pool would otherwise hold the rest of a burst in its queue until the first
requests are answered, and a burst larger than the threads would become one batch per pool's worth of threads.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

from app.core.errors import RateLimitError
from app.fetch.machine_batch import Feed, MachineView
from app.fetch.rate_limit import describe
from app.stores.local_cache import open_store

if TYPE_CHECKING:
    from app.core.entries import CacheEntry
    from app.fetch.rate_limit import RateLimiter

log = logging.getLogger("pyea.batching")

#: Slot lock files shared by every batch of the machine: more than batches are ever in flight at once.
SLOTS = 256
#: How long a batch's outcomes are kept for its joiners (they read them within moments).
RESULT_TTL_S = 60
#: Longest single sleep of an owner waiting for its window to close or for a quota slot.
MAX_SLEEP_S = 0.25
#: The thread attribute a request thread's ``Turn`` is found under.
TURN_ATTRIBUTE = "pyea_turn"


#: Fetches the feeds of one closed batch and stores their values: one entry per feed key. ``prepaid``: the quota
#: slot of the first provider call was taken already. With a ``RateLimitError`` it makes no call and answers every
#: feed with that error.
FetchAll = Callable[[list[Feed], bool, RateLimitError | None], dict[str, "CacheEntry"]]


class Turn:
    """A request thread's permission to run: ``threads`` of them are shared by a worker's pool of request
    threads (see ``app/hosting/worker.py``). ``waiting`` gives it up while the thread only waits, so a queued
    request can run meanwhile, and takes it back before the thread goes on."""

    def __init__(self, turns: threading.Semaphore, in_progress: Callable[[], int]) -> None:
        self.turns = turns
        self.held = False
        #: Requests this thread's pool has running or queued, this one included.
        self.in_progress = in_progress

    def __enter__(self) -> Turn:
        self.turns.acquire()
        self.held = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.held = False
        self.turns.release()


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Around a wait on another thread, process or the provider: this thread's turn (when it holds one; only
    request threads of pyea's worker do) goes to a queued request until the wait is over."""
    turn = getattr(threading.current_thread(), TURN_ATTRIBUTE, None)
    if turn is None or not turn.held:
        yield
        return
    turn.__exit__()
    try:
        yield
    finally:
        turn.__enter__()


def others_in_progress() -> int | None:
    """Requests besides this one that this thread's worker is running or has queued; None outside a request
    thread of pyea's worker, where nobody counts them. A cold miss that has company is likely part of a burst."""
    turn = getattr(threading.current_thread(), TURN_ATTRIBUTE, None)
    return None if turn is None else max(0, turn.in_progress() - 1)


class _Local:
    """This process's batch of one endpoint while it is open: its feeds, each with how its request reads the
    cache and the future it waits on. Changed only under ``Batches._lock``, which nothing that can block is done
    under: the threads of a process join here without a system call, and only the batch's leader (the thread
    that opened it) deals with the machine's state."""

    def __init__(self) -> None:
        self.feeds: list[tuple[Feed, Callable[[], CacheEntry | None], Future]] = []
        self.placed = 0  # feeds[:placed] have a place in a machine batch (or an answer)
        self.last = time.time()
        self.closed = False


class Batches:
    """The batches of this process; the machine's other processes open the same ``directory``."""

    def __init__(self, directory: str, window_ms: int, patience_ms: int) -> None:
        self.directory = directory
        self.window_s = window_ms / 1000
        self.patience_s = patience_ms / 1000
        os.makedirs(os.path.join(directory, "slots"), exist_ok=True)
        self._results = open_store(os.path.join(directory, "outcomes"), 2.0)
        self._lock = threading.Lock()
        self._open: dict[str, _Local] = {}

    def close(self) -> None:
        self._results.close()

    def fetch(self, scope: str, max_size: int, feed: Feed, fresh: Callable[[], CacheEntry | None],
              fetch_all: FetchAll, limiter: RateLimiter | None) -> CacheEntry:
        """``feed``'s entry, fetched in a batch of ``scope`` (one endpoint of one provider) of up to ``max_size``
        feeds, under ``limiter``'s quota. ``fresh`` reads the cache as the request accepts it: a feed whose batch
        finished just before it looked is found there rather than fetched again. The caller asks once per feed at
        a time in this process (``AdapterRuntime.fetch``'s ``SingleFlight``)."""
        future: Future = Future()
        with self._lock:
            local = self._open.get(scope)
            if local is not None and len(local.feeds) < max_size:
                local.feeds.append((feed, fresh, future))
                local.last = time.time()
                local = None  # joined: its leader fetches it
            else:
                local = self._open[scope] = _Local()
                local.feeds.append((feed, fresh, future))
        if local is not None:
            self._lead(scope, local, max_size, fetch_all, limiter)
        with waiting():
            return future.result()

    def _lead(self, scope: str, local: _Local, max_size: int, fetch_all: FetchAll,
              limiter: RateLimiter | None) -> None:
        """Find every feed of ``local`` a place in a machine batch (another process's open one, or one this
        thread owns), fetch the owned batch once it is ready, and hand every feed its outcome."""
        state_path = os.path.join(self.directory, hashlib.blake2b(scope.encode(), digest_size=8).hexdigest())
        machine = MachineView(state_path, max_size)
        try:
            with waiting():
                quota = self._gather(scope, local, machine, limiter)
            if machine.owned is not None:
                self._fetch_owned(machine, quota, fetch_all)
            for (batch_id, slot), feeds in machine.joined.items():
                self._collect_joined(batch_id, slot, feeds, fetch_all)
        except BaseException as exc:
            for _, _, future in local.feeds:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            machine.release()
            with self._lock:
                if self._open.get(scope) is local:
                    del self._open[scope]

    def _gather(self, scope: str, local: _Local, machine: MachineView,
                limiter: RateLimiter | None) -> tuple[bool, RateLimitError | None]:
        """Place the local feeds as they arrive until the batches they are in close: the quota decision of the
        batch this thread owns (see ``FetchAll``), once it is ready."""
        patience_ends = time.monotonic() + self.patience_s
        quota: tuple[bool, RateLimitError | None] = (False, None)
        company = others_in_progress() != 0  # unknown (another server, a test client) counts as company
        while True:
            with self._lock:
                closing = local.closed
                new = local.feeds[local.placed:]
                local.placed = len(local.feeds)
            still_open = machine.place(new, self._take_slot) if new or not closing else False
            if closing:
                return quota
            if machine.owned is None:
                if not still_open:  # the other process closed the batch this one joined
                    self._close_local(scope, local)
                    continue
                time.sleep(self._step())
                continue
            wait = machine.quiet_in(self.window_s, local.last, company)
            if wait > 0:
                time.sleep(min(wait, MAX_SLEEP_S))
                continue
            if limiter is not None:
                slot_wait = limiter.try_acquire()
                if slot_wait > 0 and slot_wait <= patience_ends - time.monotonic():
                    time.sleep(min(slot_wait, MAX_SLEEP_S))  # still open: feeds arriving meanwhile join the call
                    continue
                quota = (True, None) if slot_wait <= 0 else (False, RateLimitError(describe(limiter.limit,
                                                                                           slot_wait)))
            self._close_local(scope, local)

    def _step(self) -> float:
        return min(max(self.window_s, 0.001), MAX_SLEEP_S)

    def _close_local(self, scope: str, local: _Local) -> None:
        """No more local joins: later cold misses open another batch."""
        with self._lock:
            local.closed = True
            if self._open.get(scope) is local:
                del self._open[scope]

    def _fetch_owned(self, machine: MachineView, quota: tuple[bool, RateLimitError | None],
                     fetch_all: FetchAll) -> None:
        owned = machine.close()
        with waiting():
            entries = fetch_all([feed for feed, _ in owned], *quota)
        with self._results.transact():  # every feed's: another process may have joined one of this one's too
            for feed, _ in owned:
                self._results.set(f"{machine.owned.batch_id}:{feed.key}", entries[feed.key], expire=RESULT_TTL_S)
        machine.release()  # before waiting for any other batch: two leaders never wait for each other
        for feed, future in owned:
            if future is not None:
                future.set_result(entries[feed.key])

    def _collect_joined(self, batch_id: str, slot: int, feeds: list[tuple[Feed, Future]],
                        fetch_all: FetchAll) -> None:
        """The outcomes of this process's feeds in another process's batch, once that batch is over; a feed
        with none (its owner died) is fetched on its own."""
        fd = os.open(self._slot_path(slot), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with waiting():
                fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)
        for feed, future in feeds:
            entry = self._results.get(f"{batch_id}:{feed.key}")
            if entry is None:
                log.warning("the batch fetching %s ended without an outcome (its process died?); fetching it "
                            "alone", feed.key)
                with waiting():
                    entry = fetch_all([feed], False, None)[feed.key]
            future.set_result(entry)

    def _take_slot(self) -> tuple[int, int]:
        """A slot lock no batch holds, and its descriptor: held by the owner until its batch's outcomes are
        published."""
        start = secrets.randbelow(SLOTS)
        for step in range(SLOTS):
            slot = (start + step) % SLOTS
            fd = os.open(self._slot_path(slot), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                continue
            return slot, fd
        raise RuntimeError(f"all {SLOTS} batch slots are taken")  # more batches in flight than request threads

    def _slot_path(self, slot: int) -> str:
        return os.path.join(self.directory, "slots", f"{slot:03d}.lock")
