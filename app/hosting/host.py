"""The per-process runtime: the adapters' runtimes over one cache, one requester and one background.

Built from a ``Config`` that ``app.config.load_config`` has already validated; this is where things are opened.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING

from app.background.async_responses import AsyncResponder
from app.background.scheduler import Background
from app.config import Config
from app.core.entries import Cache
from app.core.errors import SharedStoreUnavailable
from app.core.provider_limits import RateLimit
from app.core.setting_specs import Problem, SettingsError
from app.core.settings import Settings
from app.core.version import __version__
from app.fetch.batching import Batches
from app.fetch.rate_limit import RateLimiter
from app.fetch.requester import Requester
from app.fetch.runtime import AdapterRuntime
from app.observe.metrics import Metrics
from app.stores.cache import make_cache
from app.stores.lease import Lease, RedisLease
from app.stores.subscriptions import RedisSubscriptionStore, SubscriptionStore
from app.web.remote import RemoteAdapter

if TYPE_CHECKING:
    from app.stores.redis_client import Shared


class Host:
    """Everything one process serves with: the adapters' runtimes over one cache and one requester."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.settings
        self.started = time.time()
        unassigned = [Problem(f"{cfg.adapter.name.upper()}_CMD", cfg.cmd, "used with gunicorn.conf.py (`pyea "
                              "serve`), whose master assigns the adapter's port and starts its process")
                      for cfg in config.adapters if cfg.cmd and cfg.adapter.name not in config.ports]
        if unassigned:
            raise SettingsError(unassigned)
        self.shared = _connect(self.settings)
        if self.shared is not None:
            # Not fatal: Redis may come up after pyea, and the instance recovers by itself when it does.
            with contextlib.suppress(SharedStoreUnavailable):
                self.shared.run(lambda r: r.ping())
        cache, problems = make_cache(config.settings, self.shared)
        if problems:
            raise SettingsError(problems)
        self.cache: Cache = cache
        self.metrics = Metrics(self.settings.METRICS_NAME or config.adapters[0].adapter.name, __version__)
        self.requester = Requester(timeout_ms=self.settings.API_TIMEOUT, retries=self.settings.RETRY,
                                   pool_size=max(self.settings.EA_THREADS, 4), secrets=config.secrets(),
                                   metrics=self.metrics)
        self.subscriptions = self._subscription_store(self.settings.WARMUP_SUBSCRIPTION_TTL)
        self.stream_subscriptions = self._subscription_store(self.settings.WS_SUBSCRIPTION_TTL)
        self.responder = AsyncResponder(self.settings.ASYNC_WORKERS, self.settings.ASYNC_RESPONSE_TIMEOUT,
                                        self.settings.ASYNC_RESPONSE_RETRIES, self.settings.ASYNC_RESPONSE_BACKOFF_MS)
        self.limiters = {cfg.adapter.name: self._limiter(cfg.rate_limit)
                         for cfg in config.adapters if cfg.rate_limit is not None}
        self.batches = Batches(os.path.join(self.settings.CACHE_DIR, "pyea-batches"),
                               self.settings.FOREGROUND_BATCH_WINDOW_MS, self.settings.RATE_LIMIT_WAIT_MS)
        self.adapters: dict[str, AdapterRuntime] = {
            cfg.adapter.name: AdapterRuntime(cfg, self.settings, self.cache, self.requester, self.subscriptions,
                                             self.limiters.get(cfg.adapter.name), self.metrics,
                                             self.responder, self.batches, self.stream_subscriptions)
            for cfg in config.adapters if not cfg.cmd}
        self.remotes = {cfg.adapter.name: RemoteAdapter(cfg.adapter.name, config.ports[cfg.adapter.name],
                                                        self.settings)
                        for cfg in config.adapters if cfg.cmd}
        self.default: AdapterRuntime | RemoteAdapter = (self.adapters.get(config.adapters[0].adapter.name)
                                                        or self.remotes[config.adapters[0].adapter.name])
        self.background: Background | None = None

    def _subscription_store(self, ttl_ms: int) -> SubscriptionStore:
        """Entries carry their own expiry, so stores with different TTLs can share one backing store."""
        if self.shared is not None:
            return RedisSubscriptionStore(self.shared, ttl_ms)
        return SubscriptionStore(os.path.join(self.settings.CACHE_DIR, "pyea-subscriptions"), ttl_ms)

    def _limiter(self, limit: RateLimit) -> RateLimiter:
        if self.shared is not None:
            from app.fetch.rate_limit_redis import RedisRateLimiter

            return RedisRateLimiter(self.shared, limit, limit.provider)
        return RateLimiter(os.path.join(self.settings.CACHE_DIR, "pyea-ratelimit"), limit, limit.provider)

    def _lease(self) -> Lease | RedisLease:
        """One leader per deployment: per VM with the local cache, across every instance with Redis."""
        if self.shared is not None:
            return RedisLease(self.shared, self.settings.CACHE_KEY_GROUP or ",".join(sorted(self.adapters)))
        return Lease(os.path.join(self.settings.CACHE_DIR, "pyea-leases"))

    def start_background(self) -> None:
        """Start the warming jobs (they only work in the process holding the lease); never in a reader."""
        settings = self.settings
        if (settings.WARMUP_ENABLED and settings.CACHE_ENABLED and settings.EA_MODE != "reader"
                and self.background is None):
            self.background = Background(self.adapters, settings, self.subscriptions, self.stream_subscriptions,
                                         self.metrics, self._lease())
            self.background.start()

    def close(self) -> None:
        if self.background is not None:
            self.background.stop()
        self.responder.close()
        self.metrics.close()
        self.requester.close()
        for remote in self.remotes.values():
            remote.close()
        for limiter in self.limiters.values():
            limiter.close()
        self.subscriptions.close()
        self.stream_subscriptions.close()
        self.batches.close()
        self.cache.close()
        if self.shared is not None:
            self.shared.close()


def _connect(settings: Settings) -> Shared | None:
    if settings.CACHE_TYPE != "redis":
        return None
    from app.stores.redis_client import Shared, connect, describe_target

    return Shared(connect(settings), describe_target(settings))


