"""The background side of a process: APScheduler jobs that run only while this process holds the lease.

Every worker competes for the lease on a thread of its own, so a long refresh cycle can never let the lease lapse
while its process is alive. Only a process that wins it builds the APScheduler jobs (and opens the provider's
streams): the others never load APScheduler (and the asyncio it imports) at all, about 3 MiB of each worker
that only waits. A leader that loses the lease keeps its jobs, idle until it leads again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app.background.warmer import Warmer
from app.core.errors import SharedStoreUnavailable
from app.core.transports.http import HttpTransport
from app.stores.lease import Lease, RedisLease

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from app.core.settings import Settings
    from app.fetch.runtime import AdapterRuntime, EndpointRuntime
    from app.observe.metrics import Metrics
    from app.stores.subscriptions import SubscriptionStore

log = logging.getLogger("pyea.scheduler")

#: Feeds per endpoint the leader takes from the "asked for, not cached" set on each poll.
NEW_FEEDS_PER_POLL = 1000


class Background:
    """One per process: the lease, and (while this process leads) the refresh jobs and the streams of
    ``adapters``. ``subscriptions`` are the feeds to keep warm, ``stream_subscriptions`` those on streams."""

    def __init__(self, adapters: Mapping[str, AdapterRuntime], settings: Settings,
                 subscriptions: SubscriptionStore, stream_subscriptions: SubscriptionStore, metrics: Metrics,
                 lease: Lease | RedisLease) -> None:
        self.adapters = adapters
        self.settings = settings
        self.subscriptions = subscriptions
        self.stream_subscriptions = stream_subscriptions
        self.metrics = metrics
        self.lease = lease
        self.leader = False
        #: Times this process has tried to take or renew the lease (tests wait on it).
        self.renewals = 0
        self._stopping = threading.Event()
        self.warmer = Warmer(subscriptions, self.still_leader)
        self.streams: list = []  # StreamSet (app/background/streams.py), one per streamed endpoint
        self.scheduler: BackgroundScheduler | None = None  # built when this process first leads
        self._lease_thread = threading.Thread(target=self._renew_periodically, name="pyea-lease", daemon=True)

    def start(self) -> None:
        self._hold_lease()  # decided before the first request, so /health?deep=1 is right from the start
        self._lease_thread.start()

    def _renew_periodically(self) -> None:
        while not self._stopping.wait(self.lease.ttl_s / 3):
            try:
                self._hold_lease()
            except Exception:  # a bug must not end the only thread that keeps or takes the lease
                log.exception("holding the background lease failed")

    def _start_jobs(self) -> None:
        """The refresh, new-feed and stream jobs, once, in the first process to lead. Only ``_hold_lease`` calls
        this, from ``start`` and then from the lease thread alone, so it never runs twice at once."""
        if self.scheduler is not None:
            return
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        settings = self.settings
        self.scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(max_workers=4)},
                                             job_defaults={"coalesce": True, "max_instances": 1,
                                                           "misfire_grace_time": None})
        now = datetime.now()
        interval = timedelta(milliseconds=settings.WARMUP_INTERVAL)
        for adapter in self.adapters.values():
            for endpoint in adapter.endpoints.values():
                if adapter.streams(endpoint):
                    from app.background.streams import StreamSet  # websockets is loaded only where something streams

                    self.streams.append(StreamSet(endpoint, self.stream_subscriptions, self.still_streaming,
                                                  adapter.config.ws_limits))
                elif adapter.warms(endpoint):
                    self.scheduler.add_job(self._warm, "interval", seconds=interval.total_seconds(),
                                           next_run_time=now + interval, args=(endpoint,),
                                           id=f"warm:{adapter.name}:{endpoint.name}")
        # Feeds a request found missing and did not fetch itself (a reader's, or a background-only transport's):
        # fetched within moments rather than at the next cycle, while the request is still waiting.
        self._by_prefix = {f"{adapter.keys.group}:{endpoint.name}:": endpoint
                           for adapter in self.adapters.values() for endpoint in adapter.endpoints.values()
                           if isinstance(endpoint.transport, HttpTransport)}
        poll = max(settings.CACHE_POLLING_SLEEP_MS, 50) / 1000
        self.scheduler.add_job(self._fetch_new, "interval", seconds=poll, id="new-feeds")
        for adapter in self.adapters.values():
            self.warmer.check_budget(adapter)  # warns now when the subscribed feeds cannot last the month
        self.scheduler.start()
        for stream in self.streams:
            stream.start()

    def stop(self) -> None:
        """Let running jobs finish their current batch, then give the lease up for another process."""
        self._stopping.set()
        if self._lease_thread.is_alive():
            self._lease_thread.join()  # from here on nothing can start the jobs
        for stream in self.streams:
            stream.stop()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.leader:
            self.lease.release()
            self.leader = False
        self.lease.close()

    def still_streaming(self) -> bool:
        """Streams run while this process leads; they follow the lease job's view rather than renewing it."""
        return self.leader and not self._stopping.is_set()

    def still_leader(self) -> bool:
        """Checked before each provider batch: renew now, so a batch never starts on a lease about to lapse."""
        if self._stopping.is_set():
            return False
        self.leader = self.lease.hold()
        return self.leader

    def _hold_lease(self) -> None:
        if self._stopping.is_set():
            return
        self.renewals += 1
        was_leader, self.leader = self.leader, self.lease.hold()
        if self.leader and not was_leader:
            log.info("this process now runs the background jobs (%s)", self.lease.owner)
            self.subscriptions.expire()
            self._start_jobs()
        elif was_leader and not self.leader:
            log.warning("lost the background lease to %s; stopping background work", self.lease.holder())

    def _fetch_new(self) -> None:
        if not self.leader or self._stopping.is_set():
            return
        for prefix, endpoint in self._by_prefix.items():
            try:
                fresh = self.subscriptions.take_new(prefix, NEW_FEEDS_PER_POLL)
                if fresh:
                    self.warmer.refresh_now(endpoint, fresh)
            except SharedStoreUnavailable:
                return  # Redis is down (already logged); the feeds are fetched once it is back
            except Exception:
                log.exception("fetching new feeds of %s/%s failed", endpoint.adapter.name, endpoint.name)

    def _warm(self, endpoint: EndpointRuntime) -> None:
        if not self.leader or self._stopping.is_set():
            return
        try:
            with self.metrics.timed_cycle(endpoint.name):
                self.warmer.cycle(endpoint)
        except SharedStoreUnavailable:
            log.warning("refresh cycle of %s/%s skipped: the shared cache is not answering", endpoint.adapter.name,
                        endpoint.name)
        except Exception:
            log.exception("refresh cycle of %s/%s failed", endpoint.adapter.name, endpoint.name)
