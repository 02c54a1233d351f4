"""How one setting is declared, parsed from the environment and reported when it is wrong.

The framework's settings (``app/core/settings.py``) and every adapter's own are declared with these, so they
parse, validate, redact secrets and report all problems at once in one way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

REDACTED = "[REDACTED]"
#: Shorter secret values are not scrubbed from logs: scrubbing a one-letter test key would mangle every word.
MIN_SECRET_LENGTH = 6

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SECRET_NAME = re.compile(r"(API_KEY|PASSWORD|SECRET|TOKEN|PRIVATE_KEY)", re.IGNORECASE)


@dataclass(frozen=True)
class Spec:
    """How one environment variable is parsed and what values it accepts.

    An adapter lists its own in ``Adapter.settings`` (``Spec("API_KEY", None, "Provider API key")``); the parsed
    values reach its transport as ``config[name]``. ``kind`` decides the parsing (``str``, ``int`` with
    ``minimum``/``maximum`` and ``unit``, ``bool``, ``enum`` of ``choices``, ``list`` (comma-separated),
    ``path``, ``url``); a bad value stops the start together with every other problem. A name containing
    API_KEY, PRIVATE_KEY, TOKEN, SECRET or PASSWORD, or ``sensitive=True``, is a secret: never shown, and
    scrubbed from logs."""

    name: str
    default: Any
    description: str
    group: str = "adapter"
    kind: str = "str"  # str | int | bool | enum | list | path | url
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    sensitive: bool = False
    unit: str = ""
    #: Startup fails while it is unset (for adapter settings without which no request can succeed).
    required: bool = False

    @property
    def is_secret(self) -> bool:
        return self.sensitive or bool(_SECRET_NAME.search(self.name))

    def allowed(self) -> str:
        """Human wording of what the setting accepts, for error messages and the docs."""
        if self.kind == "int":
            bounds = []
            if self.minimum is not None:
                bounds.append(f">= {self.minimum}")
            if self.maximum is not None:
                bounds.append(f"<= {self.maximum}")
            text = "an integer" + (" " + " and ".join(bounds) if bounds else "")
            return text + (f" ({self.unit})" if self.unit else "")
        if self.kind == "bool":
            return "true or false"
        if self.kind == "enum":
            return "one of " + ", ".join(self.choices)
        if self.kind == "path":
            return "a URL path starting with /"
        if self.kind == "url":
            return "an http:// or https:// URL"
        if self.kind == "list":
            return "a comma-separated list"
        return "a string"

    def parse(self, raw: str) -> Any:
        """Turn the raw environment string into a typed value, or raise ValueError with what is allowed."""
        text = raw.strip()
        if self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise ValueError(self.allowed()) from None
            if (self.minimum is not None and value < self.minimum) or (
                    self.maximum is not None and value > self.maximum):
                raise ValueError(self.allowed())
            return value
        if self.kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(self.allowed())
        if self.kind == "enum":
            if text.lower() not in self.choices:
                raise ValueError(self.allowed())
            return text.lower()
        if self.kind == "list":
            return tuple(item.strip() for item in text.split(",") if item.strip())
        if self.kind == "path":
            if not text.startswith("/") or any(c in text for c in "?#"):
                raise ValueError(self.allowed())
            return text if text.endswith("/") else text + "/"
        if self.kind == "url":
            if not re.match(r"^https?://[^\s/]+", text):
                raise ValueError(self.allowed())
            return text.rstrip("/")
        return text


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of the variables whose names mark them secret (``*_API_KEY``, ``*PASSWORD*``...), long enough to
    scrub safely (MIN_SECRET_LENGTH)."""
    return [value for name, value in environ.items()
            if Spec(name, None, "").is_secret and len(value) >= MIN_SECRET_LENGTH]


@dataclass(frozen=True)
class Problem:
    name: str
    value: str | None
    allowed: str

    def __str__(self) -> str:
        if self.value is None and self.name[:1].islower():
            return f"{self.name}: must be {self.allowed}"  # a file (schema, overrides), not a variable
        shown = "(unset)" if self.value is None else repr(self.value)
        return f"{self.name}={shown}: must be {self.allowed}"


class SettingsError(Exception):
    """Startup refused: lists every bad variable at once so an operator fixes them in one go."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"Invalid configuration ({count} problem{'s' if count != 1 else ''}):\n{lines}")


def setting(default: Any, description: str, group: str, **rules: Any) -> Any:
    """Declare a framework setting as a dataclass field; its name is the field's name."""
    kind = rules.pop("kind", None) or {bool: "bool", int: "int"}.get(type(default), "str")
    return field(default=default, metadata={"spec": dict(default=default, description=description,
                                                         group=group, kind=kind, **rules)})


def parse_specs(specs: Iterable[Spec], environ: Mapping[str, str], prefixes: tuple[str, ...] = ("",),
                ) -> tuple[dict[str, Any], list[Problem]]:
    """Parse each spec from the first of ``PREFIX + NAME`` that is set; collect problems instead of raising."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for spec in specs:
        raw, source = None, spec.name
        for prefix in prefixes:
            if environ.get(prefix + spec.name, "").strip() != "":
                raw, source = environ[prefix + spec.name], prefix + spec.name
                break
        if raw is None:
            values[spec.name] = spec.default
            if spec.required:
                others = " or ".join(p + spec.name for p in prefixes[1:])
                problems.append(Problem(prefixes[0] + spec.name + (f" (or {others})" if others else ""), None,
                                        f"set: {spec.description}"))
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except ValueError as exc:
            values[spec.name] = spec.default  # keeps the object whole so every other problem is still found
            problems.append(Problem(source, REDACTED if spec.is_secret else raw, str(exc)))
    return values, problems
