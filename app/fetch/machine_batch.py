"""The machine's side of foreground batching: an endpoint's open batch and its feeds in flight, shared by every
process using one ``CACHE_DIR`` (see ``app/fetch/batching.py`` for why and how batches form).

The state is a small JSON document per endpoint, read and written under an exclusive ``flock``: ``open`` (the
batch feeds join, with its owner's pid and slot), ``full`` (batches that filled up and are about to close) and
``flying`` (feed key -> the batch fetching it). Only one thread per process and batch (its leader) ever touches
it, so the lock is contended by processes, not by every request thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.core.entries import CacheEntry

log = logging.getLogger("pyea.batching")


@dataclass(frozen=True)
class Feed:
    """One cold miss: its cache key, its normalised parameters, and how long its value is cached."""

    key: str
    params: Mapping[str, Any]
    ttl_ms: int


#: A batch closes at the latest this many collection windows after it opened, however steadily feeds arrive.
MAX_WINDOWS = 5
#: How long a batch's first feed, the only request its worker has, waits for a second before it is fetched
#: alone: another worker's burst joins well within it, and a lone request pays no more.
ALONE_S = 0.003
#: Largest stretch of spaces a shrinking state is padded with instead of truncating its file.
PAD_MAX_BYTES = 65536


@dataclass(frozen=True)
class Owned:
    """A machine batch a leader owns: its id, and the slot lock it holds (``slot_fd``) until its outcomes are
    published."""

    batch_id: str
    slot: int
    slot_fd: int


class MachineView:
    """One leader's view of the machine's batches of its endpoint: the batch it owns, if any, and the feeds it
    placed in other processes' batches, by (batch id, slot)."""

    def __init__(self, state_path: str, max_size: int) -> None:
        self.state_path = state_path
        self.max_size = max_size
        self.owned: Owned | None = None
        self.own_feeds: list[tuple[Feed, Future]] = []
        self.joined: dict[tuple[str, int], list[tuple[Feed, Future]]] = {}
        self._opened = 0.0

    def place(self, new: list[tuple[Feed, Callable[[], CacheEntry | None], Future]],
              take_slot: Callable[[], tuple[int, int]]) -> bool:
        """Give each new feed a place, under the endpoint's lock: answered from the cache, waiting for the batch
        that already has it, in the open batch, or in one opened for it. Whether the batch this leader's feeds
        last went into (another process's) is still open."""
        with _locked(self.state_path) as state:
            flying = state.setdefault("flying", {})
            batch = state.get("open")
            if batch is not None and not _alive(batch["pid"]):
                batch = state["open"] = None  # its owner was killed: its joiners fetch again
            for full_id, full in list(state.get("full", {}).items()):
                if not _alive(full["pid"]):
                    del state["full"][full_id]
            for feed, fresh, future in new:
                if feed.key in flying:
                    self.joined.setdefault(tuple(flying[feed.key]), []).append((feed, future))
                    continue
                if batch is not None and feed.key in batch["feeds"]:
                    self._join(batch, feed, future, add=False)
                    continue
                entry = fresh()  # no batch has it: it may have finished before this request looked
                if entry is not None:
                    future.set_result(entry)
                    continue
                if self.owned is not None:  # a straggler of this leader's own batch goes there, even past full
                    own = _find_batch(state, self.owned.batch_id)
                    if own is not None:
                        self._join(own, feed, future, add=True)
                    else:  # the state was lost (a torn write): fetched with the batch all the same
                        self.own_feeds.append((feed, future))
                    continue
                if batch is None or len(batch["feeds"]) >= self.max_size:
                    if batch is not None:  # full: its owner closes it any moment, from here
                        state.setdefault("full", {})[batch["id"]] = batch
                    slot, fd = take_slot()
                    self.owned = Owned(secrets.token_hex(8), slot, fd)
                    self._opened = time.time()
                    batch = state["open"] = {"id": self.owned.batch_id, "slot": slot, "pid": os.getpid(),
                                             "last": self._opened, "feeds": {}}
                self._join(batch, feed, future, add=True)
            own = _find_batch(state, self.owned.batch_id) if self.owned is not None else None
            self._last, self._size = (own["last"], len(own["feeds"])) if own is not None else (0.0, 0)
            return batch is not None and own is None and any(batch["id"] == b for b, _ in self.joined)

    def _join(self, batch: dict[str, Any], feed: Feed, future: Future, add: bool) -> None:
        if add:
            batch["feeds"][feed.key] = [dict(feed.params), feed.ttl_ms]
            batch["last"] = time.time()
        if self.owned is not None and batch["id"] == self.owned.batch_id:
            self.own_feeds.append((feed, future))
        else:
            self.joined.setdefault((batch["id"], batch["slot"]), []).append((feed, future))

    def quiet_in(self, window_s: float, local_last: float, company: bool) -> float:
        """Seconds until the owned batch is ready to close: no feed joined it for a window (at most
        ``MAX_WINDOWS`` after it opened), or at once when it is full. A feed still alone ``ALONE_S`` after it
        opened the batch, with no other request in its worker (``company``), is not part of a burst: it goes
        then rather than waiting out the window."""
        if self._size >= self.max_size:
            return 0.0
        quiet_at = min(max(self._last, local_last) + window_s, self._opened + MAX_WINDOWS * window_s)
        if not company and self._size <= 1 and local_last <= self._opened:
            quiet_at = min(quiet_at, self._opened + ALONE_S)
        return quiet_at - time.time()

    def close(self) -> list[tuple[Feed, Future | None]]:
        """Take the owned batch's feeds, this process's (with their futures) and the other processes' (None),
        and mark them in flight so their requesters wait for it instead of opening another."""
        mine = {feed.key for feed, _ in self.own_feeds}
        feeds: list[tuple[Feed, Future | None]] = list(self.own_feeds)
        with _locked(self.state_path) as state:
            batch = _pop_batch(state, self.owned.batch_id)
            if batch is not None:
                flying = state.setdefault("flying", {})
                for key, (params, ttl_ms) in batch["feeds"].items():
                    flying[key] = [self.owned.batch_id, self.owned.slot]
                    if key not in mine:
                        feeds.append((Feed(key, params, ttl_ms), None))
        return feeds

    def release(self) -> None:
        """The owned batch is over (fetched, or failed): its feeds are not in flight any more, and its joiners
        wake."""
        if self.owned is None:
            return
        with _locked(self.state_path) as state:
            _pop_batch(state, self.owned.batch_id)
            flying = state.get("flying", {})
            for key in [k for k, (owner, _) in flying.items() if owner == self.owned.batch_id]:
                del flying[key]
        os.close(self.owned.slot_fd)
        self.owned = None


def _find_batch(state: dict[str, Any], batch_id: str) -> dict[str, Any] | None:
    """Batch ``batch_id`` in the state, open or full; None when it is not there (lost with a torn state)."""
    if (state.get("open") or {}).get("id") == batch_id:
        return state["open"]
    return state.get("full", {}).get(batch_id)


def _pop_batch(state: dict[str, Any], batch_id: str) -> dict[str, Any] | None:
    """Take batch ``batch_id`` out of the state (see ``_find_batch``)."""
    if (state.get("open") or {}).get("id") == batch_id:
        return state.pop("open")
    return state.get("full", {}).pop(batch_id, None)


def _alive(pid: int) -> bool:
    """Whether the process that opened a batch still runs (a killed owner's open batch is not joined)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked(path: str) -> Iterator[dict[str, Any]]:
    """The JSON state at ``path``, read and (when changed) written back under an exclusive ``flock``. A state
    that does not parse (a process killed mid-write) starts afresh: batches then in flight finish on their own,
    and their joiners, finding no outcome, look again."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = _read_all(fd)
        try:
            state = json.loads(raw) if raw else {}
        except ValueError:
            log.warning("batch state %s was unreadable; starting it afresh", os.path.basename(path))
            state = {}
        if not isinstance(state, dict):
            state = {}
        yield state
        new = json.dumps(state, separators=(",", ":")).encode()
        if new != raw.rstrip():
            # Padded with spaces (JSON's trailing whitespace) rather than truncated while the file is small:
            # a truncation costs a metadata write, about as much as the rest of a join.
            shorter = len(raw) - len(new)
            pad = 0 < shorter <= PAD_MAX_BYTES
            view = memoryview(new + b" " * shorter if pad else new)
            offset = 0
            while offset < len(view):
                offset += os.pwrite(fd, view[offset:], offset)
            if shorter > 0 and not pad:
                os.ftruncate(fd, len(new))
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
