"""Running a streaming transport (websocket or SSE): one connection per streamed endpoint, in the process
holding the lease.

Each stream thread keeps the provider's subscriptions equal to the feeds nodes asked for within
``WS_SUBSCRIPTION_TTL`` (checked every ``RECONCILE_S``), writes every value it receives into the cache, and
heals itself:

- a feed silent for ``WS_SUBSCRIPTION_UNRESPONSIVE_TTL`` is unsubscribed and subscribed again (an SSE stream,
  whose feeds are fixed by its URL, is reopened instead);
- a connection silent that long, or one that misses a pong (``WS_HEARTBEAT_INTERVAL_MS``), is reopened;
- a failed connection is retried with capped exponential back-off and jitter, moving to the next URL when
  the adapter lists failovers, and after reconnecting every live subscription is restored;
- while the stream is down, the transport's HTTP fallback keeps the feeds fresh every ``WARMUP_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import requests
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from app.core.errors import AdapterError, ServiceUnavailableError, SharedStoreUnavailable
from app.core.messages import redacted_url
from app.core.provider_limits import WsLimits
from app.core.retry_timing import capped_backoff_s
from app.core.transports import FeedOutcome, Params, now_ms
from app.core.transports.sse import EventReader, SseTransport
from app.observe.logs import LogThrottle
from app.stores.subscriptions import Subscription

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from app.core.transports.stream import StreamingTransport
    from app.fetch.runtime import EndpointRuntime
    from app.stores.subscriptions import SubscriptionStore

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
    def __init__(self, group: StreamSet, slot: int) -> None:
        endpoint = group.endpoint
        self.group = group
        self.slot = slot
        self.endpoint = endpoint
        self.adapter = endpoint.adapter
        self.transport: StreamingTransport = endpoint.transport  # type: ignore[assignment]
        self.settings = self.adapter.settings
        self.is_leader = group.is_leader
        self.urls = self.transport.stream_urls(self.adapter.values)
        self.subscribed: dict[str, list[Params]] = {}
        self.connected = False
        self._heard: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"stream-{self.adapter.name}-{endpoint.name}-{slot}")
        self._unusable_warnings = LogThrottle(WARN_EVERY_S)
        self._fallback_at = float("-inf")
        metrics = self.adapter.metrics
        self._labels = (endpoint.name, *metrics.labels)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if not self.is_leader() or not self.urls or not self._wanted_or_none():
                self._stop.wait(RECONCILE_S)  # a connection opens only once it has feeds to carry
                continue
            url = self.urls[failures % len(self.urls)]
            try:
                self._connect_and_serve(url)
                failures = 0
            except (OSError, TimeoutError, WebSocketException, requests.RequestException, StreamSilent) as exc:
                failures += 1
                self.adapter.metrics.ws_errors.labels(*self._labels).inc()
                delay = capped_backoff_s(failures, self.settings.WS_RECONNECT_BACKOFF_MS,
                                         self.settings.WS_RECONNECT_BACKOFF_MAX_MS, jitter=0.25)
                log.warning("%s/%s: websocket %s failed (%s: %s); reconnecting in %.1f s", self.adapter.name,
                            self.endpoint.name, redacted_url(url), type(exc).__name__, str(exc)[:200], delay)
                self._wait_polling_fallback(delay)

    def _connect_and_serve(self, url: str) -> None:
        if isinstance(self.transport, SseTransport):
            self._serve_sse(url)
            return
        settings = self.settings
        heartbeat = settings.WS_HEARTBEAT_INTERVAL_MS / 1000
        with connect(url, open_timeout=settings.WS_CONNECTION_OPEN_TIMEOUT / 1000, ping_interval=heartbeat,
                     ping_timeout=heartbeat, close_timeout=1, proxy=None) as ws, self._open(url):
            self._serve(ws)

    @contextlib.contextmanager
    def _open(self, url: str) -> Iterator[None]:
        """Bookkeeping of one open connection; whatever ends it, nothing is subscribed any more."""
        self.connected = True
        self.group.report()
        log.info("%s/%s: %s stream open to %s", self.adapter.name, self.endpoint.name, self.transport.kind,
                 redacted_url(url))
        try:
            yield
        finally:
            self.connected = False
            self.subscribed = {}
            self._heard = {}
            self.group.report()

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

    def _serve_sse(self, base_url: str) -> None:
        """One SSE response carrying exactly the wanted feeds; returns (to be reopened at once) when they change."""
        transport: SseTransport = self.transport  # type: ignore[assignment]
        wanted = self._wanted_or_none()
        if not wanted:
            self._stop.wait(RECONCILE_S)  # nothing to stream yet
            return
        settings = self.settings
        silent_s = settings.WS_SUBSCRIPTION_UNRESPONSIVE_TTL / 1000
        url = transport.stream_url(base_url, sorted(wanted), self.adapter.values)
        response = requests.get(url, headers={"Accept": "text/event-stream", **transport.headers(self.adapter.values)},
                                stream=True, timeout=(settings.WS_CONNECTION_OPEN_TIMEOUT / 1000, silent_s))
        lines: queue.Queue[str | BaseException] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(response, lines), name=f"{self._thread.name}-reader",
                                  daemon=True)
        try:
            response.raise_for_status()
            reader.start()
            with self._open(base_url):
                self.subscribed = wanted
                self.group.report()
                self.adapter.metrics.ws_subscribed.labels(*self._labels).inc(len(wanted))
                self._read_events(lines, silent_s)
        finally:
            response.close()
            if reader.is_alive():
                reader.join(timeout=2)

    def _read_events(self, lines: queue.Queue, silent_s: float) -> None:
        events = EventReader()
        heard = reconciled = time.monotonic()
        while not self._stop.is_set() and self.is_leader():
            try:
                line = lines.get(timeout=RECV_TIMEOUT_S)
            except queue.Empty:
                line = None
            now = time.monotonic()
            if isinstance(line, BaseException):
                raise line
            if line is not None:
                heard = now
                event = events.line(line)
                if event is not None:
                    name, text = event
                    self._handle_values(lambda n=name, t=text: self.transport.parse_event(
                        n, t, self.adapter.values), text)
            elif now - heard > silent_s:
                raise StreamSilent(f"nothing received for {silent_s:g} s")
            if now - reconciled >= RECONCILE_S:
                reconciled = now
                wanted = self._wanted_or_none()
                if wanted is not None and set(wanted) != set(self.subscribed):
                    return  # the feeds changed: reopen with the new set
                if wanted is not None:
                    self.subscribed = wanted
                silent = [s for s in self.subscribed if now - self._heard.get(s, now - silent_s / 2) > silent_s]
                if silent:
                    raise StreamSilent(f"{len(silent)} feeds silent for {silent_s:g} s")

    def _wanted_or_none(self) -> dict[str, list[Params]] | None:
        try:
            return self._wanted()
        except SharedStoreUnavailable:
            return None

    def _wanted(self) -> dict[str, list[Params]]:
        return self.group.wanted_for(self.slot)

    def _reconcile(self, ws: ClientConnection) -> None:
        wanted = self._wanted_or_none()
        if wanted is None:
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
        self.group.report()

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

    def _handle(self, raw: str | bytes) -> None:
        self._handle_values(lambda: self.transport.parse_message(json.loads(raw), self.adapter.values), raw)

    def _handle_values(self, parse: Callable[[], list], raw: str | bytes) -> None:
        metrics = self.adapter.metrics
        try:
            values = parse()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            metrics.ws_messages.labels(self.endpoint.name, "error", *metrics.labels).inc()
            if self._unusable_warnings.ready():
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
                self.endpoint.store_outcome(params, FeedOutcome(params, outcome, 200, received, received))

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
        wanted = self._wanted_or_none()
        if wanted is None:
            return
        feeds = [params for group in wanted.values() for params in group]
        for batch in self.transport.batches(feeds):
            for feed in self.transport.fetch(batch, self.adapter.values, self.adapter.background):
                self.endpoint.store_outcome(feed.params, feed)


class StreamSet:
    """Every connection of one streamed endpoint. A feed goes to the first connection with room under the
    provider's per-connection subscription limit (``limits.json`` ``ws``), so a second connection opens only
    when the first is full, up to the provider's connection limit; a feed beyond both is answered with an
    error at once. Assignments stick, so adding a feed never moves another."""

    def __init__(self, endpoint: EndpointRuntime, store: SubscriptionStore, is_leader: Callable[[], bool],
                 limits: WsLimits) -> None:
        self.endpoint = endpoint
        self.store = store
        self.is_leader = is_leader
        self.prefix = f"{endpoint.adapter.keys.group}:{endpoint.name}:"
        self.per_connection = limits.subscriptions
        self.limits = limits
        self._assigned: dict[str, int] = {}
        self._wanted: dict[str, list[Params]] = {}
        self._refreshed_at = float("-inf")
        self._lock = threading.Lock()
        self.streams = [Stream(self, slot) for slot in range(limits.connections or 1)]

    def start(self) -> None:
        for stream in self.streams:
            stream.start()

    def stop(self) -> None:
        for stream in self.streams:
            stream._stop.set()
        for stream in self.streams:
            stream.stop()

    def report(self) -> None:
        """The endpoint's totals over its connections, for the ws_connection_active/ws_subscription_active
        gauges."""
        metrics = self.endpoint.adapter.metrics
        labels = (self.endpoint.name, *metrics.labels)
        metrics.ws_connections.labels(*labels).set(sum(s.connected for s in self.streams))
        metrics.ws_subscriptions.labels(*labels).set(sum(len(s.subscribed) for s in self.streams))

    def wanted_for(self, slot: int) -> dict[str, list[Params]]:
        """The feeds connection ``slot`` should carry; raises ``SharedStoreUnavailable`` when the store is down."""
        with self._lock:
            if time.monotonic() - self._refreshed_at >= RECONCILE_S / 2:
                self._refresh()
            return {s: feeds for s, feeds in self._wanted.items() if self._assigned.get(s) == slot}

    def _refresh(self) -> None:
        adapter = self.endpoint.adapter
        wanted: dict[str, list[Params]] = {}
        for subscription in self.store.live(self.prefix):
            try:
                stream_id = self.endpoint.transport.stream_id(subscription.params, adapter.values)
            except AdapterError as exc:
                self._refuse(subscription, exc)  # the stream cannot carry it: the request gets the reason now
                continue
            wanted.setdefault(stream_id, []).append(subscription.params)
        for stream_id in [s for s in self._assigned if s not in wanted]:
            del self._assigned[stream_id]
        load = Counter(self._assigned.values())
        for stream_id in sorted(s for s in wanted if s not in self._assigned):
            slot = next((i for i in range(len(self.streams))
                         if self.per_connection is None or load[i] < self.per_connection), None)
            if slot is None:
                error = ServiceUnavailableError(
                    f"the provider's websocket limits are reached ({len(self.streams)} connections x "
                    f"{self.per_connection} subscriptions, limits.json)")
                for params in wanted.pop(stream_id):
                    self._refuse(Subscription(adapter.keys.key(self.endpoint.name, params), self.endpoint.name,
                                              params), error)
                continue
            self._assigned[stream_id] = slot
            load[slot] += 1
        self._wanted = wanted
        self._refreshed_at = time.monotonic()

    def _refuse(self, subscription: Subscription, error: AdapterError) -> None:
        at = now_ms()
        self.endpoint.store_outcome(subscription.params, FeedOutcome(subscription.params, error, None, at, at))
        self.store.drop(subscription.key)


def _read_lines(response: requests.Response, lines: queue.Queue) -> None:
    """The SSE response's lines, into ``lines``; the exception that ended it, last (closing the response from
    the stream thread ends it)."""
    # Chunked responses (what SSE servers send) are read chunk by chunk as they arrive; anything else byte by
    # byte, since waiting for a fuller buffer would hold events back.
    chunk_size = None if response.headers.get("transfer-encoding", "").lower() == "chunked" else 1
    try:
        for line in response.iter_lines(chunk_size=chunk_size, decode_unicode=True):
            lines.put(line)
        lines.put(ConnectionError("the event stream ended"))
    except Exception as exc:  # whatever ended the response is, to the stream, a lost connection
        lines.put(ConnectionError(f"the event stream failed ({type(exc).__name__}: {exc})"))

