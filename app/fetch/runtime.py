"""An adapter at run time: endpoint lookup, symbol overrides, and fetching a feed into the cache.

Fetching is where credits are spent, so it is where duplicates are removed and cold misses are batched: one
fetch per feed at a time in this process (``SingleFlight``); on this machine, the cold misses of an endpoint
arriving together fetched in one batch, and a feed already in one not fetched again (``Batches``); with
``REQUEST_COALESCING_ENABLED``, across instances through an in-flight marker in the shared cache.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from app.core.credits import CreditPlan, plan
from app.core.entries import Cache, CacheEntry, KeyMaker, provider_tag
from app.core.errors import AdapterError, AdapterInputError, DataProviderError, EndpointNotFoundError, RateLimitError
from app.core.messages import short
from app.core.transports import FeedOutcome, Params, Success, now_ms
from app.core.transports.http import HttpTransport
from app.core.transports.stream import StreamingTransport
from app.fetch.batching import Batches
from app.fetch.coalescing import SingleFlight, wait_for_other_process
from app.fetch.machine_batch import Feed
from app.fetch.requester import LimitedSender, RefusedSender, Requester

if TYPE_CHECKING:
    from app.config import AdapterConfig
    from app.core.adapter import Endpoint
    from app.core.answers import LateAnswers
    from app.core.settings import Settings
    from app.fetch.rate_limit import RateLimiter
    from app.observe.metrics import Metrics
    from app.stores.subscriptions import SubscriptionStore

log = logging.getLogger("pyea.runtime")


#: Distinct request ``data`` whose validation each endpoint remembers.
RESOLVED_MEMO_SIZE = 4096
#: Keys of ``data`` besides the endpoint's parameters that change what is fetched.
STEERING = ("overrides", "includes")
#: Larger inputs are validated every time, so the memo stays small whatever clients send (4096 x 512 B).
RESOLVED_MEMO_MAX_CHARS = 512


def runtime_name(endpoint: Endpoint, route: str | None) -> str:
    """The name the runtime of ``endpoint`` served by ``route`` is known by (its cache keys, subscriptions and
    metrics): the endpoint's own for its default transport, ``<name>.<route>`` for the others."""
    default = endpoint.route_of(endpoint.transport)
    return endpoint.name if route == default else f"{endpoint.name}.{route}"


class EndpointRuntime:
    """One endpoint served by one of its transports. An endpoint with ``routes`` has one runtime per route: the
    default route under the endpoint's name, the others as ``<name>.<route>``, each with its own cache keys,
    subscriptions and warming (a value fetched over REST and one streamed are not the same feed)."""

    def __init__(self, adapter: AdapterRuntime, config: AdapterConfig, name: str, route: str | None = None) -> None:
        self.endpoint = next(e for e in config.adapter.endpoints if e.name == name)
        self.route = route or self.endpoint.route_of(self.endpoint.transport)
        self.name = runtime_name(self.endpoint, self.route)
        self.schema = config.schemas[name]
        self.transport = self.endpoint.routes[self.route] if self.route else self.endpoint.transport
        self.adapter = adapter
        self._resolve_memo = functools.lru_cache(maxsize=RESOLVED_MEMO_SIZE)(self._resolve_uncached)
        # Everything in a response's meta that does not change per request, encoded once.
        self.meta_prefix = (f'"meta":{{"adapterName":{json.dumps(adapter.display_name)},'
                            f'"endpoint":{json.dumps(name)},"cacheHit":')

    def routed(self, requested: Any) -> EndpointRuntime:
        """The runtime of the transport a request chose with ``data.transport`` (this one when it chose none)."""
        if requested is None:
            return self
        choices = sorted(self.endpoint.routes)
        if not isinstance(requested, str) or requested.lower() not in self.endpoint.routes:
            valid = f"one of {', '.join(choices)}" if choices else f"not given: {self.name} has one transport"
            raise AdapterInputError(f"data.transport: must be {valid}, got {short(requested)}")
        return self.adapter.endpoints[runtime_name(self.endpoint, requested.lower())]

    def resolve(self, data: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str, bool]:
        """Validated, overridden parameters (read-only), their cache key, their feed id (for metrics), and
        whether the answer is the inverse of the value of the pair those parameters name (``includes``).

        Memoised on the parameters and overrides in the request's data (keys the endpoint ignores do not
        count): nodes ask for the same few feeds again and again, and schema validation would otherwise be the
        largest cost of a cache hit. Invalid data raises and is not kept.
        """
        relevant = [(k, v) for k, v in data.items() if k in self.schema.canonical or k in STEERING]
        if all(type(v) is str for _, v in relevant):
            # The usual bridge request: text values only, keyed as they are (exact types: 1 == True in a tuple).
            items = tuple(sorted(relevant))
            if sum(len(k) + len(v) for k, v in items) <= RESOLVED_MEMO_MAX_CHARS:
                return self._resolve_memo(items)
        text = json.dumps(dict(relevant), sort_keys=True, separators=(",", ":"))
        if len(text) > RESOLVED_MEMO_MAX_CHARS:
            return self._resolve_uncached(text)
        return self._resolve_memo(text)

    def _resolve_uncached(self, key: str | tuple[tuple[str, str], ...],
                          ) -> tuple[Mapping[str, Any], str, str, bool]:
        data = json.loads(key) if isinstance(key, str) else dict(key)
        params = self.schema.normalise(data)
        params, inverse = self._fetched_pair(params, data.get("includes"))
        params = self.adapter.apply_overrides(self, params, data.get("overrides"))
        keys = self.adapter.keys
        return MappingProxyType(params), keys.key(self.name, params), keys.feed_id(params), inverse

    def _fetched_pair(self, params: dict[str, Any], requested: Any) -> tuple[dict[str, Any], bool]:
        """The pair to fetch for an endpoint answering inverse pairs, before symbols become provider ids."""
        base, quote = params.get("base"), params.get("quote")
        if not self.endpoint.includes or not isinstance(base, str) or not isinstance(quote, str):
            return params, False
        include = self.adapter.config.includes.lookup(base, quote, requested)
        if include is None:
            return params, False
        return {**params, "base": include.base, "quote": include.quote}, include.inverse

    def store_outcome(self, params: Params, feed: FeedOutcome) -> str:
        """A background value (a refresh, a stream message) into the cache under ``params``' key, for
        ``CACHE_MAX_AGE``, as any fetch stores it; returns the key."""
        adapter = self.adapter
        key = adapter.keys.key(self.name, params)
        adapter.store(key, adapter.entry_for(feed), adapter.settings.CACHE_MAX_AGE, params)
        return key


#: Where the last good value of a feed is kept (CACHE_STALE_MAX_AGE), beside its cache entry.
STALE_PREFIX = "stale:"


class AdapterRuntime:
    def __init__(self, config: AdapterConfig, settings: Settings, cache: Cache, requester: Requester,
                 subscriptions: SubscriptionStore, limiter: RateLimiter | None, metrics: Metrics,
                 responder: LateAnswers, batches: Batches,
                 stream_subscriptions: SubscriptionStore | None = None) -> None:
        self.config = config
        self.batches = batches
        self.requester = requester
        self.responder = responder
        self.metrics = metrics
        self.subscriptions = subscriptions
        #: Streamed feeds expire after WS_SUBSCRIPTION_TTL, not WARMUP_SUBSCRIPTION_TTL.
        self.stream_subscriptions = stream_subscriptions or subscriptions
        self.limiter = limiter
        self.background = LimitedSender(requester, limiter, background=True, wait_s=settings.WARMUP_INTERVAL / 1000)
        self.name = config.adapter.name
        self.display_name = self.name.upper()
        self.values = config.values
        self.settings = settings
        self.cache = cache
        tag = provider_tag(config.adapter.settings, config.values)
        group = settings.CACHE_KEY_GROUP or self.name
        self.keys = KeyMaker(f"{group}@{tag}" if tag else group, settings.CACHE_KEY_IGNORED_PROPS)
        defaults = [EndpointRuntime(self, config, e.name) for e in config.adapter.endpoints]
        self._lookup = {alias.lower(): rt for rt in defaults for alias in (rt.name, *rt.endpoint.aliases)}
        #: Each declared endpoint's default runtime, by endpoint name.
        self.declared = {rt.name: rt for rt in defaults}
        #: Every runtime, the other routes' included (the background refreshes and streams each).
        self.endpoints = dict(self.declared)
        for default in defaults:
            for route in default.endpoint.routes:
                if route != default.route:
                    other = EndpointRuntime(self, config, default.endpoint.name, route)
                    self.endpoints[other.name] = other
        self._flights = SingleFlight(on_wait=metrics.coalescing_waits.labels(*metrics.labels).inc)
        self._marker_ttl_ms = settings.API_TIMEOUT * (settings.RETRY + 1) + 2000

    def subscribe(self, endpoint: EndpointRuntime, key: str, params: Mapping[str, Any], missed: bool) -> None:
        """Ask the background to keep this feed fresh; on a miss this request will not fetch itself, to fetch it
        now (see ``SubscriptionStore``)."""
        if self.settings.WARMUP_ENABLED and self.settings.CACHE_ENABLED:
            store = self.stream_subscriptions if self.streams(endpoint) else self.subscriptions
            store.subscribe(key, endpoint.name, params, force=missed,
                            announce=missed and not self.fetches_in_foreground(endpoint))

    def warms(self, endpoint: EndpointRuntime) -> bool:
        """Whether the background refreshes the endpoint's feeds by polling the provider (not streamed)."""
        return not self.streams(endpoint) and isinstance(endpoint.transport, HttpTransport | StreamingTransport)

    def credit_plan(self, feed_counts: Mapping[str, int] | None = None) -> CreditPlan | None:
        """How warming paces itself so the provider's monthly credits last the month, from the feeds each polled
        endpoint keeps fresh (``feed_counts`` by endpoint, else counted now); None without a monthly budget."""
        limit = self.limiter.limit if self.limiter is not None else None
        if limit is None or not limit.monthly_budget:
            return None
        if feed_counts is None:
            feed_counts = {rt.name: len(self.subscriptions.live(f"{self.keys.group}:{rt.name}:"))
                           for rt in self.endpoints.values() if self.warms(rt)}
        calls = sum(-(-count // max(1, self.endpoints[name].transport.max_batch_size))
                    for name, count in feed_counts.items())
        return plan(limit.monthly_budget, max(0, self.limiter.month_used()), calls, now_ms(),
                    self.settings.WARMUP_INTERVAL, self.settings.CACHE_MAX_AGE)

    def streams(self, endpoint: EndpointRuntime) -> bool:
        """Whether the endpoint's values arrive over a provider stream (a streaming transport, WS_ENABLED)."""
        return getattr(endpoint.transport, "streamed", False) and self.settings.WS_ENABLED

    def fetches_in_foreground(self, endpoint: EndpointRuntime) -> bool:
        """Whether a request that misses fetches the feed itself; a reader (EA_MODE=reader) leaves every fetch
        to the writers and waits for the cache, as it does for a streamed feed."""
        if self.settings.EA_MODE == "reader":
            return False
        return endpoint.transport.fetches_in_foreground or (
            getattr(endpoint.transport, "streamed", False) and not self.settings.WS_ENABLED)

    def resolve_endpoint(self, requested: Any) -> EndpointRuntime:
        name = requested or self.config.adapter.default_endpoint
        if not name:
            raise AdapterInputError(f"the request names no endpoint and {self.display_name} has no default; "
                                    f"give one of: {self._valid_endpoints()}")
        if not isinstance(name, str):
            raise AdapterInputError(f"endpoint: must be a string, got {short(name)}")
        runtime = self._lookup.get(name.lower())
        if runtime is None:
            raise EndpointNotFoundError(f"adapter {self.display_name} has no endpoint {short(name)}; "
                                        f"valid endpoints: {self._valid_endpoints()}")
        return runtime

    def _valid_endpoints(self) -> str:
        return ", ".join(f"{e.name} (alias {', '.join(e.endpoint.aliases)})" if e.endpoint.aliases else e.name
                         for e in self.declared.values())

    def apply_overrides(self, endpoint: EndpointRuntime, params: dict[str, Any],
                        request_overrides: Any) -> dict[str, Any]:
        """Map symbols to provider ids: ``data.overrides[<adapter>]`` first, then the adapter's own file."""
        mine = self._request_overrides(request_overrides)
        params = dict(params)
        for param in endpoint.endpoint.override_params:
            value = params.get(param)
            if isinstance(value, str):
                symbol = value.upper()
                replacement = mine.get(symbol) or self.config.overrides.get(symbol)
                if replacement:
                    params[param] = replacement
        return params

    def _request_overrides(self, overrides: Any) -> dict[str, str]:
        if overrides is None:
            return {}
        if not isinstance(overrides, dict):
            raise AdapterInputError("data.overrides: must be an object like {\"" + self.name
                                    + "\": {\"ETH\": \"ethereum\"}}, got " + short(overrides))
        mine: dict[str, str] = {}
        for adapter_name, mapping in overrides.items():
            if not isinstance(mapping, dict):
                raise AdapterInputError(f"data.overrides.{adapter_name}: must be an object of symbol to id, "
                                        f"got {short(mapping)}")
            for symbol, replacement in mapping.items():
                if not isinstance(replacement, str) or not replacement:
                    raise AdapterInputError(f"data.overrides.{adapter_name}.{symbol}: must be a non-empty "
                                            f"string, got {short(replacement)}")
            if adapter_name.lower().replace("-", "_") == self.name:
                mine.update({symbol.upper(): replacement for symbol, replacement in mapping.items()})
        return mine

    def cached(self, key: str, max_age: int) -> CacheEntry | None:
        """The cached entry a request with this ``max_age`` accepts (< 0: none; 0: any unexpired one)."""
        settings = self.settings
        if not settings.CACHE_ENABLED or max_age < 0:
            return None
        entry = self.cache.get(key)
        if entry is None:
            return None
        if max_age and time.time() * 1000 - entry.received_ms > max_age:
            return None  # older than this request accepts
        if settings.CACHE_UPDATE_AGE_ON_GET:
            self.cache.touch(key, max_age or settings.CACHE_MAX_AGE)
        return entry

    def stale(self, key: str) -> CacheEntry | None:
        """The last good value of ``key``, if younger than CACHE_STALE_MAX_AGE: what a failed refresh may serve,
        flagged, instead of its error."""
        limit = self.settings.CACHE_STALE_MAX_AGE
        if not limit or not self.settings.CACHE_ENABLED:
            return None
        entry = self.cache.get(STALE_PREFIX + key)
        if entry is None or time.time() * 1000 - entry.received_ms >= limit:
            return None
        return entry

    def fetch(self, endpoint: EndpointRuntime, params: Mapping[str, Any], key: str, ttl_ms: int,
              max_age: int) -> CacheEntry:
        """The entry for ``params`` from the provider, stored in the cache for every other reader."""
        return self._flights.run(key, lambda: self._fetch_once(endpoint, Feed(key, params, ttl_ms), max_age))

    def _fetch_once(self, endpoint: EndpointRuntime, feed: Feed, max_age: int) -> CacheEntry:
        # A request that missed the cache just before another thread's fetch for it finished becomes the
        # leader of a new flight: the value it needs may be in the cache by now.
        entry = self.cached(feed.key, max_age)
        if entry is not None:
            return entry
        if max_age < 0 or not self.settings.CACHE_ENABLED:  # a fresh value, now, for this request alone
            return self._fetch_and_store(endpoint, [feed], False, None)[feed.key]
        if not self.settings.REQUEST_COALESCING_ENABLED:
            return self._batched(endpoint, feed, max_age)
        owner = self.cache.add_marker(feed.key, self._marker_ttl_ms)
        if not owner:
            self.metrics.coalescing_waits.labels(*self.metrics.labels).inc()
            entry = wait_for_other_process(self.cache, feed.key, self.settings)
            if entry is not None:
                return entry
        try:
            return self._batched(endpoint, feed, max_age)
        finally:
            if owner:
                self.cache.delete_marker(feed.key)

    def _batched(self, endpoint: EndpointRuntime, feed: Feed, max_age: int) -> CacheEntry:
        """``feed`` fetched with the other cold misses of its endpoint on this machine (``Batches``)."""
        return self.batches.fetch(f"{self.keys.group}:{endpoint.name}", endpoint.transport.max_batch_size, feed,
                                  lambda: self.cached(feed.key, max_age),
                                  lambda feeds, prepaid, refusal: self._fetch_and_store(endpoint, feeds, prepaid,
                                                                                        refusal),
                                  self.limiter)

    def _fetch_and_store(self, endpoint: EndpointRuntime, feeds: list[Feed], prepaid: bool,
                         refusal: RateLimitError | None) -> dict[str, CacheEntry]:
        """Fetch ``feeds`` in one call to the transport (none when ``refusal`` says the quota had no slot;
        ``prepaid``: the first call's slot is taken) and store every value it returned; the entry of each of
        ``feeds``, by key."""
        if refusal is not None:
            sender = RefusedSender(refusal)
        else:
            sender = LimitedSender(self.requester, self.limiter, background=False,
                                   wait_s=self.settings.RATE_LIMIT_WAIT_MS / 1000, prepaid=prepaid)
        by_id = {id(feed.params): feed for feed in feeds}
        outcomes = [outcome for batch in endpoint.transport.batches([feed.params for feed in feeds])
                    for outcome in endpoint.transport.fetch(batch, self.values, sender)]
        entries: dict[str, CacheEntry] = {}
        with self.cache.batch():
            for outcome in outcomes:
                entry = self.entry_for(outcome)
                feed = by_id.get(id(outcome.params))
                if feed is None:  # a value the transport answered besides the feeds asked for
                    self.store(self.keys.key(endpoint.name, outcome.params), entry, self.settings.CACHE_MAX_AGE,
                               outcome.params)
                    continue
                self.store(feed.key, entry, feed.ttl_ms, outcome.params)
                entries[feed.key] = entry
                if isinstance(outcome.outcome, AdapterError) and refusal is None:
                    # a bad key or a provider outage shows in the log
                    log.warning("fetching %s %s failed: %s %s", endpoint.name, self.keys.feed_id(feed.params),
                                outcome.outcome.name, outcome.outcome.message)
        for feed in feeds:
            if feed.key not in entries:  # a transport that answered other feeds but not this one
                entries[feed.key] = self.entry_for(FeedOutcome(feed.params, AdapterError(
                    "the transport returned no value for this feed"), None, 0, 0))
        return entries

    def store(self, key: str, entry: CacheEntry, ttl_ms: int, params: Mapping[str, Any]) -> None:
        """Successes for ``ttl_ms``; failures briefly (``CACHE_ERROR_MAX_AGE``), except a refused rate-limit
        slot, which says nothing about the feed and would be stale the moment a slot frees up."""
        if not self.settings.CACHE_ENABLED or entry.status_code == RateLimitError.status_code:
            return
        if entry.is_success:
            self.cache.set(key, entry, ttl_ms)
            if self.settings.CACHE_STALE_MAX_AGE:
                self.cache.set(STALE_PREFIX + key, entry, self.settings.CACHE_STALE_MAX_AGE)
        elif self.settings.CACHE_ERROR_MAX_AGE:
            self.cache.set(key, entry, self.settings.CACHE_ERROR_MAX_AGE)
        else:
            return
        self.metrics.cache_set(self.keys.feed_id(params), entry.status_code)

    def entry_for(self, feed: FeedOutcome) -> CacheEntry:
        """Serialise once, at write time: hits then splice text instead of re-encoding objects."""
        outcome = feed.outcome
        if isinstance(outcome, Success) and isinstance(outcome.result, float) and not math.isfinite(outcome.result):
            outcome = DataProviderError(f"the value computed from the provider's answer is {outcome.result}, not "
                                        "a finite number", provider_status_code=feed.provider_status_code)
        if isinstance(outcome, Success):
            if outcome.result is None and outcome.data is not None:
                data = outcome.data  # a value that is not one number: the provider's data is the answer
            elif self.settings.API_VERBOSE and outcome.data is not None:
                data = {**outcome.data, "result": outcome.result}
            else:
                data = {"result": outcome.result}
            timestamps = {"providerDataRequestedUnixMs": feed.requested_ms,
                          "providerDataReceivedUnixMs": feed.received_ms}
            if outcome.provider_indicated_ms is not None:
                timestamps["providerIndicatedTimeUnixMs"] = outcome.provider_indicated_ms
            body = {"data": data, "result": outcome.result, "statusCode": 200,
                    "providerStatusCode": feed.provider_status_code, "timestamps": timestamps}
            return CacheEntry(200, feed.received_ms, json.dumps(body, separators=(",", ":")))
        body = outcome.body()
        body["timestamps"] = {"providerDataRequestedUnixMs": feed.requested_ms,
                              "providerDataReceivedUnixMs": feed.received_ms}
        return CacheEntry(outcome.status_code, feed.received_ms, json.dumps(body, separators=(",", ":")))
