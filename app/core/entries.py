"""Cache entries and their keys: requests that mean the same thing must share one entry, and nothing else may.

Entries are stored as text, never as live objects, so a later request can never mutate what another one was
served, and so the same bytes work in diskcache and in Redis. ``Cache`` is what every store implements.

Keys hash the normalised, validated parameters (aliases resolved, defaults filled, symbols overridden, keys
sorted), so ``{"from": "link"}`` and ``{"base": "LINK"}`` share an entry, while the group prefix keeps different
adapters (or deployments sharing one store) apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.setting_specs import Spec

#: Keys the v2 framework never hashed, at any depth.
V2_IGNORED_PROPS = frozenset({"id", "maxAge", "meta", "debug", "rateLimitMaxAge", "metricsMeta", "result"})


class KeyMaker:
    def __init__(self, group: str, ignored: Iterable[str] = ()) -> None:
        self.group = group
        self.ignored = V2_IGNORED_PROPS | frozenset(ignored)

    def feed_id(self, params: Mapping[str, Any]) -> str:
        """Canonical JSON of the parameters: readable in logs, and the input of the hash."""
        return json.dumps(self._strip(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def key(self, endpoint: str, params: Mapping[str, Any]) -> str:
        # BLAKE2 is built into Python: SHA-1 goes through OpenSSL, whose first use maps about 1 MiB more of
        # libcrypto into every worker (one that only serves cached values never needs TLS either).
        digest = hashlib.blake2b(self.feed_id(params).encode(), digest_size=20).hexdigest()
        return f"{self.group}:{endpoint}:{digest}"

    def _strip(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: self._strip(v) for k, v in value.items() if k not in self.ignored}
        if isinstance(value, list):
            return [self._strip(v) for v in value]
        return value


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A response body (JSON object text without ``jobRunID`` and ``meta``) and when its data arrived."""

    status_code: int
    received_ms: int
    body: str

    @property
    def is_success(self) -> bool:
        return self.status_code == 200

    def encode(self) -> str:
        return f"{self.status_code}|{self.received_ms}|{self.body}"

    @classmethod
    def decode(cls, raw: str) -> CacheEntry:
        status, received, body = raw.split("|", 2)
        return cls(int(status), int(received), body)


class Cache(Protocol):
    def get(self, key: str) -> CacheEntry | None: ...

    def set(self, key: str, entry: CacheEntry, ttl_ms: int) -> bool:
        """Store, except that an error never replaces an unexpired success; returns whether it stored."""

    def batch(self) -> AbstractContextManager:
        """Writes made inside may be committed together (a refresh cycle's batch)."""

    def touch(self, key: str, ttl_ms: int) -> None: ...

    def add_marker(self, key: str, ttl_ms: int) -> bool:
        """Atomically claim the in-flight marker for ``key``; False if another process holds it."""

    def has_marker(self, key: str) -> bool: ...

    def delete_marker(self, key: str) -> None: ...

    def ping(self) -> None:
        """Raise if the backend cannot store and read back a value."""

    def close(self) -> None: ...


def provider_tag(specs: Iterable[Spec], values: Mapping[str, Any]) -> str:
    """What identifies the provider an adapter is pointed at, for its key group: its URL settings, and whether
    each secret is set (a key can switch the host, as CoinGecko's does), never a secret's value. A restart onto
    another provider, or the bundled fake provider's replacement by the real one, then finds none of the first
    one's values. Empty for an adapter without such settings."""
    parts = []
    for spec in specs:
        value = values.get(spec.name)
        if spec.is_secret:
            parts.append(f"{spec.name}={'set' if value else ''}")
        elif spec.kind == "url" or spec.name.endswith(("ENDPOINT", "URL")):
            parts.append(f"{spec.name}={value or ''}")
    return hashlib.blake2b("\n".join(sorted(parts)).encode(), digest_size=4).hexdigest() if parts else ""
