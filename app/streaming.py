"""Running a ``WebSocketTransport``: one connection per streamed endpoint, in the process holding the lease.

Each stream thread keeps the provider's subscriptions equal to the feeds nodes asked for within
``WS_SUBSCRIPTION_TTL`` (checked every ``RECONCILE_S``), writes every value it receives into the cache, and
heals itself:

- a feed silent for ``WS_SUBSCRIPTION_UNRESPONSIVE_TTL`` is unsubscribed and subscribed again;
- a connection silent that long, or one that misses a pong (``WS_HEARTBEAT_INTERVAL_MS``), is reopened;
- a failed connection is retried with capped exponential back-off and jitter, moving to the next URL when
  the adapter lists failovers, and after reconnecting every live subscription is restored;
- while the stream is down, the transport's HTTP fallback keeps the feeds fresh every ``WARMUP_INTERVAL``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from app.errors import SharedStoreUnavailable
from app.requester import now_ms
from app.transports import FeedOutcome, Params

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from app.runtime import EndpointRuntime
    from app.subscriptions import SubscriptionStore
    from app.transports.websocket import WebSocketTransport

log = logging.getLogger("pyea.streaming")

#: Seconds between comparisons of the wanted feeds with the subscribed ones.
RECONCILE_S = 0.1
#: Longest a receive blocks, so subscriptions and stopping are handled promptly.
RECV_TIMEOUT_S = 0.05
#: At most one "unreadable message" warning per this many seconds per stream.
WARN_EVERY_S = 10.0


class StreamSilent(Exception):
    """The provider sent nothing for too long: the connection is treated as dead."""


class Stream:
    def __init__(self, endpoint: EndpointRuntime, store: SubscriptionStore, is_leader: Callable[[], bool]) -> None:
        self.endpoint = endpoint
        self.adapter = endpoint.adapter
        self.transport: WebSocketTransport = endpoint.transport  # type: ignore[assignment]
        self.settings = self.adapter.settings
        self.store = store
        self.is_leader = is_leader
        self.prefix = f"{self.adapter.keys.group}:{endpoint.name}:"
        raw_urls = self.adapter.values.get(self.transport.url_setting) or ""
        self.urls = [u.strip() for u in str(raw_urls).split(",") if u.strip()]
        self.subscribed: dict[str, list[Params]] = {}
        self.connected = False
        self._heard: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.adapter.name}-{endpoint.name}",
                                        daemon=True)
        self._warned_at = float("-inf")
        self._fallback_at = float("-inf")
        metrics = self.adapter.metrics
        self._labels = (endpoint.name, *metrics.labels)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------------------------------ connection

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if not self.is_leader() or not self.urls:
                self._stop.wait(0.2)
                continue
            url = self.urls[failures % len(self.urls)]
            try:
                self._connect_and_serve(url)
                failures = 0
            except (OSError, TimeoutError, WebSocketException, StreamSilent) as exc:
                failures += 1
                self.adapter.metrics.ws_errors.labels(*self._labels).inc()
                delay = self._backoff_s(failures)
                log.warning("%s/%s: websocket %s failed (%s: %s); reconnecting in %.1f s", self.adapter.name,
                            self.endpoint.name, _safe(url), type(exc).__name__, str(exc)[:200], delay)
                self._wait_polling_fallback(delay)

    def _backoff_s(self, failures: int) -> float:
        base = self.settings.WS_RECONNECT_BACKOFF_MS / 1000
        capped = min(base * 2 ** (failures - 1), self.settings.WS_RECONNECT_BACKOFF_MAX_MS / 1000)
        return capped * random.uniform(0.75, 1.0)

    def _connect_and_serve(self, url: str) -> None:
        settings = self.settings
        heartbeat = settings.WS_HEARTBEAT_INTERVAL_MS / 1000
        with connect(url, open_timeout=settings.WS_CONNECTION_OPEN_TIMEOUT / 1000, ping_interval=heartbeat,
                     ping_timeout=heartbeat, close_timeout=1, proxy=None) as ws:
            self.connected = True
            self.adapter.metrics.ws_connections.labels(*self._labels).set(1)
            log.info("%s/%s: websocket open to %s", self.adapter.name, self.endpoint.name, _safe(url))
            try:
                self._serve(ws)
            finally:
                self.connected = False
                self.subscribed = {}
                self._heard = {}
                self.adapter.metrics.ws_connections.labels(*self._labels).set(0)
                self.adapter.metrics.ws_subscriptions.labels(*self._labels).set(0)

    def _serve(self, ws: ClientConnection) -> None:
        silent_s = self.settings.WS_SUBSCRIPTION_UNRESPONSIVE_TTL / 1000
        heard = reconciled = time.monotonic()
        self._reconcile(ws)
        while not self._stop.is_set() and self.is_leader():
            try:
                raw = ws.recv(timeout=RECV_TIMEOUT_S)
            except TimeoutError:
                raw = None
            now = time.monotonic()
            if raw is not None:
                heard = now
                self._handle(raw)
            elif now - heard > silent_s:
                raise StreamSilent(f"nothing received for {silent_s:g} s")
            if now - reconciled >= RECONCILE_S:
                reconciled = now
                self._reconcile(ws)
                self._resubscribe_silent(ws, now, silent_s)

    # --------------------------------------------------------------------------------------- subscriptions

    def _wanted(self) -> dict[str, list[Params]]:
        wanted: dict[str, list[Params]] = {}
        for subscription in self.store.live(self.prefix):
            stream_id = self.transport.stream_id(subscription.params, self.adapter.values)
            wanted.setdefault(stream_id, []).append(subscription.params)
        return wanted

    def _reconcile(self, ws: ClientConnection) -> None:
        try:
            wanted = self._wanted()
        except SharedStoreUnavailable:
            return  # keep what is subscribed until the store answers again
        new = [s for s in wanted if s not in self.subscribed]
        gone = [s for s in self.subscribed if s not in wanted]
        now = time.monotonic()
        self._send_batches(ws, gone, self.transport.unsubscribe_message)
        self._send_batches(ws, new, self.transport.subscribe_message)
        if new:
            self.adapter.metrics.ws_subscribed.labels(*self._labels).inc(len(new))
        for stream_id in new:
            self._heard[stream_id] = now
        for stream_id in gone:
            self._heard.pop(stream_id, None)
        self.subscribed = wanted
        self.adapter.metrics.ws_subscriptions.labels(*self._labels).set(len(wanted))

    def _resubscribe_silent(self, ws: ClientConnection, now: float, silent_s: float) -> None:
        silent = [s for s in self.subscribed if now - self._heard.get(s, now) > silent_s]
        if not silent:
            return
        log.info("%s/%s: %d feeds silent for %g s; subscribing again", self.adapter.name, self.endpoint.name,
                 len(silent), silent_s)
        self._send_batches(ws, silent, self.transport.unsubscribe_message)
        self._send_batches(ws, silent, self.transport.subscribe_message)
        self.adapter.metrics.ws_subscribed.labels(*self._labels).inc(len(silent))
        for stream_id in silent:
            self._heard[stream_id] = now

    def _send_batches(self, ws: ClientConnection, stream_ids: list[str],
                      build: Callable[[list[str], Any], Any]) -> None:
        size = max(1, self.transport.subscribe_batch_size)
        for start in range(0, len(stream_ids), size):
            message = build(stream_ids[start:start + size], self.adapter.values)
            ws.send(message if isinstance(message, str) else json.dumps(message))

    # -------------------------------------------------------------------------------------------- messages

    def _handle(self, raw: str | bytes) -> None:
        metrics = self.adapter.metrics
        try:
            values = self.transport.parse_message(json.loads(raw), self.adapter.values)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            metrics.ws_messages.labels(self.endpoint.name, "error", *metrics.labels).inc()
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning("%s/%s: unusable websocket message (%s: %s): %.200r", self.adapter.name,
                            self.endpoint.name, type(exc).__name__, exc, raw)
            return
        metrics.ws_messages.labels(self.endpoint.name, "data" if values else "control", *metrics.labels).inc()
        received = now_ms()
        heard = time.monotonic()
        for stream_id, outcome in values:
            feeds = self.subscribed.get(stream_id)
            if not feeds:
                continue  # a late message for a feed just unsubscribed
            self._heard[stream_id] = heard
            for params in feeds:
                self._store(params, FeedOutcome(params, outcome, 200, received, received))

    def _store(self, params: Params, feed: FeedOutcome) -> None:
        adapter = self.adapter
        key = adapter.keys.key(self.endpoint.name, params)  # a Redis outage is absorbed by the front layer
        adapter.store(key, adapter.entry_for(feed), self.settings.CACHE_MAX_AGE, params)

    # -------------------------------------------------------------------------------------------- fallback

    def _wait_polling_fallback(self, delay_s: float) -> None:
        """Sleep ``delay_s``, keeping the feeds fresh over HTTP meanwhile when the transport has a fallback."""
        deadline = time.monotonic() + delay_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            if (self.transport.fallback is not None and self.is_leader()
                    and time.monotonic() - self._fallback_at >= self.settings.WARMUP_INTERVAL / 1000):
                self._fallback_at = time.monotonic()
                self._poll_fallback()
            self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    def _poll_fallback(self) -> None:
        try:
            feeds = [params for group in self._wanted().values() for params in group]
        except SharedStoreUnavailable:
            return
        size = max(1, getattr(self.transport.fallback, "max_batch_size", 1))
        for start in range(0, len(feeds), size):
            for feed in self.transport.fetch(feeds[start:start + size], self.adapter.values,
                                             self.adapter.background):
                self._store(feed.params, feed)


def _safe(url: str) -> str:
    """The URL without its query string, which may carry a key."""
    return url.split("?", 1)[0]
