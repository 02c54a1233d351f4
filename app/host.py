"""Loading adapters and their files into one validated configuration, then the per-process runtime.

``load_config`` reads and checks everything (settings, adapter settings, schemas, overrides, limits) and raises
one ``SettingsError`` listing every problem; it opens nothing, so ``gunicorn.conf.py`` can call it in the
master to refuse a bad start before any worker forks. ``Host`` then opens the cache and the requester.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import pkgutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import adapters as adapters_package
from app import __version__
from app.adapter import Adapter, Endpoint
from app.async_responses import AsyncResponder
from app.cache import Cache, make_cache
from app.errors import SharedStoreUnavailable
from app.leader import Lease, RedisLease
from app.limits import RateLimit, WsLimits, load_limits, resolve_rate_limit, resolve_ws_limits
from app.metrics import Metrics
from app.ratelimit import RateLimiter
from app.remote import RemoteAdapter
from app.requester import Requester
from app.runtime import AdapterRuntime
from app.scheduler import Background
from app.settings import MIN_SECRET_LENGTH, Problem, Settings, SettingsError, Spec, parse_specs
from app.subscriptions import RedisSubscriptionStore, SubscriptionStore
from app.supervisor import PORTS_ENV, PREFIXED_ONLY_ENV, decode_ports, parse_command
from app.validation import InputSchema, SchemaDefinitionError

if TYPE_CHECKING:
    from app.shared import Shared

DEFAULT_ADAPTER = "coingecko"
RESERVED_ROUTES = {"health", "status", "metrics", "discovery", "plugins", "openapi.json"}
CMD_SPEC = Spec("CMD", "", "Command that serves this adapter as its own process (unset: in the host)", "host")


@dataclass(frozen=True)
class AdapterConfig:
    adapter: Adapter
    values: Mapping[str, Any]
    schemas: Mapping[str, InputSchema]
    overrides: Mapping[str, str]
    rate_limit: RateLimit | None
    #: ``<NAME>_CMD``: the command that serves this adapter in its own process ("" = in the host's workers).
    cmd: str = ""
    ws_limits: WsLimits = dataclasses.field(default_factory=WsLimits)


@dataclass(frozen=True)
class Config:
    settings: Settings
    adapters: tuple[AdapterConfig, ...]
    #: Loopback port of each out-of-process adapter, assigned by gunicorn's master (``PYEA_ADAPTER_PORTS``).
    ports: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Values to scrub from every log line and error message. Values shorter than MIN_SECRET_LENGTH are
        left alone: scrubbing a one-letter test key would mangle every word containing that letter."""
        values = [str(cfg.values[spec.name]) for cfg in self.adapters for spec in cfg.adapter.settings
                  if spec.is_secret and cfg.values.get(spec.name)]
        values += [str(getattr(self.settings, spec.name)) for spec in Settings.specs()
                   if spec.is_secret and getattr(self.settings, spec.name)]
        return [value for value in values if len(value) >= MIN_SECRET_LENGTH]


def schemas_dir() -> Path:
    return Path(adapters_package.__file__).resolve().parent.parent / "schemas"


def available_adapters() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(adapters_package.__path__) if m.ispkg)


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    settings, problems = Settings.parse(env)
    names = [n.lower() for n in settings.ADAPTERS] or [DEFAULT_ADAPTER]
    known = available_adapters()
    limits, limit_problems = load_limits(Path(settings.LIMITS_FILE) if settings.LIMITS_FILE else None)
    problems += limit_problems
    configs = []
    for index, name in enumerate(names):
        if name not in known or name in RESERVED_ROUTES:
            problems.append(Problem("ADAPTERS", name, "adapters among: " + ", ".join(known)))
            continue
        default = index == 0 and not env.get(PREFIXED_ONLY_ENV)
        config, adapter_problems = _load_adapter(name, settings, env, limits, default=default)
        problems += adapter_problems
        if config:
            configs.append(config)
    if not any(p.name == "CACHE_DIR" for p in problems):
        from app.cache.local import directory_problem, open_problem

        check = open_problem if settings.CACHE_TYPE == "local" else directory_problem
        storage = check(settings.CACHE_DIR)
        problems += [storage] if storage else []
    try:
        ports = decode_ports(env.get(PORTS_ENV, ""))
    except ValueError as exc:
        ports = {}
        problems.append(Problem(PORTS_ENV, env.get(PORTS_ENV), str(exc)))
    if problems:
        raise SettingsError(problems)
    return Config(settings, tuple(configs), ports)


def _load_adapter(name: str, settings: Settings, env: Mapping[str, str], limits: dict[str, Any],
                  default: bool) -> tuple[AdapterConfig | None, list[Problem]]:
    module = importlib.import_module(f"adapters.{name}")
    adapter: Adapter = module.adapter
    prefixes = (f"{name.upper()}_", "") if default else (f"{name.upper()}_",)
    values, problems = parse_specs(adapter.settings, env, prefixes)
    schemas, schema_problems = load_schemas(name, adapter)
    overrides, override_problems = load_overrides(name, Path(module.__file__).parent)
    problems += schema_problems + override_problems
    rate_settings, rate_problems, prefix = _adapter_rate_settings(settings, name, env)
    rate_limit, limit_problems = resolve_rate_limit(rate_settings, name, limits, prefix)
    ws_limits, ws_problems = resolve_ws_limits(rate_settings, name, limits, prefix)
    problems += rate_problems + limit_problems + ws_problems
    cmd_values, cmd_problems = parse_specs([CMD_SPEC], env, (f"{name.upper()}_",))
    cmd = cmd_values["CMD"]
    if cmd:
        try:
            parse_command(cmd)
        except ValueError as exc:
            cmd_problems.append(Problem(f"{name.upper()}_CMD", cmd, str(exc)))
    problems += cmd_problems
    if problems:
        return None, problems
    return AdapterConfig(adapter, values, schemas, overrides, rate_limit, cmd, ws_limits), []


def load_schemas(name: str, adapter: Adapter) -> tuple[dict[str, InputSchema], list[Problem]]:
    """Each endpoint's ``schemas/<adapter>/<endpoint>.json``, compiled."""
    schemas: dict[str, InputSchema] = {}
    problems: list[Problem] = []
    for endpoint in adapter.endpoints:
        try:
            schemas[endpoint.name] = InputSchema.from_file(schemas_dir() / name / f"{endpoint.name}.json")
        except SchemaDefinitionError as exc:
            problems.append(Problem(f"schema {name}/{endpoint.name}", None, f"a usable schema: {exc}"))
    return schemas, problems


def load_overrides(name: str, package_dir: Path) -> tuple[dict[str, str], list[Problem]]:
    """The adapter's built-in symbol map (``overrides.json``, optional)."""
    overrides_file = package_dir / "overrides.json"
    if not overrides_file.exists():
        return {}, []
    try:
        return {k.upper(): v for k, v in json.loads(overrides_file.read_text("utf-8")).items()}, []
    except (ValueError, AttributeError) as exc:
        return {}, [Problem(f"{name} overrides.json", None, f"a JSON object of symbol: id ({exc})")]


def _adapter_rate_settings(settings: Settings, name: str, env: Mapping[str, str],
                           ) -> tuple[Settings, list[Problem], str]:
    """``<NAME>_RATE_LIMIT_*`` beats ``RATE_LIMIT_*``: two adapters on one host each name their own plan."""
    prefix = f"{name.upper()}_"
    specs = [s for s in Settings.specs() if s.name.startswith("RATE_LIMIT_") and env.get(prefix + s.name, "").strip()]
    if not specs:
        return settings, [], ""
    values, problems = parse_specs(specs, env, (prefix,))
    return dataclasses.replace(settings, **values), problems, prefix


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
        self.adapters: dict[str, AdapterRuntime] = {
            cfg.adapter.name: AdapterRuntime(cfg, self.settings, self.cache, self.requester, self.subscriptions,
                                             self.limiters.get(cfg.adapter.name), self.metrics,
                                             self.responder, self.stream_subscriptions)
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
            from app.ratelimit_redis import RedisRateLimiter

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
            self.background = Background(self, self._lease())
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
        self.cache.close()
        if self.shared is not None:
            self.shared.close()


def _connect(settings: Settings) -> Shared | None:
    if settings.CACHE_TYPE != "redis":
        return None
    from app.shared import Shared, connect, describe_target

    return Shared(connect(settings), describe_target(settings))


def endpoint_summary(endpoint: Endpoint, schema: InputSchema) -> dict[str, Any]:
    return {"name": endpoint.name, "aliases": list(endpoint.aliases), "transport": endpoint.transport.kind,
            "batchSize": getattr(endpoint.transport, "max_batch_size", 1), "inputs": schema.describe_inputs()}
