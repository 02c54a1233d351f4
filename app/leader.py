"""Exactly one process runs the background jobs: the holder of a lease it keeps renewing.

On one VM the lease is a key in its own diskcache directory, checked and set in one SQLite transaction, so
gunicorn workers agree without talking to each other. The holder renews it well within its TTL; if the holder
dies (even by SIGKILL) the key expires and the next worker to ask takes over. A Redis lock can implement the
same three methods for several VMs.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import diskcache

log = logging.getLogger("pyea.leader")

#: Seconds a lease lasts without renewal; the holder renews every LEASE_TTL_S / 3.
LEASE_TTL_S = 3.0
LOCK_TIMEOUT_S = 0.5


class Lease:
    def __init__(self, directory: str, name: str = "background", ttl_s: float = LEASE_TTL_S) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._store = diskcache.Cache(directory, timeout=LOCK_TIMEOUT_S)

    def hold(self) -> bool:
        """Take the lease if it is free or expired, or renew it if ours; False if another process holds it."""
        try:
            with self._store.transact():
                holder = self._store.get(self.name)
                if holder not in (None, self.owner):
                    return False
                self._store.set(self.name, self.owner, expire=self.ttl_s)
                return True
        except diskcache.Timeout:
            return False  # could not check: assume someone else holds it rather than risk two leaders

    def holder(self) -> str | None:
        return self._store.get(self.name)

    def release(self) -> None:
        try:
            with self._store.transact():
                if self._store.get(self.name) == self.owner:
                    self._store.delete(self.name)
        except diskcache.Timeout:
            log.warning("could not release the background lease; it expires in %.0f s", self.ttl_s)

    def close(self) -> None:
        self._store.close()
