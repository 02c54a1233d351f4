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
        digest = hashlib.sha1(self.feed_id(params).encode()).hexdigest()
        return f"{self.group}:{endpoint}:{digest}"

    def _strip(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: self._strip(v) for k, v in value.items() if k not in self.ignored}
        if isinstance(value, list):
            return [self._strip(v) for v in value]
        return value
