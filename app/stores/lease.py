"""Exactly one process runs the background jobs: the holder of a lease it keeps renewing.

On one VM the lease is a key in its own diskcache directory, checked and set in one SQLite transaction, so
gunicorn workers agree without talking to each other. The holder renews it well within its TTL; if the holder
dies (even by SIGKILL) the key expires and the next worker to ask takes over. With Redis the same lease spans
instances on several VMs.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING

import diskcache

from app.core.errors import SharedStoreUnavailable
from app.stores.local_cache import open_store

if TYPE_CHECKING:
    from app.stores.redis_client import Shared

log = logging.getLogger("pyea.leader")

#: Seconds a lease lasts without renewal; the holder renews every LEASE_TTL_S / 3.
LEASE_TTL_S = 3.0
LOCK_TIMEOUT_S = 0.5


class Lease:
    def __init__(self, directory: str, name: str = "background", ttl_s: float = LEASE_TTL_S) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._store = open_store(directory, LOCK_TIMEOUT_S)

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


class RedisLease:
    """The same lease in Redis, for instances on several VMs: one key per deployment, set only if free (or
    renewed only by its holder) in one atomic step. An instance that cannot reach Redis stops working as
    leader at once: if it is cut off, another instance may already hold the lease."""

    HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
    RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

    def __init__(self, shared: Shared, name: str, ttl_s: float = LEASE_TTL_S) -> None:
        self.shared = shared
        self.key = f"pyea:lease:{name}"
        self.ttl_s = ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._hold = shared.script(self.HOLD)
        self._release = shared.script(self.RELEASE)

    def hold(self) -> bool:
        try:
            return bool(self.shared.run(lambda r: self._hold(keys=[self.key], args=[self.owner, int(self.ttl_s * 1000)],
                                                             client=r)))
        except SharedStoreUnavailable:
            return False

    def holder(self) -> str | None:
        try:
            return self.shared.run(lambda r: r.get(self.key))
        except SharedStoreUnavailable:
            return None

    def release(self) -> None:
        try:
            self.shared.run(lambda r: self._release(keys=[self.key], args=[self.owner], client=r))
        except SharedStoreUnavailable:
            log.warning("could not release the background lease; it expires in %.0f s", self.ttl_s)

    def close(self) -> None:
        pass  # the connection pool belongs to the host
