"""Refresh cycles: keep every live subscription's cache entry fresh, one provider call per batch of feeds.

When any feed of an endpoint is due (missing, errored, or close enough to expiry that it would lapse before the
cycle after next), the cycle refreshes *all* of the endpoint's live feeds. Feeds then stay aligned, so each
cycle costs ceil(feeds / batch size) calls instead of one call per feed drifting on its own schedule.

With a monthly credit budget (``app/core/credits.py``) a feed is refreshed only once the budget's refresh period
has passed, within what CACHE_MAX_AGE allows; when even that spends the credits before the month ends, the
leader says so in its log (at start and whenever the feeds grow past it) and in a metric of when they run out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.core.credits import CreditPlan, default_period_ms
from app.core.errors import RateLimitError, SharedStoreUnavailable
from app.core.transports import Success
from app.fetch.runtime import EndpointRuntime
from app.stores.subscriptions import Subscription, SubscriptionStore

if TYPE_CHECKING:
    from app.fetch.runtime import AdapterRuntime

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
        #: Feeds each polled endpoint keeps fresh, by adapter and endpoint, as the last cycle counted them.
        self._feed_counts: dict[str, dict[str, int]] = {}
        self._over_budget: set[str] = set()  # adapters warned about, until their plan fits again

    def cycle(self, endpoint: EndpointRuntime) -> int:
        """One refresh cycle for ``endpoint``; returns the number of provider calls (batches) made."""
        adapter = endpoint.adapter
        settings = adapter.settings
        started = time.monotonic()
        deadline = started + settings.BACKGROUND_EXECUTE_TIMEOUT / 1000
        subscriptions = self.store.live(f"{adapter.keys.group}:{endpoint.name}:")
        adapter.metrics.warmer_feeds.labels(endpoint.name, *adapter.metrics.labels).set(len(subscriptions))
        counts = self._feed_counts.setdefault(adapter.name, {})
        counts[endpoint.name] = len(subscriptions)
        credit_plan = self.check_budget(adapter, counts)
        period = credit_plan.period_ms if credit_plan is not None else None
        if not subscriptions or not any(self._due(endpoint, s, period) for s in subscriptions):
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

    def check_budget(self, adapter: AdapterRuntime, feed_counts: dict[str, int] | None = None) -> CreditPlan | None:
        """The adapter's credit plan for the feeds it keeps fresh; warns (once, until it fits again) and sets the
        run-out metric when the month's credits will not last."""
        try:
            credit_plan = adapter.credit_plan(feed_counts)
        except SharedStoreUnavailable:
            return None  # the count lives in Redis: paced as before until it answers
        if credit_plan is None:
            return None
        metrics = adapter.metrics
        metrics.credits_run_out.labels(adapter.name, *metrics.labels).set((credit_plan.runs_out_ms or 0) / 1000)
        if credit_plan.fits:
            self._over_budget.discard(adapter.name)
        elif adapter.name not in self._over_budget:
            self._over_budget.add(adapter.name)
            log.warning("%s: %s", adapter.name, over_budget_message(credit_plan, adapter.limiter.limit.budget_source))
        return credit_plan

    def _due(self, endpoint: EndpointRuntime, subscription: Subscription, period_ms: int | None) -> bool:
        entry = endpoint.adapter.cache.get(subscription.key)
        if entry is None or not entry.is_success:
            return True
        settings = endpoint.adapter.settings
        return due_for_refresh(time.time() * 1000 - entry.received_ms, settings.WARMUP_INTERVAL,
                               settings.CACHE_MAX_AGE, period_ms)

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


def due_for_refresh(age_ms: float, interval_ms: int, max_age_ms: int, period_ms: int | None = None) -> bool:
    """Whether a cached value of ``age_ms`` is refreshed at this check: when it would lapse before the check
    after next (one spare cycle for a failed refresh), decided half an interval early. Decided exactly at that
    point, a value refreshed at the previous check sat just under or over it by a few milliseconds of
    scheduling, and its refreshes came one or two intervals apart at random. A credit budget's longer
    ``period_ms`` gives up the spare cycle: refreshed once the period has passed (half an interval early), or
    when it would lapse before the next check."""
    if period_ms is not None and period_ms > default_period_ms(interval_ms, max_age_ms):
        return age_ms + interval_ms / 2 >= period_ms or age_ms + 1.5 * interval_ms >= max_age_ms
    return age_ms + 2 * interval_ms + interval_ms / 2 >= max_age_ms


def over_budget_message(credit_plan: CreditPlan, source: str) -> str:
    """What an operator reads when a month's credits will not last: the numbers, and what to change."""
    runs_out = datetime.fromtimestamp((credit_plan.runs_out_ms or 0) / 1000, tz=UTC)
    fixes = ["subscribe fewer feeds", "move to a larger plan (RATE_LIMIT_API_TIER)"]
    if credit_plan.max_age_needed_ms:
        fixes.insert(0, f"raise CACHE_MAX_AGE to at least {credit_plan.max_age_needed_ms} ms")
    return (f"warming {credit_plan.calls_per_refresh} provider call(s) every {credit_plan.period_ms / 1000:g} s "
            f"projects {credit_plan.projected} calls in {credit_plan.month}, over the monthly budget of "
            f"{credit_plan.budget} ({source}; {credit_plan.used} used so far): the credits run out around "
            f"{runs_out:%Y-%m-%d %H:%M} UTC; {', or '.join(fixes)}")
