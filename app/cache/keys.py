"""Cache keys: requests that mean the same thing must share one entry, and nothing else may.

Keys hash the normalised, validated parameters (aliases resolved, defaults filled, symbols overridden, keys
sorted), so ``{"from": "link"}`` and ``{"base": "LINK"}`` share an entry, while the group prefix keeps different
adapters (or deployments sharing one store) apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

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
