"""Streaming transport over server-sent events (an EventSource-style HTTP response that never ends).

SSE has no subscribe messages: the set of feeds is part of the request (``stream_url``), so when the wanted
feeds change the framework reconnects with the new set. Everything else (one connection per endpoint in the
leader, values into the cache, silence detection, back-off, failover URLs, the HTTP fallback) is the same as
for websockets (``app/background/streams.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.core.transports import Outcome
from app.core.transports.stream import StreamingTransport


class EventReader:
    """The server-sent events wire format, one line at a time: ``line`` returns ``(event type, data)`` when a
    blank line completes an event with data, else None. Comments (``:`` keep-alives), ``id:`` and ``retry:``
    lines only show that the stream is alive."""

    def __init__(self) -> None:
        self._event, self._data = "message", []

    def line(self, line: str) -> tuple[str, str] | None:
        if line == "":
            done = (self._event, "\n".join(self._data)) if self._data else None
            self._event, self._data = "message", []
            return done
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            self._event = line[6:].strip()
        return None


class SseTransport(StreamingTransport):
    """A provider that streams server-sent events. Implement ``stream_id``, ``stream_url`` and
    ``parse_event`` (and ``headers`` for authentication); called from the leader's stream thread only."""

    kind = "sse"
    url_setting = "SSE_API_ENDPOINT"

    def stream_url(self, base_url: str, stream_ids: Sequence[str], config: Mapping[str, Any]) -> str:
        """The URL streaming exactly ``stream_ids``, from ``base_url`` (one of the ``SSE_API_ENDPOINT`` URLs).
        Called on every (re)connect."""
        raise NotImplementedError

    def headers(self, config: Mapping[str, Any]) -> dict[str, str]:
        """Request headers of the stream (an API key, for instance); none by default."""
        return {}

    def parse_event(self, event: str, data: str, config: Mapping[str, Any]) -> list[tuple[str, Outcome]]:
        """Values in one event (``event`` is its type, ``message`` when unnamed), by stream id; ``[]`` for
        events that carry none. Raise ``ValueError`` for an event that makes no sense: it is logged and
        counted."""
        raise NotImplementedError
