"""Turning a request's ``data`` into the canonical parameters of an endpoint, or a 400 that says what is wrong.

Schemas are JSON Schema (Draft 2020-12) files in ``schemas/<adapter>/<endpoint>.json``, so authors use a standard
they know and tools can read. pyea adds two keywords on top-level properties, applied before validation:

- ``x-aliases``: other names the parameter may be given under (a value given under two names is a 400);
- ``x-case``: ``upper`` or ``lower``, so ``link`` and ``LINK`` are one feed and share one cache entry;
- ``x-coerce``: ``string``, for a parameter Chainlink's adapters take as text that jobs also send as a number
  (an id like ``"1027"``): an integer is accepted and becomes its text, so both are one feed.

Unknown keys are dropped before validation, so they never reach the cache key.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError

from app.core.errors import AdapterInputError
from app.core.messages import json_type, short

#: Keys in ``data`` that steer the framework rather than select a feed.
RESERVED_KEYS = ("endpoint", "transport", "overrides", "includes", "maxAge")


class SchemaDefinitionError(Exception):
    """A schema file an adapter ships is unusable; reported at startup, never at request time."""


class InputSchema:
    def __init__(self, schema: Mapping[str, Any], source: str) -> None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise SchemaDefinitionError(f"{source}: not a valid JSON Schema: {exc.message}") from None
        if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
            raise SchemaDefinitionError(f"{source}: the root must be {{\"type\": \"object\", \"properties\": "
                                        "{...}}")
        self.schema = schema
        self.properties: dict[str, dict[str, Any]] = schema["properties"]
        self.names: dict[str, tuple[str, ...]] = {}
        seen: dict[str, str] = {}
        for name, prop in self.properties.items():
            if name in RESERVED_KEYS:
                raise SchemaDefinitionError(f"{source}: '{name}' is reserved and cannot be a parameter")
            aliases = prop.get("x-aliases", [])
            if prop.get("x-case") not in (None, "upper", "lower"):
                raise SchemaDefinitionError(f"{source}: {name}: x-case must be 'upper' or 'lower'")
            if prop.get("x-coerce") not in (None, "string"):
                raise SchemaDefinitionError(f"{source}: {name}: x-coerce must be 'string'")
            for alias in (name, *aliases):
                if alias in seen or alias in RESERVED_KEYS:
                    raise SchemaDefinitionError(f"{source}: '{alias}' names more than one parameter "
                                                f"({seen.get(alias, alias)} and {name})")
                seen[alias] = name
            self.names[name] = (name, *aliases)
        self.canonical = seen
        self.validator = Draft202012Validator(schema)

    @classmethod
    def from_file(cls, path: Path) -> InputSchema:
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaDefinitionError(f"{path}: cannot be read as JSON ({exc})") from None
        return cls(schema, str(path))

    def coerce_query(self, name: str, value: str) -> Any:
        """Query strings carry only text; convert where the schema asks for a number or boolean."""
        prop = self.properties.get(self.canonical.get(name, ""), {})
        kinds = prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]
        if "integer" in kinds and value.lstrip("-").isdigit():
            return int(value)
        if "number" in kinds:
            try:
                return float(value)
            except ValueError:
                return value
        if "boolean" in kinds and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value

    def normalise(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Canonical parameters (aliases resolved, case folded, defaults filled) or AdapterInputError."""
        params: dict[str, Any] = {}
        for name, names in self.names.items():
            given = [n for n in names if data.get(n) is not None]
            if len(given) > 1:
                raise AdapterInputError(f"data.{name}: given more than once (as {', '.join(given)}); "
                                        "give it under one name only")
            prop = self.properties[name]
            if given:
                value = data[given[0]]
                if prop.get("x-coerce") == "string" and type(value) is int:
                    value = str(value)
                case = prop.get("x-case")
                if case and isinstance(value, str):
                    value = value.upper() if case == "upper" else value.lower()
                params[name] = value
            elif "default" in prop:
                params[name] = copy.deepcopy(prop["default"])
        errors = sorted(self.validator.iter_errors(params), key=lambda e: list(e.absolute_path))
        if errors:
            raise AdapterInputError("; ".join(dict.fromkeys(self._describe(e) for e in errors)))
        return params

    def _describe(self, error: ValidationError) -> str:
        path = "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        rule, value = error.validator, error.instance
        if rule == "required":
            missing = [n for n in error.validator_value if n not in value]
            return "; ".join(f"{path}.{n}: required parameter is missing{self._also(n)}" for n in missing)
        if rule == "anyOf" and all(set(s) == {"required"} for s in error.validator_value):
            options = " or ".join("+".join(s["required"]) + self._also(s["required"][0])
                                  for s in error.validator_value)
            return f"{path}: give {options}"
        if rule == "type":
            wanted = error.validator_value if isinstance(error.validator_value, str) else \
                " or ".join(error.validator_value)
            return f"{path}: must be of type {wanted}, got {json_type(value)} {short(value)}"
        if rule == "enum":
            return f"{path}: {short(value)} is not one of the accepted values {short(error.validator_value, 200)}"
        return f"{path}: {error.message} (rule: {rule})"

    def _also(self, name: str) -> str:
        aliases = self.names.get(name, (name,))[1:]
        return f" (also accepted as {', '.join(aliases)})" if aliases else ""

    def describe_inputs(self) -> list[dict[str, Any]]:
        """The parameters as ``/status`` and docs show them."""
        required = set(self.schema.get("required", []))
        return [{"name": name, "aliases": list(names[1:]), "required": name in required,
                 **{k: v for k, v in self.properties[name].items() if k in ("type", "default", "enum",
                                                                           "description")}}
                for name, names in self.names.items()]

