"""Checks of every adapter package in ``adapters/`` (not only the configured ones), for ``pyea check``: an adapter
author learns about a broken schema, a missing endpoint file or a mistyped default before an operator does."""

from __future__ import annotations

import importlib
from pathlib import Path

from app.config import available_adapters, load_limits, load_overrides, load_schemas, schemas_dir
from app.core.adapter import Adapter
from app.core.setting_specs import Problem
from app.core.transports import Transport


def wiring_problems() -> tuple[list[Problem], list[str]]:
    """Problems of every adapter package and schema folder, and notes that are not problems (an adapter whose
    provider publishes no limits in limits.json is simply not rate limited)."""
    problems: list[Problem] = []
    notes: list[str] = []
    known = available_adapters()
    limits, _ = load_limits()  # its problems are reported with the settings
    for name in known:
        adapter_problems, adapter = _adapter_problems(name)
        problems += adapter_problems
        if adapter is not None and name not in limits:
            notes.append(f"{name}: no entry in limits.json, so its provider calls are not rate limited unless "
                         "RATE_LIMIT_CAPACITY is set")
    root = schemas_dir()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if folder.name not in known:
            problems.append(Problem(f"schemas/{folder.name}", None, "a folder named after an adapter in adapters/"))
    return problems, notes


def _adapter_problems(name: str) -> tuple[list[Problem], Adapter | None]:
    where = f"adapters/{name}"
    try:
        module = importlib.import_module(f"adapters.{name}")
    except Exception as exc:  # an author's syntax or import error, reported like any other problem
        return [Problem(where, None, f"an importable package ({type(exc).__name__}: {exc})")], None
    adapter = getattr(module, "adapter", None)
    if not isinstance(adapter, Adapter):
        return [Problem(where, None, "a module-level `adapter = Adapter(...)`")], None
    problems: list[Problem] = []
    if adapter.name != name:
        problems.append(Problem(f"{where} Adapter.name", adapter.name, f"the package's name, {name!r}"))
    names = [alias.lower() for endpoint in adapter.endpoints for alias in (endpoint.name, *endpoint.aliases)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if not adapter.endpoints:
        problems.append(Problem(f"{where} endpoints", "[]", "at least one Endpoint"))
    if repeated:
        problems.append(Problem(f"{where} endpoints", ", ".join(repeated), "endpoint names and aliases used once"))
    if adapter.default_endpoint and adapter.default_endpoint.lower() not in names:
        problems.append(Problem(f"{where} default_endpoint", adapter.default_endpoint,
                                "one of its endpoints: " + ", ".join(e.name for e in adapter.endpoints)))
    for endpoint in adapter.endpoints:
        if not isinstance(endpoint.transport, Transport):
            problems.append(Problem(f"{where} endpoint {endpoint.name}", type(endpoint.transport).__name__,
                                    "a Transport (e.g. an HttpTransport subclass) instance"))
        if endpoint.routes and (endpoint.route_of(endpoint.transport) is None
                                or any(not isinstance(t, Transport) or n != n.lower() or "." in n
                                       for n, t in endpoint.routes.items())):
            problems.append(Problem(f"{where} endpoint {endpoint.name} routes", ", ".join(endpoint.routes),
                                    "lower-case names (no dot) of Transport instances, the endpoint's "
                                    "transport among them"))
    problems += load_schemas(name, adapter)[1]
    problems += load_overrides(name, Path(module.__file__).parent)[1]
    declared = {endpoint.name for endpoint in adapter.endpoints}
    folder = schemas_dir() / name
    for orphan in sorted(p.stem for p in folder.glob("*.json") if p.stem not in declared) if folder.is_dir() else []:
        problems.append(Problem(f"schemas/{name}/{orphan}.json", None, f"an endpoint named {orphan!r} in {where}"))
    return problems, adapter
