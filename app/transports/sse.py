"""Streaming transport over server-sent events (an EventSource-style HTTP response that never ends).

SSE has no subscribe messages: the set of feeds is part of the request (``stream_url``), so when the wanted
feeds change the framework reconnects with the new set. Everything else (one connection per endpoint in the
leader, values into the cache, silence detection, back-off, failover URLs, the HTTP fallback) is the same as
for websockets (``app/streaming.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.transports import Outcome
from app.transports.stream import StreamingTransport


class SseTransport(StreamingTransport):
    kind = "sse"
    url_setting = "SSE_API_ENDPOINT"

    def stream_url(self, base_url: str, stream_ids: Sequence[str], config: Mapping[str, Any]) -> str:
        """The URL streaming exactly ``stream_ids``."""
        raise NotImplementedError

    def headers(self, config: Mapping[str, Any]) -> dict[str, str]:
        return {}

    def parse_event(self, event: str, data: str, config: Mapping[str, Any]) -> list[tuple[str, Outcome]]:
        """Values in one event (``event`` is its type, ``message`` when unnamed), by stream id; ``[]`` for
        events that carry none. Raise ``ValueError`` for an event that makes no sense: it is logged and
        counted."""
        raise NotImplementedError
