"""Prometheus metrics, correct across gunicorn workers.

Under gunicorn, ``gunicorn.conf.py`` gives the workers a fresh ``PROMETHEUS_MULTIPROC_DIR``: prometheus_client
then keeps each worker's values in files there, and whoever exposes ``/metrics`` (gunicorn's master on
``METRICS_PORT``, or any worker at ``{BASE_URL}metrics``) adds them up. Without it (tests, one process) the
metrics live in this app's own registry, so many apps can coexist in one process.

prometheus-flask-exporter's per-path defaults are not used: they would count every request a second time under
other names and add Flask hooks to the hot path. The catalogue follows the v2/v3 frameworks' names so existing
dashboards keep working; every metric carries ``app_name`` and ``app_version``.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

APP_LABELS = ("app_name", "app_version")
#: Distinct ``feed_id`` label values per process; later feeds are counted under OTHER_FEEDS.
MAX_FEED_LABELS = 2000
OTHER_FEEDS = "[other]"
#: Seconds between writes of the hot path's added-up counts to prometheus_client (and so to the scraped files).
FLUSH_INTERVAL_S = 0.5
#: Labelled series the hot path keeps at hand: each feed's hit, staleness and a few request outcomes.
MAX_REMEMBERED_SERIES = 8 * MAX_FEED_LABELS
# Error labels for http_requests_total{type}, by the status the node was answered with (v2's names).
ERROR_TYPES = {400: "inputError", 404: "inputError", 413: "inputError", 429: "rateLimitError",
               502: "dataProviderError", 503: "adapterError", 504: "timeoutError"}


def multiprocess_dir() -> str | None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return directory if directory and os.path.isdir(directory) else None


class Metrics:
    def __init__(self, app_name: str, version: str) -> None:
        self.labels = (app_name, version)
        self._feeds: set[str] = set()
        self._feeds_lock = threading.Lock()
        # Labelled children by (metric, label values): prometheus_client's ``labels()`` validates and locks on
        # every call, which was the largest part of a cache hit's metrics. Bounded like the feed labels.
        self._children: dict[tuple, Any] = {}
        # Counts and gauge values of the hot path, written out every FLUSH_INTERVAL_S: in multiprocess mode each
        # update is a locked write to a memory-mapped file, and five of them per cache hit cost gthread workers
        # a quarter of their throughput. Added up here, a hit costs one dict update per series.
        self._counts: dict[Any, float] = {}
        self._gauges: dict[Any, float] = {}
        # The request duration histogram's observations, added up the same way: per child, a count per bucket
        # and the sum (an observe() is one locked write for the sum and one for the bucket).
        self._observed: dict[Any, list[float]] = {}
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        shared = multiprocess_dir() is not None
        # In multiprocess mode values go to files, not to a registry; exposition reads the files.
        self._registry = None if shared else CollectorRegistry()
        self.exposition = CollectorRegistry() if shared else self._registry
        if shared:
            MultiProcessCollector(self.exposition)
        self.http_requests = self._counter("http_requests_total", "Requests answered, by outcome",
                                           ("method", "status_code", "type", "feed_id"))
        self.http_duration = self._histogram("http_request_duration_seconds", "Time to answer a request", ())
        self.provider_requests = self._counter("data_provider_requests", "Calls to the data provider",
                                               ("method", "provider_status_code"))
        self.provider_duration = self._histogram("data_provider_request_duration_seconds",
                                                 "Time the data provider took to answer", ())
        self.cache_gets = self._counter("cache_data_get_count", "Requests answered from the cache", ("feed_id",))
        self.cache_sets = self._counter("cache_data_set_count", "Values written to the cache",
                                        ("feed_id", "status_code"))
        self.staleness = self._gauge("cache_data_staleness_seconds",
                                     "Age in seconds of the last value served from the cache", ("feed_id",))
        self.warmer_feeds = self._gauge("cache_warmer_get_count", "Feeds the background keeps fresh",
                                        ("endpoint",))
        self.bg_runs = self._counter("bg_execute_total", "Background refresh cycles", ("endpoint",))
        self.bg_errors = self._counter("bg_execute_errors", "Background refresh cycles that failed", ("endpoint",))
        self.bg_duration = self._histogram("bg_execute_duration_seconds", "Duration of background refresh cycles",
                                           ("endpoint",))
        self.credits = self._counter("rate_limit_credits_spent_total", "Provider quota slots spent", ())
        self.credits_run_out = self._gauge("rate_limit_credits_run_out_timestamp_seconds",
                                           "When this month's provider credits are projected to run out at the "
                                           "pace warming needs (0: they last the month)", ("provider",))
        self.coalescing_waits = self._counter("request_coalescing_waits_total",
                                              "Requests that waited for an identical request's fetch", ())
        self.ws_connections = self._gauge("ws_connection_active", "Open provider websocket connections",
                                          ("endpoint",))
        self.ws_errors = self._counter("ws_connection_errors", "Provider websocket connections that failed or "
                                       "were lost", ("endpoint",))
        self.ws_subscriptions = self._gauge("ws_subscription_active", "Feeds subscribed on provider websockets",
                                            ("endpoint",))
        self.ws_subscribed = self._counter("ws_subscription_total", "Subscribe requests sent to providers",
                                           ("endpoint",))
        self.ws_messages = self._counter("ws_message_total", "Messages received from provider websockets",
                                         ("endpoint", "kind"))

    def start(self) -> None:
        self._flusher = threading.Thread(target=self._flush_periodically, name="pyea-metrics", daemon=True)
        self._flusher.start()

    def close(self) -> None:
        """Stop flushing, after writing out what is pending (a worker's last requests still count)."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(5)
        self.flush()

    def flush(self) -> None:
        with self._pending_lock:
            counts, self._counts = self._counts, {}
            gauges, self._gauges = self._gauges, {}
            observed, self._observed = self._observed, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, value in gauges.items():
            child.set(value)
        for child, tally in observed.items():
            # prometheus_client has no public way to add up observations: what observe() does, n at a time.
            *buckets, total = tally
            for bucket, count in zip(child._buckets, buckets, strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(total)

    def _flush_periodically(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def render(self) -> bytes:
        self.flush()  # this process's own counts are exact; other workers' arrive within FLUSH_INTERVAL_S
        return generate_latest(self.exposition)

    def feed_label(self, feed_id: str) -> str:
        """The ``feed_id`` label, for the first MAX_FEED_LABELS feeds this process sees; ``[other]`` after. Every
        label value is a series held in memory for ever: clients asking for endless distinct feeds (a bug, or
        random symbols) must not grow a worker without bound."""
        if feed_id in self._feeds:
            return feed_id
        with self._feeds_lock:
            if len(self._feeds) < MAX_FEED_LABELS:
                self._feeds.add(feed_id)
                return feed_id
        return OTHER_FEEDS

    def request(self, method: str, status: int, hit: bool, feed_id: str, seconds: float) -> None:
        counter = self._child(self.http_requests, method, status, hit, feed_id)
        histogram = self._child(self.http_duration)
        bucket = bisect.bisect_left(histogram._upper_bounds, seconds)  # the first bound >= seconds, as observe()
        with self._pending_lock:
            self._counts[counter] = self._counts.get(counter, 0.0) + 1
            tally = self._observed.get(histogram)
            if tally is None:
                tally = self._observed[histogram] = [0.0] * (len(histogram._upper_bounds) + 1)
            tally[bucket] += 1
            tally[-1] += seconds

    def cache_hit(self, feed_id: str, received_ms: int) -> None:
        counter, gauge = self._child(self.cache_gets, feed_id), self._child(self.staleness, feed_id)
        staleness = max(0.0, time.time() - received_ms / 1000)
        with self._pending_lock:
            self._counts[counter] = self._counts.get(counter, 0.0) + 1
            self._gauges[gauge] = staleness

    def cache_set(self, feed_id: str, status: int) -> None:
        counter = self._child(self.cache_sets, feed_id, status)
        with self._pending_lock:
            self._counts[counter] = self._counts.get(counter, 0.0) + 1

    def _child(self, metric: Any, *key: Any) -> Any:
        """The hot path's labelled series; a new one is labelled (feed capped, type named) once."""
        found = self._children.get((metric, *key))
        if found is None:
            found = metric.labels(*self._label_values(metric, key), *self.labels)
            if len(self._children) < MAX_REMEMBERED_SERIES:  # feeds past the label cap are not remembered either
                self._children[(metric, *key)] = found
        return found

    def _label_values(self, metric: Any, key: tuple) -> tuple:
        if metric is self.http_requests:
            method, status, hit, feed_id = key
            kind = ("cacheHit" if hit else "dataProviderHit") if status == 200 else ERROR_TYPES.get(status,
                                                                                                   "adapterError")
            return method, str(status), kind, self.feed_label(feed_id)
        if metric is self.cache_sets:
            feed_id, status = key
            return self.feed_label(feed_id), str(status)
        return tuple(self.feed_label(k) for k in key)

    @contextmanager
    def timed_cycle(self, endpoint: str) -> Iterator[None]:
        started = time.perf_counter()
        self.bg_runs.labels(endpoint, *self.labels).inc()
        try:
            yield
        except Exception:
            self.bg_errors.labels(endpoint, *self.labels).inc()
            raise
        finally:
            self.bg_duration.labels(endpoint, *self.labels).observe(time.perf_counter() - started)

    def _counter(self, name: str, doc: str, labels: tuple[str, ...]) -> Counter | Gauge:
        """A count that only grows. prometheus_client names every counter ``<name>_total``, but the v3
        framework's ``data_provider_requests``, ``cache_data_get_count`` and a few others have no suffix, and
        dashboards query them by those names: those are gauges that only ever go up, summed over every worker
        that ever ran (as counters are), so they keep the exact name."""
        if name.endswith("_total"):
            return Counter(name, doc, (*labels, *APP_LABELS), registry=self._registry)
        return Gauge(name, doc, (*labels, *APP_LABELS), registry=self._registry, multiprocess_mode="sum")

    def _histogram(self, name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
        return Histogram(name, doc, (*labels, *APP_LABELS), registry=self._registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, doc, (*labels, *APP_LABELS), registry=self._registry,
                     multiprocess_mode="livemostrecent")
