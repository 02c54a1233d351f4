"""Streaming transport: a provider that pushes values over one websocket.

The adapter says how a feed is named on the stream (``stream_id``), what to send to subscribe and unsubscribe
(batched where the provider allows), and how to read a message. The framework (``app/streaming.py``) keeps one
connection per endpoint in the leader, keeps its subscriptions in step with what nodes ask for, and writes every
value into the cache, so node requests are always answered from cache.

``fallback`` is an ``HttpTransport`` for the same feeds: it serves when ``WS_ENABLED`` is off, and it is polled
while the stream is down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.errors import ServiceUnavailableError
from app.requester import Sender, now_ms
from app.transports import FeedOutcome, Outcome, Params, Transport
from app.transports.http import HttpTransport


class WebSocketTransport(Transport):
    kind = "websocket"
    fetches_in_foreground = False
    streamed = True
    #: The adapter setting holding the websocket URL (a comma-separated list: the others are failovers).
    url_setting = "WS_API_ENDPOINT"
    #: Feeds per subscribe or unsubscribe message.
    subscribe_batch_size = 100

    def __init__(self, fallback: HttpTransport | None = None) -> None:
        self.fallback = fallback

    @property
    def max_batch_size(self) -> int:
        """The fallback's batch size, for the warmer when it polls the fallback."""
        return getattr(self.fallback, "max_batch_size", 1)

    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        """The feed's name on the stream (e.g. ``ETH-USD``); messages are matched to feeds by it."""
        raise NotImplementedError

    def subscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        """One message (a JSON-able object, or text) subscribing to ``stream_ids``."""
        raise NotImplementedError

    def unsubscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def parse_message(self, message: Any, config: Mapping[str, Any]) -> list[tuple[str, Outcome]]:
        """Values in one decoded message, by stream id; ``[]`` for control messages (acknowledgements,
        heartbeats). Raise ``ValueError`` for a message that makes no sense: it is logged and counted."""
        raise NotImplementedError

    def fetch(self, params_list: Sequence[Params], config: Mapping[str, Any],
              requester: Sender) -> list[FeedOutcome]:
        """The HTTP fallback's answer, for when the stream cannot serve."""
        if self.fallback is not None:
            return self.fallback.fetch(params_list, config, requester)
        at = now_ms()
        error = ServiceUnavailableError("this feed is only streamed, and the stream is not available")
        return [FeedOutcome(p, error, None, at, at) for p in params_list]
