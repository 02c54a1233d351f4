"""gunicorn's gthread worker, accepting connections fairly across the workers.

gthread keeps a keep-alive connection on the worker that accepted it, and every worker races for each new
connection. Under a burst of connections (a node opening its pool, a load balancer), one worker could win them
all, and a 2-core VM then served everything on one core. Here each worker publishes how many connections it holds
in a table shared by the workers of one master; a worker already holding more than another gives that one a
moment to take the next connection, then takes it itself if nobody did. Steady traffic on open connections is
untouched: only accepting a new connection can wait, and never more than ACCEPT_YIELD_S.

Its pool runs ``EA_THREADS`` requests at once, as gthread's does, but a request that only waits (for a batch of
cold feeds, the provider's quota, the provider) gives its turn to a queued one (``app/fetch/batching.py``): a
burst of cold feeds larger than the threads then joins one batch instead of one batch per pool's worth of
threads, and cache hits queued behind slow cold fetches are served meanwhile. At most ``WAITING_PER_THREAD`` x
``EA_THREADS`` requests wait at once; more queue as before.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from app.fetch.batching import TURN_ATTRIBUTE, Turn

#: Slots in the table: more than any EA_WORKERS allowed (64).
SLOTS = 128
#: How long a worker holding more connections than a sibling leaves a new one to that sibling.
ACCEPT_YIELD_S = 0.002
#: Requests per thread that may wait (giving their turn away) at once.
WAITING_PER_THREAD = 16
_COUNT = struct.Struct("i")
_TABLE = struct.Struct(f"{SLOTS}i")
FREE = -1


class ConnectionTable:
    """Connections held per live worker (FREE for no worker), in memory the master maps before forking, so every
    worker sees every other's."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _TABLE.size)  # anonymous and shared: inherited by forked workers
        _TABLE.pack_into(self._map, 0, *([FREE] * SLOTS))

    def attach(self, server: Any, worker: Any) -> None:
        """gunicorn's ``pre_fork`` hook: a slot in the table for the worker about to fork."""
        counts = _TABLE.unpack_from(self._map)
        worker.table, worker.slot = self, next(slot for slot, count in enumerate(counts) if count == FREE)
        self.set(worker.slot, 0)

    def release(self, server: Any, worker: Any) -> None:
        """For gunicorn's ``child_exit`` hook: a dead worker's connections are not counted any more."""
        if getattr(worker, "table", None) is self:
            self.set(worker.slot, FREE)

    def set(self, slot: int, count: int) -> None:
        _COUNT.pack_into(self._map, slot * _COUNT.size, count)

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections another live worker holds, or None when there is no other."""
        counts = [count for other, count in enumerate(_TABLE.unpack_from(self._map)) if other != slot and count >= 0]
        return min(counts) if counts else None


class TurnTakingPool(ThreadPoolExecutor):
    """``threads`` requests run at once; each thread holds a ``Turn`` while it runs one, and gives it up while it
    only waits, so up to ``threads + waiting`` requests are in progress."""

    def __init__(self, threads: int, waiting: int) -> None:
        self._turns = threading.Semaphore(threads)
        self._count_lock = threading.Lock()
        self._in_progress = 0  # submitted and not finished: running, waiting or queued
        super().__init__(max_workers=threads + waiting, thread_name_prefix="pyea-request",
                         initializer=self._give_turn)

    def _give_turn(self) -> None:
        setattr(threading.current_thread(), TURN_ATTRIBUTE, Turn(self._turns, self.in_progress))

    def in_progress(self) -> int:
        return self._in_progress

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._count_lock:
            self._in_progress += 1
        future = super().submit(_in_turn, fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: Future) -> None:
        with self._count_lock:
            self._in_progress -= 1


def _in_turn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with getattr(threading.current_thread(), TURN_ATTRIBUTE):
        return fn(*args, **kwargs)


class FairThreadWorker(ThreadWorker):
    #: Set by the master (``pre_fork`` in ``app/hosting/gunicorn_conf.py``) before the fork.
    table: ConnectionTable | None = None
    slot = 0

    def get_thread_pool(self) -> ThreadPoolExecutor:
        return TurnTakingPool(self.cfg.threads, WAITING_PER_THREAD * self.cfg.threads)

    def notify(self) -> None:
        """Called on every turn of the worker's loop: publish the connections held (they close all the time)."""
        super().notify()
        if self.table is not None:
            self.table.set(self.slot, self.nr_conns)

    def accept(self, *args: Any) -> None:
        table = self.table
        if table is not None:
            fewest = table.fewest_elsewhere(self.slot)
            if fewest is not None and fewest < self.nr_conns:
                time.sleep(ACCEPT_YIELD_S)  # the sibling, woken by the same connection, takes it meanwhile
        super().accept(*args)  # EAGAIN when the sibling took it: gthread ignores that
        if table is not None:
            table.set(self.slot, self.nr_conns)
