"""Adapters, their files and the settings, read into one validated ``Config``; nothing is opened.

``load_config`` reads and checks everything (settings, adapter settings, schemas, overrides, limits) and raises
one ``SettingsError`` listing every problem, so ``gunicorn.conf.py`` can call it in the master to refuse a bad
start before any worker forks. ``AdapterConfig`` is what every later layer is built from: it lives here, below
the runtimes typed against it, and not beside the ``Host`` that builds them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import adapters as adapters_package
from app.core.adapter import Adapter, Endpoint
from app.core.adapter_processes import CMD_SPEC, PORTS_ENV, PREFIXED_ONLY_ENV, decode_ports, parse_command
from app.core.includes import IncludesTable
from app.core.provider_limits import RateLimit, WsLimits, parse_limits, resolve_rate_limit, resolve_ws_limits
from app.core.setting_specs import MIN_SECRET_LENGTH, Problem, SettingsError, parse_specs
from app.core.settings import Settings
from app.core.symbols import SymbolTable
from app.core.validation import InputSchema, SchemaDefinitionError

DEFAULT_ADAPTER = "coingecko"
RESERVED_ROUTES = {"health", "status", "metrics", "discovery", "plugins", "openapi.json"}


@dataclass(frozen=True)
class AdapterConfig:
    adapter: Adapter
    values: Mapping[str, Any]
    schemas: Mapping[str, InputSchema]
    overrides: SymbolTable
    rate_limit: RateLimit | None
    #: ``<NAME>_CMD``: the command that serves this adapter in its own process ("" = in the host's workers).
    cmd: str = ""
    ws_limits: WsLimits = dataclasses.field(default_factory=WsLimits)
    #: ``includes.json``: pairs answered as the inverse of another (endpoints declared with ``includes=True``).
    includes: IncludesTable = dataclasses.field(default_factory=IncludesTable)


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
    """``schemas/``, beside the ``adapters`` package."""
    return Path(adapters_package.__file__).resolve().parent.parent / "schemas"


def available_adapters() -> list[str]:
    """The names of the adapter packages in ``adapters/``, whether or not ``ADAPTERS`` serves them."""
    return sorted(m.name for m in pkgutil.iter_modules(adapters_package.__path__) if m.ispkg)


def declared_adapters() -> list[Adapter]:
    """Every adapter package's declaration (imported, not configured): for docs and ``pyea check``."""
    return [importlib.import_module(f"adapters.{name}").adapter for name in available_adapters()]


def limits_path() -> Path:
    """``limits.json`` beside the source tree, else where ``pip install`` put it."""
    here = Path(__file__).resolve().parent.parent / "limits.json"
    return here if here.exists() else Path(sys.prefix) / "share" / "pyea" / "limits.json"


def load_limits(path: Path | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """The providers' published limits (``LIMITS_FILE``, else the shipped ``limits.json``)."""
    path = path or limits_path()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, [Problem("limits.json", str(path), f"a readable JSON file ({exc})")]
    return parse_limits(doc, str(path))


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
        from app.stores.local_cache import directory_problem, open_problem

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
    includes, include_problems = load_includes(name, Path(module.__file__).parent)
    problems += schema_problems + override_problems + include_problems
    rate_settings, rate_problems, prefix = _adapter_rate_settings(settings, name, env)
    default_tier = adapter.default_tier(values) if adapter.default_tier and not problems else None
    rate_limit, limit_problems = resolve_rate_limit(rate_settings, name, limits, prefix, default_tier)
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
    return AdapterConfig(adapter, values, schemas, overrides, rate_limit, cmd, ws_limits, includes), []


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


def load_overrides(name: str, package_dir: Path) -> tuple[SymbolTable, list[Problem]]:
    """The adapter's built-in symbol map (``overrides.json``, optional), compact (``app/core/symbols.py``)."""
    overrides_file = package_dir / "overrides.json"
    table = SymbolTable()
    if not overrides_file.exists():
        return table, []
    try:
        mapping = json.loads(overrides_file.read_text("utf-8"))
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ValueError("not an object of strings")
    except ValueError as exc:
        return table, [Problem(f"{name} overrides.json", None, f"a JSON object of symbol: id ({exc})")]
    table.fill(mapping.items())
    return table, []


def load_includes(name: str, package_dir: Path) -> tuple[IncludesTable, list[Problem]]:
    """The adapter's inverse pairs (``includes.json``, optional)."""
    includes_file = package_dir / "includes.json"
    if not includes_file.exists():
        return IncludesTable(), []
    try:
        return IncludesTable.parse(json.loads(includes_file.read_text("utf-8")), f"{name} includes.json"), []
    except ValueError as exc:
        return IncludesTable(), [Problem(f"{name} includes.json", None, f"the includes format ({exc})")]


def _adapter_rate_settings(settings: Settings, name: str, env: Mapping[str, str],
                           ) -> tuple[Settings, list[Problem], str]:
    """``<NAME>_RATE_LIMIT_*`` beats ``RATE_LIMIT_*``: two adapters on one host each name their own plan."""
    prefix = f"{name.upper()}_"
    specs = [s for s in Settings.specs() if s.name.startswith("RATE_LIMIT_") and env.get(prefix + s.name, "").strip()]
    if not specs:
        return settings, [], ""
    values, problems = parse_specs(specs, env, (prefix,))
    return dataclasses.replace(settings, **values), problems, prefix


def endpoint_summary(endpoint: Endpoint, schema: InputSchema) -> dict[str, Any]:
    return {"name": endpoint.name, "aliases": list(endpoint.aliases), "transport": endpoint.transport.kind,
            **({"transports": sorted(endpoint.routes)} if endpoint.routes else {}),
            "batchSize": endpoint.transport.max_batch_size, "inputs": schema.describe_inputs()}
