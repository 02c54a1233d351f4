"""Streaming transport: a provider that pushes values over one websocket.

The adapter says how a feed is named on the stream (``stream_id``), what to send to subscribe and unsubscribe
(batched where the provider allows), and how to read a message. The framework (``app/background/streams.py``) keeps one
connection per endpoint in the leader, keeps its subscriptions in step with what nodes ask for, and writes every
value into the cache, so node requests are always answered from cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.core.transports import Outcome
from app.core.transports.stream import StreamingTransport


class WebSocketTransport(StreamingTransport):
    """A provider that pushes values over a websocket. Implement ``stream_id``, ``subscribe_message``,
    ``unsubscribe_message`` and ``parse_message``; the connection is the framework's (one per endpoint, in the
    leader worker's stream thread, so these methods are never called concurrently for one endpoint)."""

    kind = "websocket"
    url_setting = "WS_API_ENDPOINT"
    #: Feeds per subscribe or unsubscribe message.
    subscribe_batch_size = 100

    def subscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        """One message (a JSON-able object, or text) subscribing to ``stream_ids`` (at most
        ``subscribe_batch_size`` of them); sent after connecting and whenever nodes ask for new feeds."""
        raise NotImplementedError

    def unsubscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        """One message unsubscribing from ``stream_ids``, sent when their subscriptions expire."""
        raise NotImplementedError

    def parse_message(self, message: Any, config: Mapping[str, Any]) -> list[tuple[str, Outcome]]:
        """Values in one decoded message, by stream id; ``[]`` for control messages (acknowledgements,
        heartbeats). Raise ``ValueError`` for a message that makes no sense: it is logged and counted."""
        raise NotImplementedError
