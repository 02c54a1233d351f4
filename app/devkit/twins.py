"""How an adapter matches its twin, Chainlink's TypeScript adapter of the same provider: a table and a check.

An adapter that replaces a TypeScript one ships ``adapters/<name>/twin.json``, the twin's endpoints, their
aliases and their input parameters with their aliases, written from the twin's source::

    {"package": "coingecko", "endpoints": {"crypto": {"aliases": ["price"],
                                                      "params": {"base": ["from", "coin"], "quote": ["to"]}}}}

``problems`` says what of that pyea would refuse (an endpoint or a parameter name a job may send), so a test can
hold every adapter to it; ``compatibility_table`` renders it beside pyea's own declarations for the adapter's
README (between ``<!-- twin-table -->`` and ``<!-- /twin-table -->``, written by ``pyea settings --write``).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from app.config import load_schemas
from app.core.adapter import Adapter
from app.core.validation import InputSchema

MARKERS = re.compile(r"(<!-- twin-table -->\n)(.*?)(<!-- /twin-table -->)", re.S)


def twin_of(package_dir: Path) -> dict[str, Any] | None:
    """The adapter's ``twin.json``, or None when it has no TypeScript twin."""
    path = package_dir / "twin.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else None


def declared(name: str) -> tuple[Adapter, dict[str, InputSchema], dict[str, Any] | None]:
    """Adapter ``name``'s declaration, its endpoints' schemas and its twin (None without one)."""
    module = importlib.import_module(f"adapters.{name}")
    schemas, _ = load_schemas(name, module.adapter)
    return module.adapter, schemas, twin_of(Path(module.__file__).parent)


def _endpoint_named(adapter: Adapter, name: str) -> str | None:
    for endpoint in adapter.endpoints:
        if name.lower() in {endpoint.name.lower(), *(a.lower() for a in endpoint.aliases)}:
            return endpoint.name
    return None


def problems(adapter: Adapter, schemas: dict[str, InputSchema], twin: dict[str, Any]) -> list[str]:
    """Every endpoint name, alias and parameter name of the twin that pyea's adapter would not accept."""
    found = []
    for name, spec in twin["endpoints"].items():
        for requested in (name, *spec.get("aliases", ())):
            ours = _endpoint_named(adapter, requested)
            if ours is None:
                found.append(f"endpoint {requested!r} of the twin is not accepted")
                continue
            schema = schemas[ours]
            for param, aliases in spec.get("params", {}).items():
                found += [f"{requested}: parameter {given!r} of the twin is not accepted"
                          for given in (param, *aliases) if given not in schema.canonical]
    return found


def compatibility_table(adapter: Adapter, schemas: dict[str, InputSchema], twin: dict[str, Any]) -> str:
    """Markdown: each endpoint of the twin, its aliases and parameters, beside what pyea serves them with."""
    rows = ["| twin endpoint (aliases) | twin parameters (aliases) | pyea endpoint | pyea parameters (aliases) |",
            "|---|---|---|---|"]
    for name, spec in twin["endpoints"].items():
        ours = _endpoint_named(adapter, name)
        twin_params = ", ".join(_named(p, a) for p, a in spec.get("params", {}).items()) or "none"
        twin_names = _named(name, spec.get("aliases", ()))
        if ours is None:
            rows.append(f"| {twin_names} | {twin_params} | **missing** | |")
            continue
        endpoint = next(e for e in adapter.endpoints if e.name == ours)
        rows.append(f"| {twin_names} | {twin_params} | {_named(ours, endpoint.aliases)} | "
                    f"{_parameters(schemas[ours])} |")
    served = {_endpoint_named(adapter, n) for n in twin["endpoints"]}
    for endpoint in (e for e in adapter.endpoints if e.name not in served):
        rows.append(f"| (pyea only) | | {_named(endpoint.name, endpoint.aliases)} | "
                    f"{_parameters(schemas[endpoint.name])} |")
    return "\n".join(rows)


def _parameters(schema: InputSchema) -> str:
    """pyea's parameters of an endpoint, each with its aliases."""
    return ", ".join(_named(p, names[1:]) for p, names in schema.names.items()) or "none"


def with_table(readme: str, table: str) -> str:
    """The README with its twin table replaced by ``table``."""
    return MARKERS.sub(lambda m: m.group(1) + table + "\n" + m.group(3), readme)


def _named(name: str, aliases: Any) -> str:
    aliases = list(aliases)
    return f"`{name}`" + (f" ({', '.join(f'`{a}`' for a in aliases)})" if aliases else "")
