"""Every setting pyea reads, parsed once from the environment and validated as a whole.

One declaration per setting drives parsing, the all-problems-at-once startup error, ``/status`` and the
settings table in the docs, so those can never drift apart. Names and defaults follow the v2/v3 TypeScript
frameworks so operators switching over keep their environment files.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.core.setting_specs import REDACTED, Problem, Spec, parse_specs, setting


@dataclass(frozen=True)
class Settings:
    """The framework's settings; adapters declare their own (API key, endpoint) beside their code."""

    # server
    BASE_URL: str = setting("/", "URL path the adapter is served under", "server", kind="path")
    EA_HOST: str = setting("127.0.0.1", "Address gunicorn binds to (loopback unless exposed on purpose)",
                           "server")
    EA_PORT: int = setting(8080, "Port gunicorn binds to", "server", minimum=1, maximum=65535)
    EA_WORKERS: int = setting(2, "gunicorn worker processes (see README: measured default)", "server",
                              minimum=1, maximum=64)
    EA_THREADS: int = setting(8, "Threads per gunicorn worker", "server", minimum=1, maximum=256)
    UUID: str = setting("", "Identity of this instance (random when unset)", "server")
    EA_AUTH_TOKEN: str = setting("", "Bearer token every request must carry (Authorization header), except "
                                     "/health", "security")
    EA_ALLOWED_IPS: tuple[str, ...] = setting((), "Client addresses or CIDR ranges allowed to call (403 for "
                                                  "others), except /health", "security", kind="list")
    EA_MODE: str = setting("reader-writer", "reader: serve requests only; writer: run the background only (needs "
                                            "CACHE_TYPE=redis for either)", "server", kind="enum",
                           choices=("reader-writer", "reader", "writer"))
    ADAPTERS: tuple[str, ...] = setting((), "Adapters to serve; the first is also served at BASE_URL "
                                            "(default: coingecko)", "server", kind="list")
    MAX_PAYLOAD_SIZE_LIMIT: int = setting(1048576, "Largest request body accepted", "server",
                                          minimum=1024, maximum=1073741824, unit="bytes")
    API_VERBOSE: bool = setting(False, "Put the provider's whole answer in data", "server")
    # logging
    LOG_LEVEL: str = setting("info", "Log level", "logging", kind="enum",
                             choices=("debug", "info", "warning", "warn", "error", "critical"))
    LOG_FORMAT: str = setting("", "json (one object per line) or pretty (default: json, pretty when "
                                  "NODE_ENV=development)", "logging", kind="enum", choices=("json", "pretty"))
    NODE_ENV: str = setting("production", "development switches logs to pretty", "logging")
    DEBUG: bool = setting(False, "Include stack traces in 500 responses", "logging")
    CORRELATION_ID_ENABLED: bool = setting(True, "Tag log lines with x-correlation-id (or a generated id)",
                                           "logging")
    # timeouts
    API_TIMEOUT: int = setting(30000, "Timeout of one provider request", "timeouts", minimum=100,
                               maximum=600000, unit="ms")
    RETRY: int = setting(1, "Retries of a provider request on connection errors, 5xx and 429", "timeouts",
                         minimum=0, maximum=10)
    CACHE_POLLING_MAX_RETRIES: int = setting(10, "Cache checks while a background-only feed's first value is awaited",
                                             "timeouts", minimum=0, maximum=1000)
    CACHE_POLLING_SLEEP_MS: int = setting(200, "Pause between those checks", "timeouts", minimum=1, unit="ms")
    BACKGROUND_EXECUTE_TIMEOUT: int = setting(90000, "Longest one background refresh cycle may run", "timeouts",
                                              minimum=100, unit="ms")
    # asynchronous endpoints (the node's responseURL)
    ASYNC_WORKERS: int = setting(4, "Threads per worker computing and delivering asynchronous answers", "async",
                                 minimum=1, maximum=64)
    ASYNC_RESPONSE_TIMEOUT: int = setting(10000, "Timeout of one PATCH of an answer to the node's responseURL",
                                          "async", minimum=100, maximum=600000, unit="ms")
    ASYNC_RESPONSE_RETRIES: int = setting(5, "Retries of that PATCH while the node is unreachable or answers "
                                             "5xx/429", "async", minimum=0, maximum=20)
    ASYNC_RESPONSE_BACKOFF_MS: int = setting(1000, "First wait before retrying it; doubles on each failure (at "
                                                   "most 30 s)", "async", minimum=10, maximum=30000, unit="ms")
    # cache
    CACHE_ENABLED: bool = setting(True, "Serve and store provider answers through the cache", "cache")
    CACHE_TYPE: str = setting("local", "local (diskcache, shared by the workers of one VM) or redis",
                              "cache", kind="enum", choices=("local", "redis"))
    CACHE_DIR: str = setting("", "Directory of the local cache, and of the lock files that coalesce one machine's "
                                 "workers (with Redis too) (default: ./cache)", "cache")
    # redis (CACHE_TYPE=redis)
    CACHE_REDIS_URL: str = setting("", "redis://, rediss:// (TLS) or unix:// URL; wins over host, port and path",
                                   "redis", sensitive=True)
    CACHE_REDIS_HOST: str = setting("127.0.0.1", "Redis host", "redis")
    CACHE_REDIS_PORT: int = setting(6379, "Redis port", "redis", minimum=1, maximum=65535)
    CACHE_REDIS_PATH: str = setting("", "Redis unix socket path (instead of host and port)", "redis")
    CACHE_REDIS_PASSWORD: str = setting("", "Redis password", "redis")
    CACHE_REDIS_TIMEOUT: int = setting(500, "Longest wait for one Redis command; past it the instance answers from "
                                            "what it holds itself", "redis", minimum=10, maximum=60000, unit="ms")
    CACHE_KEY_GROUP: str = setting("", "Prefix of cache keys (default: the adapter name)", "cache")
    CACHE_KEY_IGNORED_PROPS: tuple[str, ...] = setting((), "More data keys left out of cache keys", "cache",
                                                       kind="list")
    CACHE_MAX_AGE: int = setting(90000, "Time a value stays cached when the request gives no maxAge",
                                 "cache", minimum=100, unit="ms")
    CACHE_MIN_AGE: int = setting(30000, "Lowest per-request maxAge honoured", "cache", minimum=0, unit="ms")
    CACHE_MAX_ITEMS: int = setting(10000, "Entries kept in the local cache (oldest written evicted first)",
                                   "cache", minimum=1)
    CACHE_FRONT_TTL: int = setting(250, "Time a worker keeps a hot entry in memory before reading the shared "
                                        "cache again (0: off)", "cache", minimum=0, maximum=1000, unit="ms")
    CACHE_UPDATE_AGE_ON_GET: bool = setting(False, "A read extends the entry's expiry", "cache")
    CACHE_STALE_MAX_AGE: int = setting(0, "When a refresh fails, serve the last good value (flagged stale) while "
                                          "it is younger than this (0: never)", "cache", minimum=0, unit="ms")
    CACHE_ERROR_MAX_AGE: int = setting(5000, "Time a provider failure is remembered so a broken feed does "
                                             "not burn credits (0: never)", "cache", minimum=0, unit="ms")
    # background warming
    WARMUP_ENABLED: bool = setting(True, "Keep every requested feed fresh in the background", "warmup")
    WARMUP_INTERVAL: int = setting(0, "Time between refresh cycles (default: CACHE_MIN_AGE)", "warmup", minimum=0,
                                   unit="ms")
    WARMUP_UNHEALTHY_THRESHOLD: int = setting(3, "Failed refreshes in a row before a feed is dropped (-1: never)",
                                              "warmup", minimum=-1)
    WARMUP_SUBSCRIPTION_TTL: int = setting(3600000, "A feed nobody asked for this long stops being refreshed",
                                           "warmup", minimum=100, unit="ms")
    # rate limit (tier validated at startup)
    RATE_LIMIT_ENABLED: bool = setting(True, "Limit outbound provider calls", "rate limit")
    LIMITS_FILE: str = setting("", "Providers' published limits (default: the limits.json shipped with pyea)",
                               "rate limit")
    RATE_LIMIT_API_PROVIDER: str = setting("", "Provider in limits.json (default: the adapter name)",
                                           "rate limit")
    RATE_LIMIT_API_TIER: str = setting("", "Tier in limits.json (default: the provider's first tier)",
                                       "rate limit")
    RATE_LIMIT_CAPACITY: int | None = setting(None, "Calls per minute, instead of a tier", "rate limit",
                                              kind="int", minimum=1)
    RATE_LIMIT_CAPACITY_SECOND: int | None = setting(None, "Calls per second, instead of a tier",
                                                     "rate limit", kind="int", minimum=1)
    RATE_LIMIT_CAPACITY_MINUTE: int | None = setting(None, "Calls per minute, instead of a tier",
                                                     "rate limit", kind="int", minimum=1)
    RATE_LIMIT_MONTHLY_BUDGET: int | None = setting(None, "Provider calls a calendar month may use (default: the "
                                                          "tier's monthlyCredits in limits.json); warming is paced "
                                                          "to stay within it", "rate limit", kind="int", minimum=1)
    RATE_LIMIT_WAIT_MS: int = setting(5000, "Longest a cold request waits for the provider's quota to allow a call "
                                            "before it is answered 429 (at most API_TIMEOUT)", "rate limit",
                                      minimum=0, maximum=600000, unit="ms")
    # metrics
    METRICS_ENABLED: bool = setting(True, "Expose Prometheus metrics", "metrics")
    EXPERIMENTAL_METRICS_ENABLED: bool = setting(True, "v2 name of METRICS_ENABLED; false also turns metrics off",
                                                 "metrics")
    METRICS_PORT: int = setting(9080, "Port of the metrics endpoint (served by gunicorn's master)", "metrics",
                                minimum=1, maximum=65535)
    METRICS_USE_BASE_URL: bool = setting(False, "Serve metrics at {BASE_URL}metrics on the main port instead",
                                         "metrics")
    METRICS_NAME: str = setting("", "app_name label of every metric (default: the default adapter's name)",
                                "metrics")
    # out-of-process adapters (<NAME>_CMD) and Prometheus discovery
    EA_DISCOVERY_HOSTNAME: str = setting("", "Host Prometheus is told to scrape in /discovery (default: EA_HOST when "
                                             "it is one address, else the machine's hostname)", "host")
    PLUGIN_METRICS_TIMEOUT_MS: int = setting(1000, "Longest wait for an out-of-process adapter's metrics (less when "
                                                   "Prometheus' scrape timeout is shorter)", "host",
                                             minimum=50, maximum=60000, unit="ms")
    PLUGIN_HEALTH_INTERVAL_MS: int = setting(2000, "Time between health checks of an out-of-process adapter", "host",
                                             minimum=100, maximum=600000, unit="ms")
    PLUGIN_HEALTH_FAILURES: int = setting(3, "Failed health checks in a row before the adapter is restarted",
                                          "host", minimum=1, maximum=100)
    PLUGIN_START_TIMEOUT_MS: int = setting(30000, "Time an out-of-process adapter has to answer /health after "
                                                  "it starts", "host", minimum=500, unit="ms")
    PLUGIN_RESTART_BACKOFF_MS: int = setting(500, "First wait before restarting a dead adapter; doubles on each "
                                                  "failure in a row", "host", minimum=10, unit="ms")
    PLUGIN_RESTART_BACKOFF_MAX_MS: int = setting(30000, "Longest wait between restarts", "host", minimum=10,
                                                 unit="ms")
    # websockets
    WS_ENABLED: bool = setting(False, "Stream values over the provider's websocket where the adapter can (else "
                                      "its HTTP fallback is polled)", "websockets")
    WS_SUBSCRIPTION_TTL: int = setting(120000, "A streamed feed nobody asked for this long is unsubscribed",
                                       "websockets", minimum=250, unit="ms")
    WS_SUBSCRIPTION_UNRESPONSIVE_TTL: int = setting(120000, "A subscribed feed silent this long is resubscribed; "
                                                            "a connection silent this long is reopened",
                                                    "websockets", minimum=100, unit="ms")
    WS_CONNECTION_OPEN_TIMEOUT: int = setting(10000, "Longest wait for a websocket to open", "websockets",
                                              minimum=100, unit="ms")
    WS_HEARTBEAT_INTERVAL_MS: int = setting(10000, "Time between pings on an open websocket (a missed pong "
                                                   "reopens it)", "websockets", minimum=100, unit="ms")
    WS_RECONNECT_BACKOFF_MS: int = setting(500, "First wait before reopening a failed websocket; doubles on each "
                                                "failure in a row", "websockets", minimum=10, unit="ms")
    WS_RECONNECT_BACKOFF_MAX_MS: int = setting(30000, "Longest wait between reopening attempts", "websockets",
                                               minimum=10, unit="ms")
    # coalescing
    REQUEST_COALESCING_ENABLED: bool = setting(False, "Coalesce identical cold requests across instances "
                                                      "sharing Redis (one machine's workers always are)",
                                               "coalescing")
    REQUEST_COALESCING_INTERVAL: int = setting(100, "First wait for another process's fetch", "coalescing",
                                               minimum=1, unit="ms")
    REQUEST_COALESCING_INTERVAL_MAX: int = setting(1000, "Longest single wait", "coalescing", minimum=1,
                                                   unit="ms")
    REQUEST_COALESCING_INTERVAL_COEFFICIENT: int = setting(2, "Growth of the wait", "coalescing", minimum=1,
                                                           maximum=10)
    REQUEST_COALESCING_ENTROPY_MAX: int = setting(0, "Random extra wait before the first check",
                                                  "coalescing", minimum=0, unit="ms")
    REQUEST_COALESCING_MAX_RETRIES: int = setting(5, "Checks before fetching anyway", "coalescing",
                                                  minimum=0, maximum=100)
    FOREGROUND_BATCH_WINDOW_MS: int = setting(20, "Cold misses of one endpoint arriving within this of each other, in "
                                                 "any worker of the machine, are fetched in one batch (0: each on "
                                                 "its own)", "coalescing", minimum=0, maximum=1000, unit="ms")

    @classmethod
    def specs(cls) -> list[Spec]:
        return [Spec(name=f.name, **f.metadata["spec"]) for f in dataclasses.fields(cls)]

    @classmethod
    def parse(cls, environ: Mapping[str, str] | None = None) -> tuple[Settings, list[Problem]]:
        """Parse and cross-check; problems are returned so callers can add their own before raising."""
        env = os.environ if environ is None else environ
        values, problems = parse_specs(cls.specs(), env)
        bad = {p.name for p in problems}
        if not bad & {"CACHE_MIN_AGE", "CACHE_MAX_AGE"} and values["CACHE_MIN_AGE"] > values["CACHE_MAX_AGE"]:
            problems.append(Problem("CACHE_MIN_AGE", str(values["CACHE_MIN_AGE"]),
                                    f"<= CACHE_MAX_AGE ({values['CACHE_MAX_AGE']})"))
        if values["REQUEST_COALESCING_INTERVAL"] > values["REQUEST_COALESCING_INTERVAL_MAX"]:
            problems.append(Problem("REQUEST_COALESCING_INTERVAL", str(values["REQUEST_COALESCING_INTERVAL"]),
                                    "<= REQUEST_COALESCING_INTERVAL_MAX"))
        if values["EA_MODE"] != "reader-writer" and values["CACHE_TYPE"] == "local" and not bad & {"EA_MODE",
                                                                                                  "CACHE_TYPE"}:
            problems.append(Problem("EA_MODE", values["EA_MODE"], "reader-writer while CACHE_TYPE=local: readers "
                                    "and writers only meet through a shared cache, so set CACHE_TYPE=redis"))
        for network in values["EA_ALLOWED_IPS"]:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                problems.append(Problem("EA_ALLOWED_IPS", network, "IP addresses or CIDR ranges (10.0.0.0/8)"))
        url = values["CACHE_REDIS_URL"]
        if url and not re.match(r"^(rediss?://[^\s]+|unix://\S+)$", url):
            problems.append(Problem("CACHE_REDIS_URL", REDACTED, "a redis://, rediss:// or unix:// URL"))
        if values["PLUGIN_RESTART_BACKOFF_MS"] > values["PLUGIN_RESTART_BACKOFF_MAX_MS"]:
            problems.append(Problem("PLUGIN_RESTART_BACKOFF_MS", str(values["PLUGIN_RESTART_BACKOFF_MS"]),
                                    "<= PLUGIN_RESTART_BACKOFF_MAX_MS"))
        if not bad & {"RATE_LIMIT_WAIT_MS", "API_TIMEOUT"} and values["RATE_LIMIT_WAIT_MS"] > values["API_TIMEOUT"]:
            if "RATE_LIMIT_WAIT_MS" in env:
                problems.append(Problem("RATE_LIMIT_WAIT_MS", str(values["RATE_LIMIT_WAIT_MS"]),
                                        f"<= API_TIMEOUT ({values['API_TIMEOUT']}): a node waits no longer"))
            else:  # the default follows a shorter API_TIMEOUT
                values["RATE_LIMIT_WAIT_MS"] = values["API_TIMEOUT"]
        if not values["WARMUP_INTERVAL"]:
            values["WARMUP_INTERVAL"] = max(values["CACHE_MIN_AGE"], 100)
        if not values["UUID"]:
            values["UUID"] = str(uuid.uuid4())
        if not values["CACHE_DIR"]:
            values["CACHE_DIR"] = os.path.abspath("cache")
        # An IPv6 address may be written as in a URL ([::1]); gunicorn's bind adds the brackets itself.
        values["EA_HOST"] = values["EA_HOST"].removeprefix("[").removesuffix("]")
        if not values["LOG_FORMAT"]:
            values["LOG_FORMAT"] = "pretty" if values["NODE_ENV"] == "development" else "json"
        return cls(**values), problems

    @property
    def metrics_enabled(self) -> bool:
        return self.METRICS_ENABLED and self.EXPERIMENTAL_METRICS_ENABLED

    def redacted(self) -> list[dict[str, Any]]:
        """Every setting with its value for ``/status``; secrets never leave the process."""
        rows = []
        for spec in self.specs():
            value = getattr(self, spec.name)
            rows.append({"name": spec.name, "value": REDACTED if spec.is_secret and value else value,
                         "default": spec.default, "group": spec.group, "description": spec.description})
        return rows
