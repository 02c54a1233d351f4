"""Inverse pairs ("includes"): a pair the provider does not quote, answered from one it does.

A provider that quotes USD/JPY but not JPY/USD can still answer JPY/USD as ``1 / (USD/JPY)``. An endpoint
declared with ``includes=True`` looks each request's pair up in its adapter's ``includes.json`` (the format of
Chainlink's TypeScript framework: ``[{"from": "JPY", "to": "USD", "includes": [{"from": "USD", "to": "JPY",
"inverse": true}]}]``, first detail used) and in the request's own ``data.includes`` (checked first, as the
v2 framework did: objects of the same shape, or a plain symbol that replaces the quote).

The pair actually fetched is what is cached, warmed and batched, so JPY/USD and USD/JPY cost one provider value;
only the answer is inverted, when it is rendered. Matching is case-insensitive: symbols are compared upper-cased.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.core.errors import AdapterInputError
from app.core.messages import short


@dataclass(frozen=True)
class Include:
    """The pair fetched instead of the one asked for, and whether the answer is its inverse."""

    base: str
    quote: str
    inverse: bool


class IncludesTable:
    """An adapter's ``includes.json``, keyed by the requested pair (upper-cased)."""

    def __init__(self, pairs: Mapping[tuple[str, str], Include] | None = None) -> None:
        self.pairs = dict(pairs or {})

    @classmethod
    def parse(cls, doc: Any, source: str) -> IncludesTable:
        """The table from a parsed ``includes.json``; ``ValueError`` naming ``source`` and the entry when an
        entry is not ``{from, to, includes: [{from, to, inverse?}, …]}``."""
        if not isinstance(doc, list):
            raise ValueError(f"{source}: must be a JSON array of {{from, to, includes}} objects")
        pairs: dict[tuple[str, str], Include] = {}
        for index, entry in enumerate(doc):
            try:
                key, include = _entry(entry)
            except ValueError as exc:
                raise ValueError(f"{source}[{index}]: {exc}") from None
            pairs.setdefault(key, include)
        return cls(pairs)

    def lookup(self, base: str, quote: str, requested: Any = None) -> Include | None:
        """What to fetch for ``base``/``quote``: the request's ``data.includes`` first, then this table; None
        when the pair is fetched as asked. ``AdapterInputError`` for a malformed ``data.includes``."""
        key = (base.upper(), quote.upper())
        symbols = []
        for index, entry in enumerate(_requested(requested)):
            if isinstance(entry, str):
                symbols.append(entry)
                continue
            try:
                entry_key, include = _entry(entry)
            except ValueError as exc:
                raise AdapterInputError(f"data.includes[{index}]: {exc}") from None
            if entry_key == key:
                return include
        found = self.pairs.get(key)
        if found is None and symbols:
            return Include(key[0], symbols[0].upper(), False)
        return found


def _requested(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise AdapterInputError("data.includes: must be an array of symbols or of {from, to, includes} objects, "
                                f"got {short(value)}")
    for index, entry in enumerate(value):
        if isinstance(entry, str) and not entry.strip():
            raise AdapterInputError(f"data.includes[{index}]: a symbol must not be empty")
    return value


def _entry(entry: Any) -> tuple[tuple[str, str], Include]:
    if not isinstance(entry, dict) or not _symbol(entry.get("from")) or not _symbol(entry.get("to")):
        raise ValueError(f"must be an object with from and to symbols, got {short(entry)}")
    details = entry.get("includes")
    if not isinstance(details, list) or not details:
        raise ValueError(f"includes: must be a non-empty array of {{from, to, inverse}}, got {short(details)}")
    detail = details[0]
    if not isinstance(detail, dict) or not _symbol(detail.get("from")) or not _symbol(detail.get("to")):
        raise ValueError(f"includes[0]: must be an object with from and to symbols, got {short(detail)}")
    inverse = detail.get("inverse", False)
    if not isinstance(inverse, bool):
        raise ValueError(f"includes[0].inverse: must be true or false, got {short(inverse)}")
    key = (entry["from"].upper(), entry["to"].upper())
    return key, Include(detail["from"].upper(), detail["to"].upper(), inverse)


def _symbol(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
