"""Refresh cycles: keep every live subscription's cache entry fresh, one provider call per batch of feeds.

When any feed of an endpoint is due (missing, errored, or close enough to expiry that it would lapse before the
cycle after next), the cycle refreshes *all* of the endpoint's live feeds. Feeds then stay aligned, so each
cycle costs ceil(feeds / batch size) calls instead of one call per feed drifting on its own schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.errors import RateLimitError
from app.core.transports import Success
from app.fetch.runtime import EndpointRuntime
from app.stores.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger("pyea.warmer")


@dataclass
class WarmerStats:
    """What the leader's refresh cycles did, beyond the bg_execute_* metrics the scheduler records around them."""

    provider_batches: int = 0
    feeds_failed: int = 0
    feeds_dropped: int = 0
    last_batch_sizes: list[int] = field(default_factory=list)


class Warmer:
    def __init__(self, store: SubscriptionStore, still_leader: Callable[[], bool]) -> None:
        self.store = store
        self.still_leader = still_leader
        self.stats = WarmerStats()
        self._failures: dict[str, int] = {}
        self._warned_capacity = False

    def cycle(self, endpoint: EndpointRuntime) -> int:
        """One refresh cycle for ``endpoint``; returns the number of provider calls (batches) made."""
        adapter = endpoint.adapter
        settings = adapter.settings
        started = time.monotonic()
        deadline = started + settings.BACKGROUND_EXECUTE_TIMEOUT / 1000
        subscriptions = self.store.live(f"{adapter.keys.group}:{endpoint.name}:")
        adapter.metrics.warmer_feeds.labels(endpoint.name, *adapter.metrics.labels).set(len(subscriptions))
        if not subscriptions or not any(self._due(endpoint, s) for s in subscriptions):
            return 0
        if len(subscriptions) > settings.CACHE_MAX_ITEMS and not self._warned_capacity:
            log.warning("%d feeds are subscribed but CACHE_MAX_ITEMS is %d: refreshed values will evict each other "
                        "and requests will miss; raise CACHE_MAX_ITEMS", len(subscriptions), settings.CACHE_MAX_ITEMS)
            self._warned_capacity = True
        batches = endpoint.transport.batches(subscriptions)
        sizes = []
        for batch in batches:
            if time.monotonic() > deadline:
                log.warning("%s/%s: refresh cycle stopped at BACKGROUND_EXECUTE_TIMEOUT with %d of %d batches done",
                            adapter.name, endpoint.name, len(sizes), len(batches))
                break
            if not self.still_leader():
                break
            sizes.append(len(batch))
            if not self._refresh(endpoint, batch):
                log.info("%s/%s: provider quota used up; the rest of this cycle waits for the next one",
                         adapter.name, endpoint.name)
                break
        self.stats.provider_batches += len(sizes)
        self.stats.last_batch_sizes = sizes
        return len(sizes)

    def refresh_now(self, endpoint: EndpointRuntime, subscriptions: list[Subscription]) -> None:
        """Fetch feeds a request is waiting for, in as few provider calls as the transport allows."""
        for batch in endpoint.transport.batches(subscriptions):
            if not self.still_leader() or not self._refresh(endpoint, batch):
                return  # not leader any more, or out of quota: the next cycle has them (they stay subscribed)

    def _due(self, endpoint: EndpointRuntime, subscription: Subscription) -> bool:
        entry = endpoint.adapter.cache.get(subscription.key)
        if entry is None or not entry.is_success:
            return True
        settings = endpoint.adapter.settings
        return due_for_refresh(time.time() * 1000 - entry.received_ms, settings.WARMUP_INTERVAL,
                               settings.CACHE_MAX_AGE)

    def _refresh(self, endpoint: EndpointRuntime, batch: list[Subscription]) -> bool:
        """Refresh one batch; False when the rate limit refused it (not the feeds' fault: nothing counted)."""
        adapter = endpoint.adapter
        by_key = {s.key: s for s in batch}
        outcomes = endpoint.transport.fetch([s.params for s in batch], adapter.values, adapter.background)
        if outcomes and all(isinstance(o.outcome, RateLimitError) for o in outcomes):
            return False
        with adapter.cache.batch():
            keys = [endpoint.store_outcome(outcome.params, outcome) for outcome in outcomes]
        for key, outcome in zip(keys, outcomes, strict=True):
            if key not in by_key:
                continue
            if isinstance(outcome.outcome, Success):
                self._failures.pop(key, None)
            else:
                self.stats.feeds_failed += 1
                self._count_failure(endpoint, key)
        return True

    def _count_failure(self, endpoint: EndpointRuntime, key: str) -> None:
        threshold = endpoint.adapter.settings.WARMUP_UNHEALTHY_THRESHOLD
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        if 0 <= threshold <= failures:
            log.warning("%s/%s: dropping feed %s after %d failed refreshes in a row", endpoint.adapter.name,
                        endpoint.name, key, failures)
            self.store.drop(key)
            self._failures.pop(key, None)
            self.stats.feeds_dropped += 1


def due_for_refresh(age_ms: float, interval_ms: int, max_age_ms: int) -> bool:
    """Whether a cached value of ``age_ms`` is refreshed at this check: when it would lapse before the check
    after next (one spare cycle for a failed refresh), decided half an interval early. Decided exactly at that
    point, a value refreshed at the previous check sat just under or over it by a few milliseconds of
    scheduling, and its refreshes came one or two intervals apart at random."""
    return age_ms + 2 * interval_ms + interval_ms / 2 >= max_age_ms
